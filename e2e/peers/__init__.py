"""The peers: Kubeflow's components (Katib, Kale, KFP's ml-pipeline, its RBAC) as stand-ins or as real
releases run here, and the builds of their programs."""
