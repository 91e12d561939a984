package connector

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// DialLink returns the Pub/Sub client of one link. endpoint, when set, is a
// plaintext emulator endpoint (host:port), as a local run gives each link
// its own network path; empty, the client goes where PUBSUB_EMULATOR_HOST
// or the default endpoint says. Binding a link to its own interface is
// left to the hardware port.
//
// A broken link's connection is retried within about 2 s instead of gRPC's
// default backoff of up to 2 min, so a link that comes back is found by
// the next probe.
func DialLink(ctx context.Context, project, endpoint string) (*pubsub.Client, error) {
	opts := []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})),
	}
	if endpoint != "" {
		opts = append(opts,
			option.WithEndpoint(endpoint),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithoutAuthentication(),
			option.WithTelemetryDisabled(),
		)
	}
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("connector: pubsub client for %q: %w", endpoint, err)
	}
	return c, nil
}

// PubSubLink wires a link to a client: publishers to the uplinks and
// status topics that give up after timeout, and the downlinks
// subscription. stop flushes and stops the publishers.
func PubSubLink(client *pubsub.Client, uplinks, status, subscription string, timeout time.Duration) (link *Link, stop func()) {
	up, st := client.Publisher(uplinks), client.Publisher(status)
	for _, p := range []*pubsub.Publisher{up, st} {
		p.PublishSettings.Timeout = timeout
	}
	return &Link{Uplinks: up, Status: st, Downlinks: client.Subscriber(subscription)}, func() { up.Stop(); st.Stop() }
}
