package legacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	xdsapi "github.com/envoyproxy/go-control-plane/envoy/api/v2"
	core "github.com/envoyproxy/go-control-plane/envoy/api/v2/core"
	listener "github.com/envoyproxy/go-control-plane/envoy/api/v2/listener"
	route "github.com/envoyproxy/go-control-plane/envoy/api/v2/route"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/config/filter/http/rbac/v2"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/schema/collections"
	authnpolicy "istio.io/istio/security/proto/authentication/v1alpha1"
	authn "istio.io/istio/security/proto/envoy/config/filter/http/authn/v2alpha1"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

// identify is an object's kind, namespace and name, for messages.
func identify(raw json.RawMessage) string {
	kind, namespace, name := istiocases.ObjectID(raw)
	return fmt.Sprintf("%s %s/%s", kind, namespace, name)
}

// validationProblems is what Istio 1.5 says of each object: pilot's reading of it (crd.ParseInputs), and
// the validation of its kind's schema, the one istio-galley's validating webhook applies.
func validationProblems(objects []json.RawMessage) []error {
	var problems []error
	for _, raw := range objects {
		configs, unknown, err := crd.ParseInputs(string(raw))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", identify(raw), err))
			continue
		}
		if len(unknown) != 0 {
			problems = append(problems, fmt.Errorf("%s: a kind Istio 1.5 does not know", identify(raw)))
		}
		for _, cfg := range configs {
			schema, found := collections.Pilot.FindByGroupVersionKind(cfg.GroupVersionKind())
			if !found {
				problems = append(problems, fmt.Errorf("%s: no schema for %v", identify(raw), cfg.GroupVersionKind()))
				continue
			}
			if err := schema.Resource().ValidateProto(cfg.Name, cfg.Namespace, cfg.Spec); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", identify(raw), err))
			}
		}
	}
	return problems
}

// TestIstio15AcceptsEveryObject: Istio 1.5 reads and validates every object the hooks answer.
func TestIstio15AcceptsEveryObject(t *testing.T) {
	for _, c := range cases {
		for _, raw := range c.Objects {
			t.Run(c.Name+"/"+identify(raw), func(t *testing.T) {
				for _, problem := range validationProblems([]json.RawMessage{raw}) {
					t.Error(problem)
				}
			})
		}
	}
}

func virtualHostName(c istiocases.Case, service string, port uint32) string {
	return fmt.Sprintf("%s.%s.svc.%s:%d", service, c.KubeflowNamespace, clusterDomain, port)
}

// identityHeaders are the names of the headers the case's workloads expect, lower-case.
func identityHeaders(c istiocases.Case) map[string]bool {
	names := map[string]bool{}
	for _, w := range c.Workloads {
		if w.Header != nil {
			names[strings.ToLower(w.Header.Name)] = true
		}
	}
	return names
}

// identityHeadersAdded are the identity headers a virtual host (or one of its routes) adds.
func identityHeadersAdded(vh *route.VirtualHost, names map[string]bool) []*core.HeaderValueOption {
	var found []*core.HeaderValueOption
	options := vh.GetRequestHeadersToAdd()
	for _, r := range vh.GetRoutes() {
		options = append(options, r.GetRequestHeadersToAdd()...)
	}
	for _, option := range options {
		if names[strings.ToLower(option.GetHeader().GetKey())] {
			found = append(found, option)
		}
	}
	return found
}

// describe is a header option on one line.
func describe(option *core.HeaderValueOption) string {
	appended := "unset"
	if option.GetAppend() != nil {
		appended = fmt.Sprint(option.GetAppend().GetValue())
	}
	return fmt.Sprintf("%s: %s (append: %s)", option.GetHeader().GetKey(), option.GetHeader().GetValue(), appended)
}

// expectHeader: exactly the expected header, overwriting what the workload sent; or none.
func expectHeader(want *istiocases.Header, found []*core.HeaderValueOption) error {
	if want == nil {
		if len(found) != 0 {
			return fmt.Errorf("expected no identity header, got %s", describe(found[0]))
		}
		return nil
	}
	if len(found) != 1 {
		return fmt.Errorf("expected one identity header %s, got %d", want.Name, len(found))
	}
	got := found[0]
	if got.GetHeader().GetKey() != want.Name || got.GetHeader().GetValue() != want.Value {
		return fmt.Errorf("sets the wrong value: expected %s: %s, got %s", want.Name, want.Value, describe(got))
	}
	// In Envoy's v2 API an unset `append` means true.
	if got.GetAppend() == nil || got.GetAppend().GetValue() {
		return fmt.Errorf("the header is appended, so a workload could send its own: %s", describe(got))
	}
	return nil
}

// headerProblem checks one workload: its sidecar's virtual host for the service sets the expected identity
// header, overwriting, or none; and no virtual host of the Pod where no workload of it expects one, on any
// port, sets one.
func (m *mesh) headerProblem(c istiocases.Case, w istiocases.Workload) error {
	node, err := m.proxy(w.Namespace, w.Name)
	if err != nil {
		return err
	}
	routes, err := m.routes(node)
	if err != nil {
		return err
	}
	key := func(port uint32, service string) string {
		return fmt.Sprint(port, " ", virtualHostName(c, service, port))
	}
	expected := map[string]bool{}
	for _, other := range c.Workloads {
		if other.Namespace == w.Namespace && other.Name == w.Name && other.Header != nil {
			expected[key(other.Port, other.Service)] = true
		}
	}
	target := key(w.Port, w.Service)
	names := identityHeaders(c)
	var problems []error
	seen := false
	for _, table := range routes {
		for _, vh := range table.GetVirtualHosts() {
			found := identityHeadersAdded(vh, names)
			switch here := table.GetName() + " " + vh.GetName(); {
			case here == target:
				seen = true
				if err := expectHeader(w.Header, found); err != nil {
					problems = append(problems, fmt.Errorf("route table %s, virtual host %s: %w", table.GetName(), vh.GetName(), err))
				}
			case !expected[here] && len(found) != 0:
				problems = append(problems, fmt.Errorf("route table %s, virtual host %s sets an identity header: %s", table.GetName(), vh.GetName(), describe(found[0])))
			}
		}
	}
	if !seen {
		problems = append(problems, fmt.Errorf("no virtual host %s in route table %d", virtualHostName(c, w.Service, w.Port), w.Port))
	}
	return errors.Join(problems...)
}

// TestIdentityHeaderOnlyFromLabelledWorkloadsToMlPipeline: with pilot 1.5, the EnvoyFilter makes the
// sidecar of a labelled Pod of the profile namespace set (overwrite) the owner's header on ml-pipeline's
// HTTP virtual host, and nowhere else; no other Pod gets it.
func TestIdentityHeaderOnlyFromLabelledWorkloadsToMlPipeline(t *testing.T) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			m, err := newMesh(c, c.Objects)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, w := range c.Workloads {
				t.Run(fmt.Sprintf("%s/%s to %s:%d", w.Namespace, w.Name, w.Service, w.Port), func(t *testing.T) {
					if err := m.headerProblem(c, w); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// terminatesTLS: the chain is the mutual-TLS one (pilot 1.5 tells it from the plaintext one by ALPN).
func terminatesTLS(chain *listener.FilterChain) bool {
	return chain.GetTlsContext() != nil || chain.GetTransportSocket() != nil
}

// inboundChains are the filter chains a sidecar may take for a request to port: those of the port's own
// inbound listener and those of virtualInbound matching the port; mutual TLS or plaintext ones.
func inboundChains(listeners []*xdsapi.Listener, port uint32, mutualTLS bool) map[string]*listener.FilterChain {
	chains := map[string]*listener.FilterChain{}
	for _, l := range listeners {
		if l.GetTrafficDirection() != core.TrafficDirection_INBOUND {
			continue
		}
		for i, chain := range l.GetFilterChains() {
			chainPort := l.GetAddress().GetSocketAddress().GetPortValue()
			if destination := chain.GetFilterChainMatch().GetDestinationPort(); destination != nil {
				chainPort = destination.GetValue()
			}
			if chainPort == port && terminatesTLS(chain) == mutualTLS {
				chains[fmt.Sprintf("%s #%d", l.GetName(), i)] = chain
			}
		}
	}
	return chains
}

// peerAuthentication: whether the istio_authn filter's policy authenticates peers by mutual TLS, and
// whether it requires it (STRICT) rather than accepting plaintext too (PERMISSIVE).
func peerAuthentication(config *authn.FilterConfig) (mutualTLS, required bool) {
	for _, peer := range config.GetPolicy().GetPeers() {
		if mtls := peer.GetMtls(); mtls != nil {
			mutualTLS = true
			required = required || mtls.GetMode() == authnpolicy.MutualTls_STRICT
		}
	}
	return mutualTLS, required
}

// chainAllows runs a request through the chain's HTTP filters as the sidecar of Istio 1.5 would: the
// istio_authn filter puts the peer's identity, without the spiffe:// prefix, in its dynamic metadata under
// source.principal (Istio's proxy strips the prefix); then every RBAC filter must allow the request.
func chainAllows(chain *listener.FilterChain, r request) (bool, []*rbachttp.RBAC, error) {
	for _, filter := range chain.GetFilters() {
		if filter.GetName() == "envoy.filters.network.rbac" {
			return false, nil, fmt.Errorf("a network RBAC filter on an HTTP chain")
		}
	}
	manager, err := connectionManager(chain)
	if err != nil || manager == nil {
		return false, nil, fmt.Errorf("not an HTTP chain: %v", err)
	}
	r.metadata = map[string]map[string]string{}
	allowed := true
	var filters []*rbachttp.RBAC
	for _, filter := range manager.GetHttpFilters() {
		switch filter.GetName() {
		case "istio_authn":
			config := &authn.FilterConfig{}
			if err := decode(filter.GetTypedConfig(), filter.GetConfig(), config); err != nil {
				return false, nil, err
			}
			mutualTLS, required := peerAuthentication(config)
			if required && r.peer == "" {
				return false, filters, nil
			}
			if mutualTLS && r.peer != "" {
				r.metadata["istio_authn"] = map[string]string{"source.principal": strings.TrimPrefix(r.peer, "spiffe://")}
			}
		case "envoy.filters.http.rbac":
			config := &rbachttp.RBAC{}
			if err := decode(filter.GetTypedConfig(), filter.GetConfig(), config); err != nil {
				return false, nil, err
			}
			ok, err := filterAllows(config, r)
			if err != nil {
				return false, nil, fmt.Errorf("%w\n%s", err, show(config))
			}
			allowed = allowed && ok
			filters = append(filters, config)
		}
	}
	return allowed, filters, nil
}

// judged: the calls whose expectations hold for the legacy binding. KFP's ServiceRole ml-pipeline-services
// has no port rule, so a binding to it grants ml-pipeline's every port, gRPC too: only the HTTP port's
// expectations (written for the AuthorizationPolicy, which names the port) apply.
func judged(c istiocases.Call) bool { return c.Port == mlPipeline.ports["http"] }

// callProblem evaluates ml-pipeline's generated inbound RBAC for one call, on every chain it may take.
func (m *mesh) callProblem(c istiocases.Case, cl istiocases.Call) error {
	node, err := m.proxy(c.KubeflowNamespace, mlPipeline.name+"-0")
	if err != nil {
		return err
	}
	r := request{headers: map[string]string{}, port: cl.Port}
	if cl.Principal != nil {
		r.peer = *cl.Principal
	}
	for name, value := range cl.Headers {
		r.headers[strings.ToLower(name)] = value
	}
	chains := inboundChains(m.listeners(node), cl.Port, cl.Principal != nil)
	if len(chains) == 0 {
		return fmt.Errorf("no inbound filter chain for port %d (mutual TLS: %v)", cl.Port, cl.Principal != nil)
	}
	var problems []error
	for name, chain := range chains {
		allowed, filters, err := chainAllows(chain, r)
		if err != nil {
			problems = append(problems, fmt.Errorf("chain %s: %w", name, err))
		} else if allowed != cl.Allowed {
			problems = append(problems, fmt.Errorf("chain %s: allowed=%v, expected %v; %d RBAC filters:\n%s", name, allowed, cl.Allowed, len(filters), showAll(filters)))
		}
	}
	return errors.Join(problems...)
}

func showAll(filters []*rbachttp.RBAC) string {
	parts := make([]string, 0, len(filters))
	for _, f := range filters {
		parts = append(parts, show(f))
	}
	return strings.Join(parts, "\n")
}

// TestMlPipelineAdmitsOnlyTheOwnersEditor: ml-pipeline's RBAC filters, as pilot 1.5 generates them from
// the ServiceRoleBinding and Kubeflow's own rbac.istio.io objects, admit the profile's default-editor on
// the HTTP port only with its owner's header, on every inbound chain; and nothing else the case tries.
func TestMlPipelineAdmitsOnlyTheOwnersEditor(t *testing.T) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			m, err := newMesh(c, c.Objects)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			checked := 0
			for _, cl := range c.Calls {
				if !judged(cl) {
					continue // the gRPC port is KFP's role's to decide (see judged)
				}
				checked++
				t.Run(cl.Name, func(t *testing.T) {
					if err := m.callProblem(c, cl); err != nil {
						t.Fatal(err)
					}
				})
			}
			if checked == 0 {
				t.Fatal("no call on ml-pipeline's HTTP port")
			}
		})
	}
}
