// Command pilot-agent stands in for a classic Istio sidecar's agent in the local node's trial Pods: like
// pilot-agent it serves 127.0.0.1:15020 and runs until POST /quitquitquit or SIGTERM, and it logs which
// of the Pod's processes were still running when it was told to stop (the Pod shares one process
// namespace), so a test can tell what stopped it and in which order; a POST's User-Agent tells which
// program sent it (BusyBox's wget says "Wget", Python's urllib "Python-urllib/…").
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:15020", "status address (pilot-agent's status port)")
	flag.Parse() // pilot-agent's own words ("proxy sidecar") are accepted and ignored
	stop := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusOK)
		select {
		case stop <- fmt.Sprintf("POST /quitquitquit (User-Agent %q)", r.UserAgent()):
		default:
		}
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		err := server.ListenAndServe()
		fmt.Println("status server:", err)
		os.Exit(1)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready on", *listen)
	var reason string
	select {
	case reason = <-stop:
	case received := <-signals:
		reason = received.String()
	}
	fmt.Printf("stopped by %s; other processes: %s\n", reason, strings.Join(otherProcesses(), ", "))
	time.Sleep(200 * time.Millisecond) // let the answer to /quitquitquit go out
	os.Exit(0)
}

// otherProcesses names (argv[0]'s base name) the processes this one can see, but itself and PID 1.
func otherProcesses() []string {
	entries, _ := os.ReadDir("/proc")
	var names []string
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		names = append(names, filepath.Base(strings.SplitN(string(cmdline), "\x00", 2)[0]))
	}
	sort.Strings(names)
	return names
}
