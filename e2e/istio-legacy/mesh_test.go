package legacy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	xdsapi "github.com/envoyproxy/go-control-plane/envoy/api/v2"
	listener "github.com/envoyproxy/go-control-plane/envoy/api/v2/listener"
	hcm "github.com/envoyproxy/go-control-plane/envoy/config/filter/network/http_connection_manager/v2"
	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes"
	"github.com/golang/protobuf/ptypes/any"
	structpb "github.com/golang/protobuf/ptypes/struct"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	"istio.io/istio/pilot/pkg/networking/plugin"
	"istio.io/istio/pilot/pkg/serviceregistry/kube/controller"
	istiomesh "istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/collections"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

const (
	clusterDomain = "cluster.local"
	// proxyVersion is the Istio version the simulated sidecars report.
	proxyVersion = "1.5.10"
)

// istiodPlugins are istiod 1.5's default plugins (bootstrap.DefaultPlugins): authn builds the mutual-TLS
// filter chains and the istio_authn filter, authz the RBAC filters.
var istiodPlugins = []string{plugin.Authn, plugin.Authz, plugin.Health, plugin.Mixer}

// mesh is pilot 1.5 with a Kubeflow 1.1/1.2 cluster, the hooks' objects and a Pod per workload.
type mesh struct {
	env       *model.Environment
	generator core.ConfigGenerator
	pods      map[string]*corev1.Pod // by namespace/name
	stop      chan struct{}
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// noPush is the xDS server the Kubernetes registry would notify; here nothing is pushed.
type noPush struct{}

func (noPush) EDSUpdate(string, string, string, []*model.IstioEndpoint) error { return nil }
func (noPush) SvcUpdate(string, string, string, model.Event)                  {}
func (noPush) ConfigUpdate(*model.PushRequest)                                {}
func (noPush) ProxyUpdate(string, string)                                     {}

func newPod(namespace, name, ip, serviceAccount string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccount,
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

// kubernetesObjects are Kubeflow's Services with one backend Pod each, and a Pod per calling workload.
func kubernetesObjects(c istiocases.Case) ([]runtime.Object, map[string]*corev1.Pod) {
	var objects []runtime.Object
	pods := map[string]*corev1.Pod{}
	next := 10
	ip := func() string { next++; return fmt.Sprintf("10.1.0.%d", next) }
	for i, s := range kubeflowServices {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: c.KubeflowNamespace},
			Spec: corev1.ServiceSpec{
				ClusterIP: fmt.Sprintf("10.0.0.%d", 10+i),
				Selector:  map[string]string{"app": s.name},
			},
		}
		for _, name := range slices.Sorted(maps.Keys(s.ports)) {
			port := s.ports[name]
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
				Name: name, Port: int32(port), TargetPort: intstr.FromInt(int(port)), Protocol: corev1.ProtocolTCP,
			})
		}
		backend := newPod(c.KubeflowNamespace, s.name+"-0", ip(), s.serviceAccount, map[string]string{"app": s.name})
		objects = append(objects, svc, backend)
		pods[podKey(backend.Namespace, backend.Name)] = backend
	}
	for _, w := range c.Workloads {
		key := podKey(w.Namespace, w.Name)
		if _, seen := pods[key]; !seen {
			pod := newPod(w.Namespace, w.Name, ip(), "default-editor", w.Labels)
			objects = append(objects, pod)
			pods[key] = pod
		}
	}
	return objects, pods
}

// documents joins YAML/JSON documents into one stream (JSON is YAML).
func documents(docs ...string) string { return strings.Join(docs, "\n---\n") }

func objectsYAML(objects []json.RawMessage) string {
	docs := make([]string, 0, len(objects))
	for _, o := range objects {
		docs = append(docs, string(o))
	}
	return documents(docs...)
}

// newMesh reads Kubeflow's and the hooks' objects as pilot 1.5 does, registers the case's Kubernetes
// objects through pilot's Kubernetes registry, and prepares a push. Close it when done.
func newMesh(c istiocases.Case, objects []json.RawMessage) (*mesh, error) {
	configs, unknown, err := crd.ParseInputs(documents(kubeflowIstioConfig, objectsYAML(objects)))
	if err != nil {
		return nil, fmt.Errorf("Istio 1.5 cannot read the objects: %w", err)
	}
	if len(unknown) != 0 {
		return nil, fmt.Errorf("kinds pilot 1.5 does not know: %v", unknown)
	}
	store := memory.Make(collections.Pilot)
	for _, cfg := range configs {
		if _, err := store.Create(cfg); err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", cfg.Type, cfg.Namespace, cfg.Name, err)
		}
	}
	kubernetes, pods := kubernetesObjects(c)
	registry := controller.NewController(fake.NewSimpleClientset(kubernetes...), controller.Options{
		DomainSuffix: clusterDomain,
		XDSUpdater:   noPush{},
	})
	m := &mesh{pods: pods, stop: make(chan struct{})}
	go registry.Run(m.stop)
	if err := waitForServices(registry, len(kubeflowServices)); err != nil {
		m.Close()
		return nil, err
	}
	meshConfig := istiomesh.DefaultMeshConfig()
	m.env = &model.Environment{
		ServiceDiscovery: registry,
		IstioConfigStore: model.MakeIstioStore(store),
		Watcher:          istiomesh.NewFixedWatcher(&meshConfig),
		PushContext:      model.NewPushContext(),
	}
	if err := m.env.PushContext.InitContext(m.env, nil, nil); err != nil {
		m.Close()
		return nil, err
	}
	m.generator = core.NewConfigGenerator(istiodPlugins)
	return m, nil
}

// waitForServices waits until the registry has handled its informers' first events.
func waitForServices(registry *controller.Controller, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if services, _ := registry.Services(); registry.HasSynced() && len(services) == want {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pilot's Kubernetes registry did not list %d services in time", want)
}

func (m *mesh) Close() { close(m.stop) }

// proxy is the sidecar of a Pod as istiod 1.5 sets it up when the sidecar connects (ads.go initConnection).
func (m *mesh) proxy(namespace, name string) (*model.Proxy, error) {
	pod, ok := m.pods[podKey(namespace, name)]
	if !ok {
		return nil, fmt.Errorf("no Pod %s/%s", namespace, name)
	}
	ip := pod.Status.PodIP
	id := strings.Join([]string{string(model.SidecarProxy), ip, pod.Name + "." + pod.Namespace, pod.Namespace + ".svc." + clusterDomain}, "~")
	node, err := model.ParseServiceNodeWithMetadata(id, &model.NodeMetadata{
		Namespace:      pod.Namespace,
		Labels:         pod.Labels,
		InstanceIPs:    []string{ip},
		ServiceAccount: pod.Spec.ServiceAccountName,
		IstioVersion:   proxyVersion,
		SdsEnabled:     true,
	})
	if err != nil {
		return nil, err
	}
	node.ConfigNamespace = model.GetProxyConfigNamespace(node)
	if err := node.SetServiceInstances(m.env); err != nil {
		return nil, err
	}
	if err := node.SetWorkloadLabels(m.env); err != nil {
		return nil, err
	}
	node.SetSidecarScope(m.env.PushContext)
	node.SetGatewaysForProxy(m.env.PushContext)
	return node, nil
}

func (m *mesh) listeners(node *model.Proxy) []*xdsapi.Listener {
	return m.generator.BuildListeners(node, m.env.PushContext)
}

// routes are every route table the Pod's listeners refer to (RDS), as pilot generates them.
func (m *mesh) routes(node *model.Proxy) ([]*xdsapi.RouteConfiguration, error) {
	var names []string
	for _, l := range m.listeners(node) {
		for _, chain := range l.GetFilterChains() {
			manager, err := connectionManager(chain)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
			if name := manager.GetRds().GetRouteConfigName(); name != "" {
				names = append(names, name)
			}
		}
	}
	return m.generator.BuildHTTPRoutes(node, m.env.PushContext, names), nil
}

// decode reads a filter's configuration, typed (Any) or as a Struct, into out.
func decode(typed *any.Any, untyped *structpb.Struct, out proto.Message) error {
	if typed != nil {
		return ptypes.UnmarshalAny(typed, out)
	}
	text, err := (&jsonpb.Marshaler{}).MarshalToString(untyped)
	if err != nil {
		return err
	}
	return jsonpb.UnmarshalString(text, out)
}

// connectionManager is the chain's HTTP connection manager, nil for a TCP chain.
func connectionManager(chain *listener.FilterChain) (*hcm.HttpConnectionManager, error) {
	for _, filter := range chain.GetFilters() {
		if filter.GetName() != "envoy.http_connection_manager" {
			continue
		}
		manager := &hcm.HttpConnectionManager{}
		if err := decode(filter.GetTypedConfig(), filter.GetConfig(), manager); err != nil {
			return nil, err
		}
		return manager, nil
	}
	return nil, nil
}

// show renders a generated proto for messages and the test log.
func show(m proto.Message) string {
	out, err := (&jsonpb.Marshaler{Indent: "  "}).MarshalToString(m)
	if err != nil {
		return err.Error()
	}
	return out
}
