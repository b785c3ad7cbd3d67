// Small programs for the images of the local node (e2e/cluster/node.py): the Pod sandbox and an Istio proxy stand-in.
module kubeflow-extension/e2e/peers/programs

go 1.22
