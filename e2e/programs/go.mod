// Small programs for the images of the local node (e2e/node.py): the Pod sandbox and an Istio proxy stand-in.
module kubeflow-extension/e2e/programs

go 1.22
