package legacy

import (
	"fmt"
	"slices"
	"testing"

	"maps"
)

// What a Kubeflow 1.1/1.2 cluster already has around ml-pipeline, as pilot reads it. Each fact names the
// kubeflow/manifests file and release tag it was taken from (the same file is identical at v1.1.0 and v1.2.0).
const kubeflowIstioConfig = `
# istio/istio/base/kf-istio-resources.yaml@v1.1.0 and @v1.2.0; mode: $(clusterRbacConfig), which
# istio/istio/base/params.env@v1.1.0 and @v1.2.0 sets to ON_WITH_EXCLUSION.
apiVersion: rbac.istio.io/v1alpha1
kind: ClusterRbacConfig
metadata:
  name: default
spec:
  mode: ON_WITH_EXCLUSION
  exclusion:
    namespaces:
    - istio-system
---
# pipeline/installs/multi-user/istio-authorization-config.yaml@v1.1.0 and @v1.2.0: the role every
# ServiceRoleBinding of the hooks refers to.
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRole
metadata:
  name: ml-pipeline-services
  namespace: kubeflow
spec:
  rules:
  - services:
    - ml-pipeline.kubeflow.svc.cluster.local
    - ml-pipeline-ui.kubeflow.svc.cluster.local
    - ml-pipeline-visualizationserver.kubeflow.svc.cluster.local
    - mysql.kubeflow.svc.cluster.local
---
# pipeline/installs/multi-user/istio-authorization-config.yaml@v1.1.0 and @v1.2.0.
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRoleBinding
metadata:
  name: bind-ml-pipeline-internal
  namespace: kubeflow
spec:
  subjects:
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/ml-pipeline
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/ml-pipeline-ui
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/ml-pipeline-persistenceagent
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/ml-pipeline-scheduledworkflow
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/ml-pipeline-viewer-crd-service-account
  - properties:
      source.principal: cluster.local/ns/kubeflow/sa/kubeflow-pipelines-cache
  roleRef:
    kind: ServiceRole
    name: ml-pipeline-services
---
# istio-1-3-1/istio-install-1-3-1/base/config-map.yaml@v1.1.0 and @v1.2.0 (ConfigMap
# istio-security-custom-resources, applied at install): mutual TLS is permissive mesh-wide.
apiVersion: authentication.istio.io/v1alpha1
kind: MeshPolicy
metadata:
  name: default
spec:
  peers:
  - mtls:
      mode: PERMISSIVE
`

// kubeflowService is one Kubeflow Service, the label of its Pods and their service account.
type kubeflowService struct {
	name           string
	ports          map[string]uint32
	serviceAccount string
}

// kubeflowServices are the Services the expectations name, as Kubeflow 1.1/1.2 defines them; the first is
// ml-pipeline.
var kubeflowServices = []kubeflowService{
	// pipeline/upstream/base/pipeline/ml-pipeline-apiserver-service.yaml@v1.1.0 and @v1.2.0 (ports,
	// selector app: ml-pipeline); ml-pipeline-apiserver-deployment.yaml (serviceAccountName: ml-pipeline).
	{"ml-pipeline", map[string]uint32{"http": 8888, "grpc": 8887}, "ml-pipeline"},
	// pipeline/upstream/base/pipeline/ml-pipeline-visualization-service.yaml@v1.1.0 and @v1.2.0;
	// ml-pipeline-visualization-deployment.yaml (serviceAccountName: ml-pipeline-visualizationserver).
	{"ml-pipeline-visualizationserver", map[string]uint32{"http": 8888}, "ml-pipeline-visualizationserver"},
}

var mlPipeline = kubeflowServices[0]

// TestCasesNameKubeflowsServices: the services the cases' expectations refer to are Kubeflow 1.1/1.2's,
// on the same port numbers (port names differ between releases and decide nothing here).
func TestCasesNameKubeflowsServices(t *testing.T) {
	for _, c := range cases {
		var want, got []string
		for _, s := range kubeflowServices {
			want = append(want, fmt.Sprint(s.name, slices.Sorted(maps.Values(s.ports))))
		}
		for _, s := range c.Services {
			got = append(got, fmt.Sprint(s.Name, slices.Sorted(maps.Values(s.Ports))))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: the cases name services %v, Kubeflow 1.1/1.2 has %v", c.Name, got, want)
		}
	}
}
