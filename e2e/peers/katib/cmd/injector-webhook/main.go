// Command injector-webhook serves Katib's own trial-Pod injection (pkg/webhook/v1beta1/pod.SidecarInjector)
// as a mutating admission webhook over HTTPS, outside any cluster: what katib-controller's webhook server
// does for Pods, for the local node's trial tests. It reads the Job, Trial and katib-config through the
// API server of -kubeconfig; Katib's collector arguments name the DB manager at
// $KATIB_DB_MANAGER_SERVICE_IP:$KATIB_DB_MANAGER_SERVICE_PORT (with KATIB_DB_MANAGER_SERVICE_NAMESPACE="").
//
// Usage: injector-webhook -listen 127.0.0.1:PORT -cert FILE -key FILE -kubeconfig FILE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	configv1beta1 "github.com/kubeflow/katib/pkg/apis/config/v1beta1"
	experimentsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/experiments/v1beta1"
	suggestionsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/suggestions/v1beta1"
	trialsv1beta1 "github.com/kubeflow/katib/pkg/apis/controller/trials/v1beta1"
	"github.com/kubeflow/katib/pkg/webhook/v1beta1/pod"
)

// Path is where katib-controller serves the same handler.
const Path = "/mutate-pod"

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HTTPS address")
	cert := flag.String("cert", "", "serving certificate (PEM)")
	key := flag.String("key", "", "serving key (PEM)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server holding the trials")
	flag.Parse()
	log.SetLogger(zap.New(zap.UseDevMode(false)))
	if err := run(*listen, *cert, *key, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "injector-webhook:", err)
		os.Exit(1)
	}
}

func run(listen, cert, key, kubeconfig string) error {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, experimentsv1beta1.AddToScheme, trialsv1beta1.AddToScheme,
		suggestionsv1beta1.AddToScheme, configv1beta1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	apiClient, err := client.New(config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	injector := pod.NewSidecarInjector(apiClient, admission.NewDecoder(scheme))
	mux := http.NewServeMux()
	mux.Handle(Path, &admission.Webhook{Handler: injector})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	server := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan error, 1)
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- server.Shutdown(ctx)
	}()
	fmt.Printf("serving Katib's Pod injector on https://%s%s\n", listen, Path)
	if err := server.ListenAndServeTLS(cert, key); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-stopped
}
