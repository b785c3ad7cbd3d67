package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/webhooks/validation/server"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

// genericEnvoyFilterWarning starts the warning Istio gives every EnvoyFilter; any other warning fails.
const genericEnvoyFilterWarning = "EnvoyFilter exposes internal implementation details that may change at any time."

// validate sends one object to Istio's validating webhook, configured as istiod configures it.
func validate(t *testing.T, endpoint string, raw json.RawMessage) *admissionv1.AdmissionResponse {
	t.Helper()
	kind, namespace, name := istiocases.ObjectID(raw)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("kfext-" + name),
			Kind:      metav1.GroupVersionKind{Kind: kind},
			Namespace: namespace,
			Name:      name,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	response, err := http.Post(endpoint, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(response.Body).Decode(&answer); err != nil || answer.Response == nil {
		t.Fatalf("webhook answered %s without a review: %v", response.Status, err)
	}
	return answer.Response
}

// TestIstioValidationAcceptsEveryObject: Istio's validating webhook admits every object the hooks emit
// (warning only that EnvoyFilter is low-level), and rejects as unknown the kinds it no longer serves.
func TestIstioValidationAcceptsEveryObject(t *testing.T) {
	mux := http.NewServeMux()
	if _, err := server.New(server.Options{Schemas: collections.PilotGatewayAPI(), DomainSuffix: clusterDomain, Mux: mux}); err != nil {
		t.Fatal(err)
	}
	webhook := httptest.NewServer(mux)
	defer webhook.Close()
	for _, c := range cases {
		for _, raw := range c.Objects {
			kind, namespace, name := istiocases.ObjectID(raw)
			t.Run(fmt.Sprintf("%s/%s/%s/%s", c.Name, kind, namespace, name), func(t *testing.T) {
				answer := validate(t, webhook.URL+"/validate", raw)
				if slices.Contains(c.UnknownKinds, kind) {
					if answer.Allowed || !strings.Contains(answer.Result.Message, "unrecognized type") {
						t.Fatalf("expected Istio to reject %s as unknown; got allowed=%v %v", kind, answer.Allowed, answer.Result)
					}
					return
				}
				if !answer.Allowed {
					t.Fatalf("Istio rejects the hooks' %s: %s", kind, answer.Result.Message)
				}
				for _, warning := range answer.Warnings {
					if kind != "EnvoyFilter" || !strings.HasPrefix(warning, genericEnvoyFilterWarning) {
						t.Errorf("unexpected warning on %s: %s", kind, warning)
					}
				}
				if kind == "EnvoyFilter" && len(answer.Warnings) != 1 {
					t.Errorf("expected only the generic EnvoyFilter warning, got %q", answer.Warnings)
				}
			})
		}
	}
}

// overwrites reports whether an Envoy header option replaces a value the workload sent.
func overwrites(option *core.HeaderValueOption) bool {
	if option.GetAppend() != nil {
		return !option.GetAppend().GetValue()
	}
	return option.GetAppendAction() == core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
}

// headersAdded are every request header the virtual host (and its routes) add, by name.
func headersAdded(vh *route.VirtualHost) []*core.HeaderValueOption {
	added := slices.Clone(vh.GetRequestHeadersToAdd())
	for _, r := range vh.GetRoutes() {
		added = append(added, r.GetRequestHeadersToAdd()...)
	}
	return added
}

// TestIdentityHeaderOnlyFromLabelledWorkloadsToMlPipeline: the EnvoyFilter makes the sidecar of a
// labelled Pod of a profile namespace in header or both mode set (overwrite) the owner's header on
// ml-pipeline's virtual host, and nothing else gets it (token mode: no header at all).
func TestIdentityHeaderOnlyFromLabelledWorkloadsToMlPipeline(t *testing.T) {
	eachTranslatedCase(t, func(t *testing.T, c istiocases.Case, m *mesh) {
		headerNames := map[string]bool{}
		for _, w := range c.Workloads {
			if w.Header != nil {
				headerNames[strings.ToLower(w.Header.Name)] = true
			}
		}
		for _, w := range c.Workloads {
			t.Run(fmt.Sprintf("%s/%s to %s:%d", w.Namespace, w.Name, w.Service, w.Port), func(t *testing.T) {
				host := fmt.Sprintf("%s.%s.svc.%s", w.Service, c.KubeflowNamespace, clusterDomain)
				vh := virtualHost(t, m.server.Routes(m.proxy(t, w.Namespace, w.Name)), host, w.Port)
				var found []*core.HeaderValueOption
				for _, option := range headersAdded(vh) {
					if headerNames[strings.ToLower(option.GetHeader().GetKey())] {
						found = append(found, option)
					}
				}
				if w.Header == nil {
					if len(found) != 0 {
						t.Fatalf("expected no identity header on %s, got %s", vh.GetName(), show(found[0]))
					}
					return
				}
				if len(found) != 1 {
					t.Fatalf("expected one %s header on %s, got %d:\n%s", w.Header.Name, vh.GetName(), len(found), show(vh))
				}
				got := found[0]
				if got.GetHeader().GetKey() != w.Header.Name || got.GetHeader().GetValue() != w.Header.Value {
					t.Fatalf("expected %s: %s, got %s", w.Header.Name, w.Header.Value, show(got))
				}
				if !overwrites(got) {
					t.Fatalf("the header is appended, so a workload could send its own: %s", show(got))
				}
				t.Logf("virtual host %s adds %s", vh.GetName(), show(got))
			})
		}
	})
}

// rbacFilters are the HTTP RBAC filters of a filter chain, in order.
func rbacFilters(t *testing.T, chain *listener.FilterChain) []*rbachttp.RBAC {
	t.Helper()
	var filters []*rbachttp.RBAC
	for _, network := range chain.GetFilters() {
		if network.GetName() == "envoy.filters.network.rbac" {
			t.Fatalf("chain %s has a network RBAC filter; expected an HTTP chain", chain.GetName())
		}
		if network.GetName() != "envoy.filters.network.http_connection_manager" {
			continue
		}
		manager := &hcm.HttpConnectionManager{}
		if err := network.GetTypedConfig().UnmarshalTo(manager); err != nil {
			t.Fatal(err)
		}
		for _, filter := range manager.GetHttpFilters() {
			if filter.GetName() != "envoy.filters.http.rbac" {
				continue
			}
			config := &rbachttp.RBAC{}
			if err := filter.GetTypedConfig().UnmarshalTo(config); err != nil {
				t.Fatal(err)
			}
			filters = append(filters, config)
		}
	}
	return filters
}

// TestMlPipelineAdmitsOnlyTheOwnersEditor evaluates ml-pipeline's generated inbound RBAC filters for each
// call: allowed exactly when the case says so, on every filter chain the call could arrive on.
func TestMlPipelineAdmitsOnlyTheOwnersEditor(t *testing.T) {
	eachTranslatedCase(t, func(t *testing.T, c istiocases.Case, m *mesh) {
		backend := c.Services[0].Name
		listeners := m.server.Listeners(m.proxy(t, c.KubeflowNamespace, backend+"-0"))
		logged := false
		for _, call := range c.Calls {
			t.Run(call.Name, func(t *testing.T) {
				r := request{headers: map[string]string{}, port: call.Port}
				transport := "raw_buffer"
				if call.Principal != nil {
					r.principal, r.authenticated, transport = *call.Principal, true, "tls"
				}
				for name, value := range call.Headers {
					r.headers[strings.ToLower(name)] = value
				}
				for _, chain := range inboundChains(t, listeners, call.Port, transport) {
					filters := rbacFilters(t, chain)
					allowed := true
					for _, filter := range filters {
						ok, err := filterAllows(filter, r)
						if err != nil {
							t.Fatalf("chain %s: %v\n%s", chain.GetName(), err, show(filter))
						}
						allowed = allowed && ok
					}
					if allowed != call.Allowed {
						t.Fatalf("chain %s: allowed=%v, expected %v; RBAC filters:\n%s", chain.GetName(), allowed, call.Allowed, showAll(filters))
					}
					if !logged && len(filters) > 0 {
						logged = true
						t.Logf("ml-pipeline inbound chain %s RBAC:\n%s", chain.GetName(), showAll(filters))
					}
				}
			})
		}
	})
}

func showAll(filters []*rbachttp.RBAC) string {
	parts := make([]string, 0, len(filters))
	for _, f := range filters {
		parts = append(parts, show(f))
	}
	if len(parts) == 0 {
		return "(no RBAC filter)"
	}
	return strings.Join(parts, "\n")
}
