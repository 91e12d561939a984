// Command deliverload measures webhook delivery on the emulators: it stores
// events as ingest does, hands them to a deliver Service as the events
// push would, and counts what local HTTPS receivers get. It prints
// deliveries per second, the time from event stored to delivery received
// (p50, p99) and KMS calls per 1000 deliveries.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/token"
)

func main() {
	events := flag.Int("events", 3000, "events to store and deliver")
	rate := flag.Float64("rate", 200, "events stored per second")
	connectors := flag.Int("connectors", 3, "data connectors of the project, each with its own receiver")
	devices := flag.Int("devices", 50, "devices the events come from")
	delay := flag.Duration("receiver-delay", 0, "how long each receiver takes to answer")
	flag.Parse()
	if err := run(*events, *rate, *connectors, *devices, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "deliverload:", err)
		os.Exit(1)
	}
}

type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	at  map[string]time.Time // event id → first arrival
	n   atomic.Int64
}

func newReceiver(delay time.Duration) *receiver {
	r := &receiver{at: map[string]time.Time{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		now := time.Now()
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		if _, ok := r.at[id]; !ok {
			r.at[id] = now
		}
		r.mu.Unlock()
		r.n.Add(1)
		time.Sleep(delay)
	}))
	r.srv.EnableHTTP2 = true
	r.srv.StartTLS()
	return r
}

func run(events int, rate float64, connectors, devices int, delay time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealedsense-deliverload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := logging.New(io.Discard, slog.LevelWarn)
	p, err := platform.Start(ctx, platform.Config{Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto", DataDir: dir, Project: "deliverload", Logger: quiet})
	if err != nil {
		return err
	}
	defer p.Close()
	p.PointClients()
	const project, issuer = "deliverload", "https://api.deliverload.test"
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return err
	}
	defer fs.Close()
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return err
	}
	defer kc.Close()
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/r")
	if err != nil {
		return err
	}

	roots := x509.NewCertPool()
	var rcs []*receiver
	wrapper := custody.NewWrapper(kc, keys.WebhookSecrets)
	for i := range connectors {
		r := newReceiver(delay)
		defer r.srv.Close()
		roots.AddCert(r.srv.Certificate())
		rcs = append(rcs, r)
		id := fmt.Sprintf("c%d", i)
		wrapped, err := wrapper.Wrap(ctx, custody.Secret("load test secret number "+id), dataconnector.SecretAAD(project, id))
		if err != nil {
			return err
		}
		if _, err := fs.Collection(dataconnector.Collection).Doc(id).Set(ctx, dataconnector.Connector{ProjectID: project, Status: dataconnector.Active,
			URL: r.srv.URL, WrappedSecret: wrapped, CreateTime: time.Now()}); err != nil {
			return err
		}
	}
	for i := range devices {
		if _, err := fs.Collection("devices").Doc(fmt.Sprintf("d%03d", i)).Set(ctx, map[string]any{
			"type": "temperature", "productNumber": "102081", "projectId": project, "labels": map[string]string{"site": "load"}}); err != nil {
			return err
		}
	}
	dialer := &egress.Dialer{AllowLoopback: true, TLS: &tls.Config{RootCAs: roots}}
	svc := deliver.New(deliver.Config{Issuer: issuer}, deliver.Deps{
		Firestore: fs, Secrets: custody.NewCache(wrapper, time.Hour),
		Certifier: token.NewSigner(kc, keys.WebhookSigning+"/cryptoKeyVersions/1"),
		Client:    dialer.Client(10 * time.Second),
		Check:     func(raw string) error { _, err := dialer.CheckURL(raw); return err },
		Logger:    quiet,
	})

	// A warm-up event starts the instance: its key is certified and
	// published, and each connector's secret unwrapped.
	kmsBefore := p.KMSCalls()
	warm := time.Now().UTC()
	wjs, _ := json.Marshal(map[string]any{"eventId": "warmup", "targetName": "projects/" + project + "/devices/d000", "eventType": "temperature",
		"data": map[string]any{"temperature": map[string]any{"value": 20.0, "updateTime": warm}}, "timestamp": warm})
	if _, err := fs.Collection("events").Doc("warmup").Set(ctx, map[string]any{"projectId": project, "deviceId": "d000", "eventType": "temperature", "timestamp": warm, "json": wjs}); err != nil {
		return err
	}
	wev, err := dataconnector.ParseEvent(wjs, map[string]string{"projectId": project, "deviceId": "d000"})
	if err != nil {
		return err
	}
	if err := svc.Enqueue(ctx, wev); err != nil {
		return err
	}
	svc.Wait()
	fmt.Printf("cold start (key certified and published, %d secrets unwrapped): %v\n", connectors, time.Since(warm).Round(time.Millisecond))

	fmt.Printf("delivering %d events at %.0f/s from %d devices to %d connectors (receiver answers after %v); a sweep each second, as the local scheduler runs it\n", events, rate, devices, connectors, delay)
	sweepCtx, stopSweeps := context.WithCancel(ctx)
	defer stopSweeps()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-sweepCtx.Done():
				return
			case <-t.C:
				_, _ = svc.Sweep(sweepCtx)
			}
		}
	}()
	stored := make([]time.Time, events)
	ids := make([]string, events)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	tick := time.Duration(float64(time.Second) / rate)
	for i := range events {
		if d := time.Until(start.Add(time.Duration(i) * tick)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			dev := fmt.Sprintf("d%03d", i%devices)
			id := fmt.Sprintf("load%06d", i)
			ts := time.Now().UTC()
			js, _ := json.Marshal(map[string]any{"eventId": id, "targetName": "projects/" + project + "/devices/" + dev, "eventType": "temperature",
				"data": map[string]any{"temperature": map[string]any{"value": 21.5, "updateTime": ts}}, "timestamp": ts})
			if _, err := fs.Collection("events").Doc(id).Set(ctx, map[string]any{"projectId": project, "deviceId": dev, "eventType": "temperature",
				"timestamp": ts, "json": js, "expireAt": ts.Add(time.Hour)}); err != nil {
				failed.Add(1)
				return
			}
			stored[i], ids[i] = time.Now(), id
			ev, err := dataconnector.ParseEvent(js, map[string]string{"projectId": project, "deviceId": dev})
			if err == nil {
				err = svc.Enqueue(ctx, ev)
			}
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	// Deliveries that found their connector's slots busy are the sweep's.
	want := int64(events) * int64(connectors)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var got int64
		for _, r := range rcs {
			r.mu.Lock()
			got += int64(len(r.at))
			r.mu.Unlock()
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopSweeps()
	svc.Wait()
	kms := p.KMSCalls() - kmsBefore

	var lat []time.Duration
	var requests int64
	last := start
	for _, r := range rcs {
		requests += r.n.Load()
		r.mu.Lock()
		for i, id := range ids {
			if at, ok := r.at[id]; ok {
				lat = append(lat, at.Sub(stored[i]))
				if at.After(last) {
					last = at
				}
			}
		}
		r.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return fmt.Errorf("nothing was delivered (%d failures)", failed.Load())
	}
	q := func(f float64) time.Duration {
		return lat[min(len(lat)-1, int(f*float64(len(lat))))].Round(time.Millisecond)
	}
	span := last.Sub(start).Seconds()
	fmt.Printf("delivered %d of %d (event, connector) pairs in %.1fs, %d requests, %d enqueue failures\n", len(lat), want, span, requests, failed.Load())
	fmt.Printf("deliveries/s: %.0f\n", float64(len(lat))/span)
	slow := 0
	for _, l := range lat {
		if l > 5*time.Second {
			slow++
		}
	}
	fmt.Printf("event stored -> received: p50 %v, p99 %v, max %v (%d over 5s, left to the sweep)\n", q(0.50), q(0.99), lat[len(lat)-1].Round(time.Millisecond), slow)
	fmt.Printf("KMS calls: %d (%.2f per 1000 deliveries, cold start included)\n", kms, float64(kms)*1000/float64(len(lat)))
	return nil
}
