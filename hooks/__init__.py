"""Metacontroller hooks: the Istio objects each Kubeflow profile namespace needs, as pure desired state."""
