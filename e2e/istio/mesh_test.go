package istio

import (
	"fmt"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/log"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

const (
	clusterDomain = "cluster.local"
	// proxyVersion is the Istio version the simulated sidecars report.
	proxyVersion = "1.31.0"
)

// quietIstioLogs keeps pilot's informational logging out of the test output.
func quietIstioLogs() {
	for _, scope := range log.Scopes() {
		scope.SetOutputLevel(log.WarnLevel)
	}
}

// mesh is one case's objects translated by pilot, with the Pods that stand for the workloads.
type mesh struct {
	server *xds.FakeDiscoveryServer
	pods   map[string]*corev1.Pod // by namespace/name
	c      istiocases.Case
}

func podKey(namespace, name string) string { return namespace + "/" + name }

func newPod(namespace, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default-editor",
			Containers:         []corev1.Container{{Name: "main", Image: "example.invalid/main"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// kubernetesObjects are the Kubeflow Services, one backend Pod each, and a Pod per calling workload.
func kubernetesObjects(c istiocases.Case) ([]runtime.Object, map[string]*corev1.Pod) {
	var objects []runtime.Object
	pods := map[string]*corev1.Pod{}
	next := 10
	ip := func() string { next++; return fmt.Sprintf("10.1.0.%d", next) }
	for i, s := range c.Services {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: c.KubeflowNamespace},
			Spec: corev1.ServiceSpec{
				ClusterIP: fmt.Sprintf("10.0.0.%d", 10+i),
				Selector:  map[string]string{"app": s.Name},
			},
		}
		for name, port := range s.Ports {
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
				Name: name, Port: int32(port), TargetPort: intstr.FromInt32(int32(port)), Protocol: corev1.ProtocolTCP,
			})
		}
		backend := newPod(c.KubeflowNamespace, s.Name+"-0", ip(), map[string]string{"app": s.Name})
		backend.Spec.ServiceAccountName = s.Name
		objects = append(objects, svc, backend)
		pods[podKey(backend.Namespace, backend.Name)] = backend
	}
	for _, w := range c.Workloads {
		key := podKey(w.Namespace, w.Name)
		if _, seen := pods[key]; seen {
			continue
		}
		pod := newPod(w.Namespace, w.Name, ip(), w.Labels)
		objects = append(objects, pod)
		pods[key] = pod
	}
	return objects, pods
}

// hookYAML is the case's objects as one multi-document stream (JSON is YAML).
func hookYAML(c istiocases.Case) string {
	docs := make([]string, 0, len(c.Objects))
	for _, o := range c.Objects {
		docs = append(docs, string(o))
	}
	return strings.Join(docs, "\n---\n")
}

func newMesh(t *testing.T, c istiocases.Case) *mesh {
	t.Helper()
	configs, unknown, err := crd.ParseInputs(hookYAML(c))
	if err != nil {
		t.Fatalf("Istio cannot read the hooks' objects: %v", err)
	}
	if len(unknown) != 0 {
		t.Fatalf("kinds pilot does not know: %v", unknown)
	}
	objects, pods := kubernetesObjects(c)
	server := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs, KubernetesObjects: objects})
	return &mesh{server: server, pods: pods, c: c}
}

// proxy is the sidecar of a Pod, as istiod sees it when that sidecar connects.
func (m *mesh) proxy(t *testing.T, namespace, name string) *model.Proxy {
	t.Helper()
	pod, ok := m.pods[podKey(namespace, name)]
	if !ok {
		t.Fatalf("no Pod %s/%s", namespace, name)
	}
	return m.server.SetupProxy(&model.Proxy{
		ID:              pod.Name + "." + pod.Namespace,
		ConfigNamespace: pod.Namespace,
		IPAddresses:     []string{pod.Status.PodIP},
		Labels:          pod.Labels,
		DNSDomain:       pod.Namespace + ".svc." + clusterDomain,
		Metadata: &model.NodeMetadata{
			ClusterID:      constants.DefaultClusterName,
			Namespace:      pod.Namespace,
			Labels:         pod.Labels,
			ServiceAccount: pod.Spec.ServiceAccountName,
			IstioVersion:   proxyVersion,
		},
	})
}

// virtualHost is the outbound virtual host Envoy uses for host:port in the route table named after port.
func virtualHost(t *testing.T, routes []*route.RouteConfiguration, host string, port uint32) *route.VirtualHost {
	t.Helper()
	table := fmt.Sprint(port)
	name := fmt.Sprintf("%s:%d", host, port)
	for _, rc := range routes {
		if rc.GetName() != table {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() == name {
				return vh
			}
		}
		t.Fatalf("route table %q has no virtual host %q", table, name)
	}
	t.Fatalf("no route table %q", table)
	return nil
}

// inboundChains are ml-pipeline's inbound filter chains for a destination port and transport
// ("tls" for a mutual-TLS peer, "raw_buffer" for plaintext).
func inboundChains(t *testing.T, listeners []*listener.Listener, port uint32, transport string) []*listener.FilterChain {
	t.Helper()
	var found []*listener.FilterChain
	var seen []string
	for _, l := range listeners {
		seen = append(seen, l.GetName())
		if l.GetName() != "virtualInbound" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			match := fc.GetFilterChainMatch()
			seen = append(seen, fmt.Sprintf("  chain %s: %v", fc.GetName(), match))
			if match.GetDestinationPort().GetValue() == port && match.GetTransportProtocol() == transport {
				found = append(found, fc)
			}
		}
	}
	if len(found) == 0 {
		t.Fatalf("no inbound %s filter chain for port %d; listeners:\n%s", transport, port, strings.Join(seen, "\n"))
	}
	return found
}

// show renders a generated proto for the test log (go test -v).
func show(m proto.Message) string {
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// eachTranslatedCase runs check as a subtest for every case pilot can translate, on its own mesh.
func eachTranslatedCase(t *testing.T, check func(t *testing.T, c istiocases.Case, m *mesh)) {
	for _, c := range cases {
		if c.Translate {
			t.Run(c.Name, func(t *testing.T) { check(t, c, newMesh(t, c)) })
		}
	}
}
