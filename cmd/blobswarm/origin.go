package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/blobswarm/blobswarm/internal/origin"
)

// originCmd serves the embedded distribution registry the demo and the
// tests use, so the compose fleet has an origin without pulling a registry
// image. Hidden: it stands in for a real registry, it is not one to run.
func originCmd() *cobra.Command {
	var listen, data string
	cmd := &cobra.Command{
		Use:    "origin",
		Short:  "Serve a plain registry (push and pull) for test fleets",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := origin.New(cmd.Context(), origin.Config{Dir: data})
			if err != nil {
				return err
			}
			defer o.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			slog.Info("origin listening", "addr", ln.Addr().String(), "data", data)
			return serve(cmd.Context(), ln, originHandler(o))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", ":5000", "address the registry API and /metrics listen on")
	cmd.Flags().StringVar(&data, "data", "/var/lib/blobswarm/origin", "directory for the registry's storage")
	return cmd
}

// originHandler adds /metrics with what the origin served, so a fleet test
// can check from outside that each blob left the origin once.
func originHandler(o *origin.Origin) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "blobswarm_origin_blob_gets_total", Help: "Blob GETs answered with 2xx or 3xx.",
		}, func() float64 { return float64(o.TotalBlobGETs()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "blobswarm_origin_blob_bytes_total", Help: "Blob bytes sent in answer to GETs.",
		}, func() float64 { return float64(o.BlobBytesSent()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "blobswarm_origin_manifest_requests_total", Help: "Manifest GETs and HEADs answered with 2xx or 3xx.",
		}, func() float64 { return float64(o.ManifestRequests()) }),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", o)
	return mux
}
