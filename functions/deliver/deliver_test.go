package deliver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	kmsapi "cloud.google.com/go/kms/apiv1"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
	"github.com/sealedsense/sealedsense/shared/webhook/webhooktest"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

const issuer = "https://api.sealedsense.test"

type world struct {
	t       *testing.T
	project string
	fs      *firestore.Client
	kc      *kmsapi.KeyManagementClient
	keys    stack.Keys
	secrets *custody.Wrapper
	svc     *deliver.Service
	logs    *logtest.Buffer
	roots   *x509.CertPool
	seq     int
}

// newWorld builds a deliver Service on the emulators. A nil dialer is
// local mode; either way the client trusts the receivers made with
// w.receiver.
func newWorld(t *testing.T, cfg deliver.Config, dialer *egress.Dialer) *world {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	w := &world{t: t, project: project, fs: platformtest.Firestore(t, project), kc: platformtest.KMS(t), logs: &logtest.Buffer{}, roots: x509.NewCertPool()}
	var err error
	w.keys, err = stack.EnsureKMS(ctx, w.kc, "projects/"+project+"/locations/europe/keyRings/r")
	if err != nil {
		t.Fatal(err)
	}
	w.secrets = custody.NewWrapper(w.kc, w.keys.WebhookSecrets)
	if dialer == nil {
		dialer = &egress.Dialer{AllowLoopback: true}
	}
	dialer.TLS = &tls.Config{RootCAs: w.roots}
	cfg.Issuer = issuer
	// The receivers read the keys straight from Firestore, with no cache
	// to wait out.
	cfg.KeyPublishDelay = time.Millisecond
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	w.svc = deliver.New(cfg, deliver.Deps{
		Firestore: w.fs,
		Secrets:   custody.NewCache(w.secrets, time.Hour),
		Certifier: token.NewSigner(w.kc, w.keys.WebhookSigning+"/cryptoKeyVersions/1"),
		Client:    dialer.Client(cfg.Timeout),
		Check:     func(raw string) error { _, err := dialer.CheckURL(raw); return err },
		Logger:    slog.New(slog.NewJSONHandler(w.logs, nil)),
	})
	t.Cleanup(w.svc.Wait)
	return w
}

// jwks is what the API publishes: the certified delivery keys.
func (w *world) jwks() ([]byte, error) {
	ks := token.NewKeySet(w.kc, w.keys.WebhookSigning+"/cryptoKeyVersions/1")
	keys, err := dataconnector.PublishedKeys(context.Background(), w.fs, ks, issuer, time.Now())
	if err != nil {
		return nil, err
	}
	return json.Marshal(token.JWKSet{Keys: keys})
}

// receiver starts an HTTPS receiver the Service trusts, the endpoint of
// the world's connector id. Receivers are made before any delivery
// starts, as the pool is not safe to grow while connections read it.
func (w *world) receiver(secret, id string) *webhooktest.Receiver {
	r := webhooktest.New(w.t, []byte(secret), w.jwks)
	r.SetConnector(webhook.ConnectorName(w.project, id))
	w.roots.AddCert(r.Certificate())
	return r
}

func (w *world) device(id string, labels map[string]string) {
	w.t.Helper()
	_, err := w.fs.Collection("devices").Doc(id).Set(context.Background(), map[string]any{
		"type": "temperature", "productNumber": "102081", "projectId": w.project, "labels": labels, "reported": map[string]any{}})
	if err != nil {
		w.t.Fatal(err)
	}
}

type connOpts struct {
	status string
	events []string
	labels []string
	hdrs   map[string]string
}

func (w *world) connector(id, url, secret string, o connOpts) {
	w.t.Helper()
	ctx := context.Background()
	wrapped, err := w.secrets.Wrap(ctx, custody.Secret(secret), dataconnector.SecretAAD(w.project, id))
	if err != nil {
		w.t.Fatal(err)
	}
	if o.status == "" {
		o.status = dataconnector.Active
	}
	c := dataconnector.Connector{ProjectID: w.project, DisplayName: id, Status: o.status, Events: o.events, Labels: o.labels,
		URL: url, Headers: o.hdrs, WrappedSecret: wrapped, CreateTime: time.Now()}
	if _, err := w.fs.Collection(store.DataConnectorsCollection).Doc(id).Set(ctx, c); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) setStatus(id, status string) {
	w.t.Helper()
	upd := []firestore.Update{{Path: "status", Value: status}}
	if status != dataconnector.Active {
		upd = append(upd, firestore.Update{Path: "disabledAt", Value: time.Now()})
	}
	if _, err := w.fs.Collection(store.DataConnectorsCollection).Doc(id).Update(context.Background(), upd); err != nil {
		w.t.Fatal(err)
	}
}

// event stores an event as ingest does and returns it as published.
func (w *world) event(device, typ string) dataconnector.Event {
	w.t.Helper()
	w.seq++
	id := fmt.Sprintf("ev%s%04d", strings.ReplaceAll(w.t.Name(), "/", ""), w.seq)
	ts := time.Now().UTC()
	js, _ := json.Marshal(map[string]any{"eventId": id, "targetName": "projects/" + w.project + "/devices/" + device, "eventType": typ,
		"data": map[string]any{typ: map[string]any{"updateTime": ts}}, "timestamp": ts})
	_, err := w.fs.Collection("events").Doc(id).Set(context.Background(), map[string]any{
		"projectId": w.project, "deviceId": device, "eventType": typ, "timestamp": ts, "json": js, "expireAt": ts.Add(time.Hour)})
	if err != nil {
		w.t.Fatal(err)
	}
	ev, err := dataconnector.ParseEvent(js, map[string]string{"projectId": w.project, "deviceId": device})
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

func (w *world) enqueue(ev dataconnector.Event) {
	w.t.Helper()
	if err := w.svc.Enqueue(context.Background(), ev); err != nil {
		w.t.Fatal(err)
	}
}

// until sweeps every 50 ms until cond holds, or fails after limit.
func (w *world) until(limit time.Duration, what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		if _, err := w.svc.Sweep(context.Background()); err != nil {
			w.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *world) connectorDoc(id string) dataconnector.Connector {
	w.t.Helper()
	snap, err := w.fs.Collection(store.DataConnectorsCollection).Doc(id).Get(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var c dataconnector.Connector
	if err := snap.DataTo(&c); err != nil {
		w.t.Fatal(err)
	}
	return c
}

func byID(ds []webhooktest.Delivery) map[string][]webhooktest.Delivery {
	m := map[string][]webhooktest.Delivery{}
	for _, d := range ds {
		m[d.ID] = append(m[d.ID], d)
	}
	return m
}

func TestMalformedMessagesAreAcknowledgedAndLogged(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{}, nil)
	for _, tc := range []struct{ name, data string }{
		{"not a push", `garbage`},
		{"event not json", `{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte("{")) + `","attributes":{"projectId":"p","deviceId":"d"}}}`},
		{"attributes disagree", `{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(`{"eventId":"e","eventType":"touch","targetName":"projects/other/devices/d"}`)) + `","attributes":{"projectId":"p","deviceId":"d"}}}`},
	} {
		e := event.New()
		e.SetID("1")
		e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
		e.SetSource("//pubsub.googleapis.com/projects/p/topics/events")
		if err := e.SetData("application/json", []byte(tc.data)); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.Handle(context.Background(), e); err != nil {
			t.Errorf("%s: %v (would be redelivered forever)", tc.name, err)
		}
	}
	if n := strings.Count(w.logs.String(), `"rejected":"malformed-`); n != 3 {
		t.Fatalf("%d refusals logged, want 3:\n%s", n, w.logs.String())
	}
}

// publicResolver answers every name with one address, changeable between
// lookups, to play DNS rebinding.
type publicResolver struct {
	mu      sync.Mutex
	answers []netip.Addr // served in turn; the last one repeats
	lookups int
}

func (r *publicResolver) LookupNetIP(_ context.Context, _, _ string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.answers[min(r.lookups, len(r.answers)-1)]
	r.lookups++
	return []netip.Addr{a}, nil
}
