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
	kms "cloud.google.com/go/kms/apiv1"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
)

func main() {
	events := flag.Int("events", 3000, "events to store and deliver")
	rate := flag.Float64("rate", 200, "events stored per second")
	connectors := flag.Int("connectors", 3, "data connectors of the project, each with its own receiver")
	devices := flag.Int("devices", 50, "devices the events come from")
	delay := flag.Duration("receiver-delay", 0, "how long each receiver takes to answer")
	flag.Parse()
	if err := run(load{events: *events, rate: *rate, connectors: *connectors, devices: *devices, delay: *delay}); err != nil {
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

// load is a run's shape.
type load struct {
	events     int
	rate       float64 // events stored per second
	connectors int
	devices    int
	delay      time.Duration // each receiver's answer time
}

const project, issuer = "deliverload", "https://api.deliverload.test"

// world is the emulators and the clients of a run.
type world struct {
	p     *platform.Platform
	fs    *firestore.Client
	kc    *kms.KeyManagementClient
	db    *store.DB
	keys  stack.Keys
	quiet *slog.Logger
}

func run(l load) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealedsense-deliverload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := start(ctx, dir)
	if err != nil {
		return err
	}
	defer w.close()
	rcs, roots, err := w.connectors(ctx, l)
	for _, r := range rcs {
		defer r.srv.Close()
	}
	if err != nil {
		return err
	}
	if err := w.devices(ctx, l.devices); err != nil {
		return err
	}
	svc := w.service(roots)
	kmsBefore := w.p.KMSCalls()
	if err := w.warmUp(ctx, svc, l.connectors); err != nil {
		return err
	}
	fmt.Printf("delivering %d events at %.0f/s from %d devices to %d connectors (receiver answers after %v); a sweep each second, as the local scheduler runs it\n", l.events, l.rate, l.devices, l.connectors, l.delay)
	stopSweeps := sweepEachSecond(ctx, svc)
	defer stopSweeps()
	st := w.storeEvents(ctx, svc, l)
	// Deliveries that found their connector's slots busy are the sweep's.
	want := int64(l.events) * int64(l.connectors)
	waitDelivered(rcs, want, time.Now().Add(5*time.Minute))
	stopSweeps()
	svc.Wait()
	return report(st, rcs, want, w.p.KMSCalls()-kmsBefore)
}

// start runs the emulators of a run in dir, with its clients and keys.
func start(ctx context.Context, dir string) (*world, error) {
	quiet := logging.New(io.Discard, slog.LevelWarn)
	p, err := platform.Start(ctx, platform.Config{Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto", DataDir: dir, Project: "deliverload", Logger: quiet})
	if err != nil {
		return nil, err
	}
	p.PointClients()
	w := &world{p: p, quiet: quiet}
	if w.fs, err = firestore.NewClient(ctx, project); err != nil {
		w.close()
		return nil, err
	}
	w.db = store.New(w.fs)
	if w.kc, err = custody.NewKMSClient(ctx); err != nil {
		w.close()
		return nil, err
	}
	if w.keys, err = stack.EnsureKMS(ctx, w.kc, "projects/"+project+"/locations/europe/keyRings/r"); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *world) close() {
	if w.kc != nil {
		w.kc.Close()
	}
	if w.fs != nil {
		w.fs.Close()
	}
	w.p.Close()
}

// connectors makes the project's connectors, each with its own receiver,
// and the roots that trust the receivers.
func (w *world) connectors(ctx context.Context, l load) ([]*receiver, *x509.CertPool, error) {
	roots := x509.NewCertPool()
	var rcs []*receiver
	wrapper := custody.NewWrapper(w.kc, w.keys.WebhookSecrets)
	for i := range l.connectors {
		r := newReceiver(l.delay)
		roots.AddCert(r.srv.Certificate())
		rcs = append(rcs, r)
		id := fmt.Sprintf("c%d", i)
		wrapped, err := wrapper.Wrap(ctx, custody.Secret("load test secret number "+id), dataconnector.SecretAAD(project, id))
		if err != nil {
			return rcs, nil, err
		}
		if err := w.db.CreateDataConnector(ctx, id, store.DataConnector{ProjectID: project, Status: dataconnector.Active,
			URL: r.srv.URL, WrappedSecret: wrapped, CreateTime: time.Now()}); err != nil {
			return rcs, nil, err
		}
	}
	return rcs, roots, nil
}

// devices provisions the devices the events come from.
func (w *world) devices(ctx context.Context, n int) error {
	temperature, _ := devicetype.Lookup("temperature")
	for i := range n {
		id := fmt.Sprintf("d%03d", i)
		d := store.Device{Type: temperature.Name, ProductNumber: temperature.ProductNumber, ProjectID: project, Labels: map[string]string{"site": "load"},
			PublicKeyHash: "load-" + id, CreateTime: time.Now()}
		if err := w.db.RunTransaction(ctx, func(_ context.Context, tx *firestore.Transaction) error { return w.db.CreateDevice(tx, id, d) }); err != nil {
			return err
		}
	}
	return nil
}

// service is the deliver Service under load.
func (w *world) service(roots *x509.CertPool) *deliver.Service {
	dialer := &egress.Dialer{AllowLoopback: true, TLS: &tls.Config{RootCAs: roots}}
	return deliver.New(deliver.Config{Issuer: issuer}, deliver.Deps{
		Firestore: w.fs, Secrets: custody.NewCache(custody.NewWrapper(w.kc, w.keys.WebhookSecrets), time.Hour),
		Certifier: token.NewSigner(w.kc, w.keys.WebhookSigning+"/cryptoKeyVersions/1"),
		Client:    dialer.Client(10 * time.Second),
		Check:     func(raw string) error { _, err := dialer.CheckURL(raw); return err },
		Logger:    w.quiet,
	})
}

// storeEvent stores an event as ingest does and returns it as published.
func (w *world) storeEvent(ctx context.Context, id, dev string, value float64, expire time.Duration) (dataconnector.Event, error) {
	ts := time.Now().UTC()
	js, _ := json.Marshal(map[string]any{"eventId": id, "targetName": "projects/" + project + "/devices/" + dev, "eventType": "temperature",
		"data": map[string]any{"temperature": map[string]any{"value": value, "updateTime": ts}}, "timestamp": ts})
	e := store.Event{ProjectID: project, DeviceID: dev, EventType: "temperature", Timestamp: ts, JSON: js}
	if expire > 0 {
		e.ExpireAt = ts.Add(expire)
	}
	if err := w.db.RunTransaction(ctx, func(_ context.Context, tx *firestore.Transaction) error { return w.db.CreateEvent(tx, id, e) }); err != nil {
		return dataconnector.Event{}, err
	}
	return dataconnector.ParseEvent(js, map[string]string{"projectId": project, "deviceId": dev})
}

// warmUp starts the instance with one event: its key is certified and
// published, and each connector's secret unwrapped.
func (w *world) warmUp(ctx context.Context, svc *deliver.Service, connectors int) error {
	warm := time.Now()
	ev, err := w.storeEvent(ctx, "warmup", "d000", 20.0, 0)
	if err != nil {
		return err
	}
	if err := svc.Enqueue(ctx, ev); err != nil {
		return err
	}
	svc.Wait()
	fmt.Printf("cold start (key certified and published, %d secrets unwrapped): %v\n", connectors, time.Since(warm).Round(time.Millisecond))
	return nil
}

// sweepEachSecond runs the sweep each second, as the local scheduler
// does, until the returned stop.
func sweepEachSecond(ctx context.Context, svc *deliver.Service) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, _ = svc.Sweep(ctx)
			}
		}
	}()
	return stop
}

// stored is when each event of a run was stored.
type stored struct {
	at     []time.Time
	ids    []string
	start  time.Time
	failed atomic.Int64
}

// storeEvents stores the run's events at its rate and hands each to the
// Service as the events push would.
func (w *world) storeEvents(ctx context.Context, svc *deliver.Service, l load) *stored {
	st := &stored{at: make([]time.Time, l.events), ids: make([]string, l.events), start: time.Now()}
	var wg sync.WaitGroup
	tick := time.Duration(float64(time.Second) / l.rate)
	for i := range l.events {
		if d := time.Until(st.start.Add(time.Duration(i) * tick)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			id := fmt.Sprintf("load%06d", i)
			ev, err := w.storeEvent(ctx, id, fmt.Sprintf("d%03d", i%l.devices), 21.5, time.Hour)
			if err == nil {
				st.at[i], st.ids[i] = time.Now(), id
				err = svc.Enqueue(ctx, ev)
			}
			if err != nil {
				st.failed.Add(1)
			}
		})
	}
	wg.Wait()
	return st
}

// waitDelivered waits until the receivers have want deliveries, or the
// deadline.
func waitDelivered(rcs []*receiver, want int64, deadline time.Time) {
	for {
		var got int64
		for _, r := range rcs {
			r.mu.Lock()
			got += int64(len(r.at))
			r.mu.Unlock()
		}
		if got >= want || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// report prints the run's figures.
func report(st *stored, rcs []*receiver, want int64, kms uint64) error {
	var lat []time.Duration
	var requests int64
	last := st.start
	for _, r := range rcs {
		requests += r.n.Load()
		r.mu.Lock()
		for i, id := range st.ids {
			if at, ok := r.at[id]; ok {
				lat = append(lat, at.Sub(st.at[i]))
				if at.After(last) {
					last = at
				}
			}
		}
		r.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return fmt.Errorf("nothing was delivered (%d failures)", st.failed.Load())
	}
	q := func(f float64) time.Duration {
		return lat[min(len(lat)-1, int(f*float64(len(lat))))].Round(time.Millisecond)
	}
	span := last.Sub(st.start).Seconds()
	fmt.Printf("delivered %d of %d (event, connector) pairs in %.1fs, %d requests, %d enqueue failures\n", len(lat), want, span, requests, st.failed.Load())
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
