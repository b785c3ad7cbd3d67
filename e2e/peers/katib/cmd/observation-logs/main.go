// Command observation-logs prints a trial's observation log as Katib's db-manager answers
// GetObservationLog (the call Katib's trial controller makes), in protobuf's JSON mapping
// ({"metricLogs": [{"timeStamp", "metric": {"name", "value"}}]}), for the local node's trial tests.
//
// Usage: observation-logs -db-manager 127.0.0.1:PORT <trial name>
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	api "github.com/kubeflow/katib/pkg/apis/manager/v1beta1"
)

func main() {
	address := flag.String("db-manager", "", "Katib db-manager gRPC address")
	flag.Parse()
	if *address == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: observation-logs -db-manager HOST:PORT TRIAL")
		os.Exit(2)
	}
	if err := run(*address, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "observation-logs:", err)
		os.Exit(1)
	}
}

func run(address, trial string) error {
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := api.NewDBManagerClient(conn).GetObservationLog(ctx, &api.GetObservationLogRequest{TrialName: trial})
	if err != nil {
		return err
	}
	logs := reply.GetObservationLog()
	if logs == nil {
		logs = &api.ObservationLog{}
	}
	out, err := protojson.Marshal(logs)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
