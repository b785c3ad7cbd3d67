module kubeflow-extension.local/e2e/istio-cases

go 1.26.8
