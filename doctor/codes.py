"""Every code doctor can report. The README's "Diagnosing a cluster: doctor" lists the same (a test
checks it), so each code has one place that explains its cause and fix."""

from __future__ import annotations

from doctor.findings import Code

UNREADABLE = Code(
    "KFX001",
    "error",
    "doctor could not read objects it needs: its checks are incomplete",
    "bind the ClusterRole of doctor/rbac/ (get, list, watch only) to the user running doctor",
)

WEBHOOK_CONFIGURATION_MISSING = Code(
    "KFX101",
    "error",
    "the MutatingWebhookConfiguration kubeflow-extension does not exist: no Pod or Job is mutated",
    "kubectl apply -k webhook/manifests/ (or webhook/self-managed-certificates/)",
)
WEBHOOK_ENTRY_MISSING = Code(
    "KFX102",
    "error",
    "one of the six shipped webhook entries is missing from the configuration",
    "re-apply the webhook's kustomization; do not edit the configuration by hand",
)
WEBHOOK_FAILURE_POLICY = Code(
    "KFX103",
    "error",
    "a webhook entry's failurePolicy differs from the shipped one",
    "trial entries need Fail (an unmutated trial is lost), notebook entries Ignore (an outage must not "
    "keep notebooks from starting): re-apply the webhook's kustomization",
)
WEBHOOK_ROUTING = Code(
    "KFX104",
    "error",
    "a webhook entry's rules, selectors, matchConditions or path differ from the shipped ones",
    "re-apply the webhook's kustomization: the selectors route each profile namespace to /mutate or "
    "/mutate/token by its effective-identity-mode label, exactly once",
)
CA_BUNDLE_MISSING = Code(
    "KFX105",
    "error",
    "a webhook entry has no caBundle: kube-apiserver cannot verify the webhook",
    "with cert-manager, check its cainjector and the annotation cert-manager.io/inject-ca-from; with "
    "self-managed certificates, check the webhook's logs (it publishes the bundle itself)",
)
SERVING_CERTIFICATE_MISSING = Code(
    "KFX106",
    "error",
    "the webhook's serving certificate (its Secret) was not found",
    "with cert-manager: kubectl -n kubeflow-extension describe certificate kubeflow-extension-webhook; "
    "self-managed: the webhook creates the Secret when it starts (see its logs)",
)
SERVING_CERTIFICATE_UNTRUSTED = Code(
    "KFX107",
    "error",
    "the serving certificate is not signed by a CA in the configuration's caBundle",
    "kube-apiserver refuses the connection (x509: certificate signed by unknown authority): let "
    "cert-manager's cainjector or the self-managed webhook publish the current CA",
)
SERVING_CERTIFICATE_EXPIRED = Code(
    "KFX108",
    "error",
    "the serving certificate has expired",
    "renew it: cmctl renew -n kubeflow-extension kubeflow-extension-webhook, or restart the webhook "
    "with self-managed certificates",
)
SERVING_CERTIFICATE_EXPIRING = Code(
    "KFX109",
    "warning",
    "the serving certificate expires within 7 days and has not been renewed",
    "renewal should have happened 30 days before expiry: check cert-manager or the webhook's logs",
)
SERVING_CERTIFICATE_NAMES = Code(
    "KFX110",
    "error",
    "the serving certificate does not name the webhook Service's DNS name",
    "issue it for <service>.<namespace>.svc, the name kube-apiserver verifies",
)
WEBHOOK_SERVICE_UNREADY = Code(
    "KFX111",
    "error",
    "the webhook's Service is missing or has no ready endpoint: trial Pods and Jobs are refused",
    "kubectl -n kubeflow-extension get deploy,pods,endpointslices -l app.kubernetes.io/component=webhook",
)
LATER_WEBHOOK = Code(
    "KFX112",
    "warning",
    "another mutating webhook sees the same Pods and sorts after ours: it runs after us and may undo us",
    "check that it leaves our changes alone (ours is reinvoked if it changes the Pod), or rename its "
    "configuration so that it sorts before kubeflow-extension",
)

METACONTROLLER_NOT_RUNNING = Code(
    "KFX201",
    "error",
    "no ready Metacontroller was found: no profile namespace is decorated",
    "install Metacontroller (its StatefulSet or Deployment) and check its Pods",
)
METACONTROLLER_OUTSIDE = Code(
    "KFX205",
    "warning",
    "no Metacontroller workload was found, yet every profile namespace carries the label only its sync sets",
    "nothing to do if Metacontroller runs outside the cluster (as a process, or another cluster's); "
    "otherwise its Deployment or StatefulSet runs an image doctor does not recognise as metacontroller",
)
DECORATOR_CONTROLLER_MISSING = Code(
    "KFX202",
    "error",
    "the DecoratorController is missing or lacks its customize or sync hook",
    "kubectl apply -k metacontroller/ (or the overlay for your Istio)",
)
HOOKS_SERVICE_UNREADY = Code(
    "KFX203",
    "error",
    "the hooks' Service is missing or has no ready endpoint: Metacontroller cannot sync",
    "kubectl -n kubeflow-extension get deploy,pods,endpointslices "
    "-l app.kubernetes.io/name=kubeflow-extension-hooks",
)
METACONTROLLER_TOO_OLD = Code(
    "KFX206",
    "error",
    "Metacontroller is older than 1.3.0, which ignores a DecoratorController's customize hook: the hooks "
    "never see the namespace's Profile, so no profile namespace gets its objects",
    "upgrade Metacontroller to >= 1.3.0 (Kubeflow <= 1.4 shipped v0.3.0; Kubeflow 1.5 ships v2.0.4)",
)
METACONTROLLER_FORBIDDEN = Code(
    "KFX204",
    "error",
    "Metacontroller's service account is not allowed everything the DecoratorController needs",
    "bind the ClusterRole kubeflow-extension-metacontroller (metacontroller/base/metacontroller-rbac.yaml) "
    "to the service account Metacontroller runs as",
)

AUTHORIZATION_MISSING = Code(
    "KFX301",
    "error",
    "a profile namespace lacks its authorization object in the Kubeflow namespace: ml-pipeline answers "
    "403 RBAC: access denied",
    "kubectl describe namespace <ns> shows Metacontroller's SyncError Events; check the hooks' logs",
)
ENVOY_FILTER_MISSING = Code(
    "KFX302",
    "error",
    "a profile namespace in header or both mode lacks its EnvoyFilter: no identity header is set",
    "kubectl describe namespace <ns> shows Metacontroller's SyncError Events; check the hooks' logs",
)
STALE_CHILD = Code(
    "KFX303",
    "warning",
    "an object of ours exists that the namespace's identity mode does not call for",
    "Metacontroller deletes it on the next sync; if it stays, check Metacontroller's logs",
)
MODE_LABEL_DISAGREES = Code(
    "KFX304",
    "error",
    "a profile namespace's effective-identity-mode label is missing or disagrees with its annotation: "
    "the webhook routes its Pods by the label",
    "the hooks set the label on every sync: look for SyncError Events on the namespace and check that "
    "Metacontroller may update namespaces (KFX204)",
)
AMBIENT_HEADER = Code(
    "KFX305",
    "error",
    "a profile namespace on Istio ambient is in header mode: no sidecar can set the identity header",
    "annotate the Namespace or Profile kubeflow-extension.kubeflow.org/identity-mode=token (KFP >= 1.7)",
)
SERVICE_ACCOUNT_MISSING = Code(
    "KFX306",
    "error",
    "a profile namespace lacks the service account trial Jobs are given (default-editor)",
    "Kubeflow's profile controller creates it: check the Profile's status and the profile controller",
)
KATIB_INJECTION_LABEL = Code(
    "KFX307",
    "warning",
    "Katib is installed but a profile namespace lacks katib.kubeflow.org/metrics-collector-injection: "
    "enabled, so its trials get no metrics collector",
    "kubectl label namespace <ns> katib.kubeflow.org/metrics-collector-injection=enabled",
)

KUBERNETES_TOO_OLD = Code(
    "KFX401",
    "error",
    "Kubernetes is older than 1.28 and stored the webhook configuration without its matchConditions: "
    "every Pod and Job of the selected namespaces reaches the webhook",
    "upgrade the cluster to Kubernetes >= 1.28 (on 1.27, the alpha gate AdmissionWebhookMatchConditions "
    "keeps them), then re-apply the webhook's kustomization",
)
KFP_TOO_OLD_FOR_TOKEN = Code(
    "KFX402",
    "error",
    "a namespace is in token or both mode but Kubeflow Pipelines is older than 1.7 (no token support)",
    "use header mode there, or upgrade Kubeflow Pipelines to >= 1.7",
)
OVERLAY_MISMATCH = Code(
    "KFX403",
    "error",
    "the DecoratorController's authorization kind does not fit the Istio version",
    "Istio >= 1.6: kubectl apply -k metacontroller/ (or metacontroller/istio-1.6-1.14/); "
    "Istio < 1.6: metacontroller/legacy-istio/",
)
HEADER_FORM_MISMATCH = Code(
    "KFX404",
    "error",
    "the EnvoyFilter's header field does not fit the Istio version (append_action needs Istio >= 1.15)",
    "Istio 1.6-1.14: kubectl apply -k metacontroller/istio-1.6-1.14/",
)

NATIVE_SIDECARS_ON_OLD_NODES = Code(
    "KFX405",
    "error",
    "istiod forces native sidecars (ENABLE_NATIVE_SIDECARS=true) but a node's kubelet is older than 1.29: "
    "there the proxy is an init container that never ends, so Pods with a sidecar never start",
    "set ENABLE_NATIVE_SIDECARS=auto (Istio >= 1.27: it checks each node) or false, or upgrade the nodes "
    "to Kubernetes >= 1.29 (a 1.28 kubelet with the SidecarContainers gate on is fine: --suppress KFX405)",
)
KATIB_UNTESTED = Code(
    "KFX406",
    "warning",
    "Katib's controller is a release outside the compatibility table (v0.9 to v0.19): the arguments the "
    "webhook gives its metrics collector are not known to work there",
    "use a Katib release in the README's compatibility table, or check a trial's collector logs",
)

CATALOGUE = (
    UNREADABLE,
    WEBHOOK_CONFIGURATION_MISSING,
    WEBHOOK_ENTRY_MISSING,
    WEBHOOK_FAILURE_POLICY,
    WEBHOOK_ROUTING,
    CA_BUNDLE_MISSING,
    SERVING_CERTIFICATE_MISSING,
    SERVING_CERTIFICATE_UNTRUSTED,
    SERVING_CERTIFICATE_EXPIRED,
    SERVING_CERTIFICATE_EXPIRING,
    SERVING_CERTIFICATE_NAMES,
    WEBHOOK_SERVICE_UNREADY,
    LATER_WEBHOOK,
    METACONTROLLER_NOT_RUNNING,
    METACONTROLLER_OUTSIDE,
    DECORATOR_CONTROLLER_MISSING,
    HOOKS_SERVICE_UNREADY,
    METACONTROLLER_FORBIDDEN,
    METACONTROLLER_TOO_OLD,
    AUTHORIZATION_MISSING,
    ENVOY_FILTER_MISSING,
    STALE_CHILD,
    MODE_LABEL_DISAGREES,
    AMBIENT_HEADER,
    SERVICE_ACCOUNT_MISSING,
    KATIB_INJECTION_LABEL,
    KUBERNETES_TOO_OLD,
    KFP_TOO_OLD_FOR_TOKEN,
    OVERLAY_MISMATCH,
    HEADER_FORM_MISMATCH,
    NATIVE_SIDECARS_ON_OLD_NODES,
    KATIB_UNTESTED,
)
