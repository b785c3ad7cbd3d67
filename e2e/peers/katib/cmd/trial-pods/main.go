// Command trial-pods runs Katib's own Pod webhook (pkg/webhook/v1beta1/pod) over trial Pods and writes
// each mutated Pod as a JSON fixture: what kube-apiserver hands to the next webhook in name order, ours.
//
// The webhook reads the Trial, Experiment, Suggestion and katib-config through its client; a
// controller-runtime fake client holds them as Katib's controllers would have created them.
//
// Usage: trial-pods <output directory>
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	configv1beta1 "github.com/kubeflow/katib/pkg/apis/config/v1beta1"
	commonv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/common/v1beta1"
	experimentsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/experiments/v1beta1"
	suggestionsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/suggestions/v1beta1"
	trialsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/trials/v1beta1"
	"github.com/kubeflow/katib/pkg/controller.v1beta1/consts"
	"github.com/kubeflow/katib/pkg/webhook/v1beta1/pod"
	"sigs.k8s.io/yaml"
)

const (
	namespace    = "kubeflow-user-example-com"
	experiment   = "random-exp"
	trialName    = "random-exp-x7k2p"
	istioVersion = "1.26.1"
)

// mainCommands are the primary container's command shapes: a plain training program, and Kale's trial
// command (one string; <= 0.6 joins its lines with 16 spaces, >= 0.7 with 15, as Kale's templates do).
var mainCommands = map[string][]string{
	"plain": {"python3", "/opt/mxnet-mnist/mnist.py", "--lr=0.01", "--num-layers=3"},
	"kale-0.6": {`python3 -u -c "from kale.common.kfputils                import create_and_wait_kfp_run;` +
		`                create_and_wait_kfp_run(pipeline_id='3f2c1b7e', run_name='` + trialName + `',` +
		` experiment_name='kale-exp', lr='0.01')"`},
	"kale-0.7": {`python3 -u -c "from kale.common.katibutils import create_and_wait_kfp_run;` +
		`               create_and_wait_kfp_run(lr='0.01', pipeline_id='3f2c1b7e', version_id='8d4e',` +
		` run_name='` + trialName + `', experiment_name='kale-exp', api_version='v1beta1')"`},
}

// katibVersion is the version of Katib's module this program was built with (go.mod pins it).
var katibVersion = func() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/kubeflow/katib" {
				return dep.Version
			}
		}
	}
	panic("built without the github.com/kubeflow/katib module")
}()

// primaryContainers name the trial template's primary container, as each command's source does.
var primaryContainers = map[string]string{"plain": "training-container", "kale-0.6": trialName, "kale-0.7": "main"}

type fixtureCase struct {
	Collector        commonv1beta1.CollectorKind `json:"collector"`
	WaitAllProcesses *bool                       `json:"waitAllProcesses"`
	Main             string                      `json:"main"`
	EarlyStopping    bool                        `json:"earlyStopping"`
}

func (c fixtureCase) name() string {
	wait := "unset"
	if c.WaitAllProcesses != nil {
		wait = fmt.Sprint(*c.WaitAllProcesses)
	}
	name := fmt.Sprintf("%s-wait-%s-%s", strings.ToLower(string(c.Collector)), wait, c.Main)
	if c.EarlyStopping {
		name += "-earlystop"
	}
	return name
}

func cases() []fixtureCase {
	yes, no := true, false
	var all []fixtureCase
	for _, kind := range []commonv1beta1.CollectorKind{
		commonv1beta1.StdOutCollector, commonv1beta1.FileCollector, commonv1beta1.TfEventCollector,
	} {
		for _, wait := range []*bool{nil, &yes, &no} {
			for _, main := range []string{"plain", "kale-0.6", "kale-0.7"} {
				all = append(all, fixtureCase{Collector: kind, WaitAllProcesses: wait, Main: main})
			}
		}
	}
	return append(all, fixtureCase{Collector: commonv1beta1.StdOutCollector, WaitAllProcesses: &yes, Main: "plain", EarlyStopping: true})
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, experimentsv1beta1.AddToScheme, trialsv1beta1.AddToScheme,
		suggestionsv1beta1.AddToScheme, configv1beta1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return scheme
}

// katibConfig is the katib-config ConfigMap of a default install, with waitAllProcesses set as asked.
func katibConfig(wait *bool) *corev1.ConfigMap {
	image := func(name string) string { return "ghcr.io/kubeflow/katib/" + name + ":" + katibVersion }
	collectors := []configv1beta1.MetricsCollectorConfig{
		{CollectorKind: string(commonv1beta1.StdOutCollector), Image: image("file-metrics-collector")},
		{CollectorKind: string(commonv1beta1.FileCollector), Image: image("file-metrics-collector")},
		{CollectorKind: string(commonv1beta1.TfEventCollector), Image: image("tfevent-metrics-collector")},
	}
	for i := range collectors {
		collectors[i].WaitAllProcesses = wait
	}
	config := configv1beta1.KatibConfig{
		TypeMeta:      metav1.TypeMeta{APIVersion: "config.kubeflow.org/v1beta1", Kind: "KatibConfig"},
		RuntimeConfig: configv1beta1.RuntimeConfig{MetricsCollectorConfigs: collectors},
	}
	text, err := yaml.Marshal(config)
	if err != nil {
		panic(err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: consts.KatibConfigMapName, Namespace: consts.DefaultKatibNamespace},
		Data:       map[string]string{consts.LabelKatibConfigTag: string(text)},
	}
}

// objects are the Experiment (defaulted as Katib's validating webhook leaves it), the Trial its controller
// creates from it, the Suggestion and the trial's Job owned by the Trial.
func objects(c fixtureCase) []client.Object {
	exp := &experimentsv1beta1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Name: experiment, Namespace: namespace},
		Spec: experimentsv1beta1.ExperimentSpec{
			Objective: &commonv1beta1.ObjectiveSpec{
				Type: commonv1beta1.ObjectiveTypeMaximize, ObjectiveMetricName: "accuracy",
				AdditionalMetricNames: []string{"loss"},
			},
			Algorithm:            &commonv1beta1.AlgorithmSpec{AlgorithmName: "random"},
			MetricsCollectorSpec: &commonv1beta1.MetricsCollectorSpec{Collector: &commonv1beta1.CollectorSpec{Kind: c.Collector}},
			TrialTemplate:        &experimentsv1beta1.TrialTemplate{PrimaryContainerName: primaryContainers[c.Main]},
		},
	}
	if c.EarlyStopping {
		exp.Spec.EarlyStopping = &commonv1beta1.EarlyStoppingSpec{AlgorithmName: "medianstop"}
	}
	exp.SetDefault()
	trial := &trialsv1beta1.Trial{
		ObjectMeta: metav1.ObjectMeta{
			Name: trialName, Namespace: namespace, UID: "0b1e",
			Labels: map[string]string{consts.LabelExperimentName: experiment},
		},
		Spec: trialsv1beta1.TrialSpec{
			Objective:            exp.Spec.Objective,
			MetricsCollector:     *exp.Spec.MetricsCollectorSpec,
			PrimaryContainerName: exp.Spec.TrialTemplate.PrimaryContainerName,
		},
	}
	if c.EarlyStopping {
		trial.Spec.EarlyStoppingRules = []commonv1beta1.EarlyStoppingRule{
			{Name: "accuracy", Value: "0.8", Comparison: commonv1beta1.ComparisonTypeLess, StartStep: 3},
		}
	}
	suggestion := &suggestionsv1beta1.Suggestion{
		ObjectMeta: metav1.ObjectMeta{Name: experiment, Namespace: namespace},
		Spec: suggestionsv1beta1.SuggestionSpec{
			Algorithm: exp.Spec.Algorithm, EarlyStopping: exp.Spec.EarlyStopping,
		},
	}
	controller := true
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: trialName, Namespace: namespace, UID: "5d6a",
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "kubeflow.org/v1beta1", Kind: "Trial", Name: trialName, UID: "0b1e", Controller: &controller,
			}},
		},
	}
	return []client.Object{exp, trial, suggestion, job, katibConfig(c.WaitAllProcesses)}
}

// trialPod is the Job's Pod as kube-apiserver holds it after Istio's injector (which sorts first).
func trialPod(c fixtureCase, primary string) *corev1.Pod {
	controller := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: trialName + "-", Namespace: namespace,
			Labels: map[string]string{
				"batch.kubernetes.io/job-name": trialName, "job-name": trialName,
				"sidecar.istio.io/inject": "true", "kubeflow-extension": "true",
			},
			Annotations: map[string]string{"sidecar.istio.io/inject": "true", "sidecar.istio.io/status": "{}"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: trialName, UID: "5d6a", Controller: &controller,
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:      corev1.RestartPolicyNever,
			ServiceAccountName: "default-editor",
			InitContainers:     []corev1.Container{{Name: "istio-init", Image: "docker.io/istio/proxyv2:" + istioVersion}},
			Containers: []corev1.Container{
				{Name: primary, Image: "docker.io/kubeflowkatib/mxnet-mnist:" + katibVersion, Command: mainCommands[c.Main]},
				{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:" + istioVersion, Args: []string{"proxy", "sidecar"}},
			},
		},
	}
}

// fixture is one generated file: the case and the Pod after Katib's webhook.
type fixture struct {
	Katib string          `json:"katib"`
	Case  fixtureCase     `json:"case"`
	Pod   json.RawMessage `json:"pod"`
}

func generate(c fixtureCase, scheme *runtime.Scheme) ([]byte, error) {
	objs := objects(c)
	fakeClient := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	trial := objs[1].(*trialsv1beta1.Trial)
	raw, err := json.Marshal(trialPod(c, trial.Spec.PrimaryContainerName))
	if err != nil {
		return nil, err
	}
	injector := pod.NewSidecarInjector(fakeClient, admission.NewDecoder(scheme))
	response := injector.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "705ab4f5", Namespace: namespace, Operation: admissionv1.Create,
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Object: runtime.RawExtension{Raw: raw},
	}})
	if !response.Allowed || response.Result != nil && response.Result.Code >= 400 {
		return nil, fmt.Errorf("katib's webhook refused the Pod: %+v", response.Result)
	}
	if len(response.Patches) == 0 {
		return nil, fmt.Errorf("katib's webhook left the Pod unchanged")
	}
	patch, err := json.Marshal(response.Patches)
	if err != nil {
		return nil, err
	}
	decoded, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	mutated, err := decoded.Apply(raw)
	if err != nil {
		return nil, err
	}
	// Go maps encode with sorted keys: the same input gives the same bytes.
	var generic map[string]any
	if err := json.Unmarshal(mutated, &generic); err != nil {
		return nil, err
	}
	sorted, err := json.Marshal(generic)
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(fixture{Katib: katibVersion, Case: c, Pod: sorted}, "", "  ")
	return append(out, '\n'), err
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: trial-pods <output directory>")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scheme := newScheme()
	for _, c := range cases() {
		out, err := generate(c, scheme)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", c.name(), err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name()+".json"), out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
