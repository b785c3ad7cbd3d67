// Stands in for pkg/metricscollector/v1beta1/common/pns.go when e2e/build-control-plane.sh builds Katib's
// file collector as file-metricscollector-wait-probe (go build -overlay). Katib's own main() parses its
// flags and decides whether to wait for all processes; this file only reports that decision as JSON
// on stdout and exits 0 instead of waiting, so a test can run the collector's real argument handling.
// The directory's leading underscore keeps it out of this module's own packages.
package common

import (
	"encoding/json"
	"os"
	"time"
)

// WaitPidsOpts has the fields of Katib's type of the same name; main() fills it.
type WaitPidsOpts struct {
	PollInterval           time.Duration
	Timeout                time.Duration
	WaitAll                bool
	CompletedMarkedDirPath string
}

// WaitMainProcesses prints the options main() computed from its arguments, then ends the program.
func WaitMainProcesses(opts WaitPidsOpts) error {
	if err := json.NewEncoder(os.Stdout).Encode(opts); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
	return nil
}

// GetMainProcesses is called by the early-stopping watcher, which the probe never lets get that far.
func GetMainProcesses(string) (map[int]bool, int, error) {
	select {}
}
