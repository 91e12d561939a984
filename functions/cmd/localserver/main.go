// Command localserver hosts every function in one process for local runs,
// the way Cloud Run hosts each one alone in GCP. Pub/Sub-triggered functions
// are also served under /<Name>/ so that a push subscription can put the
// topic in the path (/<Name>/projects/P/topics/T), from which
// functions-framework-go derives the CloudEvent's source; in GCP the
// function answers on every path, so the same push path works there.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/functions/backup"
	"github.com/sealedsense/sealedsense/functions/datarights"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/functions/operator"
	"github.com/sealedsense/sealedsense/functions/studio"
	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	log := logging.New(os.Stderr, slog.LevelInfo)
	ctx := context.Background()
	if err := register(ctx); err != nil {
		log.Error("register", "error", err.Error())
		os.Exit(1)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8690"
	}
	log.Info("functions server listening", "addr", "127.0.0.1:"+port)
	// A killed server loses nothing: Pub/Sub redelivers what was not
	// acknowledged, and ingest resumes from its reception records.
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		log.Error("functions server failed", "error", err.Error())
		os.Exit(1)
	}
}

// register serves each function under its entry point's name. In GCP each
// deploy archive registers its one function instead (shared/deploy).
func register(ctx context.Context) error {
	if err := funcframework.RegisterCloudEventFunctionContext(ctx, "/Ingest/", ingest.Handler()); err != nil {
		return err
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/Sweep", ingest.SweepHandler()); err != nil {
		return err
	}
	if err := funcframework.RegisterCloudEventFunctionContext(ctx, "/Deliver/", deliver.Handler()); err != nil {
		return err
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/DeliverSweep", deliver.SweepHandler()); err != nil {
		return err
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/Backup", backup.Handler()); err != nil {
		return err
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/DataRights", datarights.Handler()); err != nil {
		return err
	}
	// The operators' routes, at their service's root in GCP.
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/Operator/", http.StripPrefix("/Operator", operator.Handler()).ServeHTTP); err != nil {
		return err
	}
	// Studio, on its own service in GCP, beside the API here.
	st := studio.Handler()
	if err := funcframework.RegisterHTTPFunctionContext(ctx, studio.Prefix+"/", st); err != nil {
		return err
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, studio.Prefix, st); err != nil {
		return err
	}
	// The API answers every other path, as its own Cloud Run service does.
	return funcframework.RegisterHTTPFunctionContext(ctx, "/", api.Handler())
}
