package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

// costs are what an ingest Service spent: KMS calls (below the caches,
// so real ones), and Firestore documents read and written, counted on the
// wire.
type costs struct {
	kms, reads, writes, commits atomic.Int64
}

func (c *costs) reset() { c.kms.Store(0); c.reads.Store(0); c.writes.Store(0); c.commits.Store(0) }

// countingUnwrapper counts the unwraps that reach KMS.
type countingUnwrapper struct {
	next custody.Unwrapper
	n    *atomic.Int64
}

func (u countingUnwrapper) Unwrap(ctx context.Context, ct, aad []byte) (custody.Secret, error) {
	u.n.Add(1)
	return u.next.Unwrap(ctx, ct, aad)
}

// countingWrapper is a registry.Wrapper whose unwraps are counted.
type countingWrapper struct {
	*custody.Wrapper
	n *atomic.Int64
}

func (w countingWrapper) Unwrap(ctx context.Context, ct, aad []byte) (custody.Secret, error) {
	w.n.Add(1)
	return w.Wrapper.Unwrap(ctx, ct, aad)
}

type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}
func (emulatorOwner) RequireTransportSecurity() bool { return false }

// countingFirestore is a Firestore client on the emulator whose document
// reads (found or missing, in gets, transactions and queries) and writes
// (per commit) are counted.
func countingFirestore(tb testing.TB, project string, c *costs) *firestore.Client {
	tb.Helper()
	platformtest.Platform()
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*firestorepb.CommitRequest); ok {
			c.writes.Add(documentsWritten(r))
			c.commits.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		return countingStream{ClientStream: s, c: c}, err
	}
	conn, err := grpc.NewClient(os.Getenv("FIRESTORE_EMULATOR_HOST"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(emulatorOwner{}), grpc.WithUnaryInterceptor(unary), grpc.WithStreamInterceptor(stream))
	if err != nil {
		tb.Fatal(err)
	}
	fs, err := firestore.NewClient(context.Background(), project, option.WithGRPCConn(conn))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fs.Close() })
	return fs
}

// documentsWritten counts the documents a commit writes: an update with
// a transform (an increment) may travel as two writes of one document.
func documentsWritten(r *firestorepb.CommitRequest) int64 {
	docs := map[string]bool{}
	for _, w := range r.Writes {
		docs[w.GetUpdate().GetName()+w.GetDelete()+w.GetTransform().GetDocument()] = true
	}
	return int64(len(docs))
}

type countingStream struct {
	grpc.ClientStream
	c *costs
}

func (s countingStream) SendMsg(m any) error {
	if r, ok := m.(*firestorepb.CommitRequest); ok {
		s.c.writes.Add(documentsWritten(r))
		s.c.commits.Add(1)
	}
	return s.ClientStream.SendMsg(m)
}

func (s countingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		return err
	}
	switch r := m.(type) {
	case *firestorepb.BatchGetDocumentsResponse:
		if r.GetFound() != nil || r.GetMissing() != "" {
			s.c.reads.Add(1)
		}
	case *firestorepb.RunQueryResponse:
		if r.GetDocument() != nil {
			s.c.reads.Add(1)
		}
	}
	return nil
}

// costWorld is a provisioned project with an ingest Service whose KMS
// calls and Firestore documents are counted.
type costWorld struct {
	tb      testing.TB
	project string
	fs      *firestore.Client
	svc     *ingest.Service
	conns   map[string]ed25519.PrivateKey
	cloud   [32]byte
	logs    *logtest.Buffer
	c       costs
	devKeys *custody.Wrapper
	kek     *custody.Wrapper
	ps      *pubsub.Client
	down    chan relay.Downlink
}

func newCostWorld(tb testing.TB, cfg ingest.Config) *costWorld {
	tb.Helper()
	ctx := context.Background()
	w := &costWorld{tb: tb, project: platformtest.ProjectID(tb), conns: map[string]ed25519.PrivateKey{}, logs: &logtest.Buffer{}}
	w.fs = countingFirestore(tb, w.project, &w.c)
	kc := platformtest.KMS(tb)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+w.project+"/locations/europe/keyRings/r")
	if err != nil {
		tb.Fatal(err)
	}
	w.devKeys = custody.NewWrapper(kc, keys.Device)
	kek := custody.NewWrapper(kc, keys.SessionKEK)
	ck, err := registry.New(w.fs, w.devKeys, nil).Bootstrap(ctx, kek, keys.Device)
	if err != nil {
		tb.Fatal(err)
	}
	w.cloud = [32]byte(ck.StaticPublic())
	for _, id := range []string{"ccon-a", "ccon-b"} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		if err := registry.New(w.fs, nil, nil).RegisterConnector(ctx, id, id, w.project, pub); err != nil {
			tb.Fatal(err)
		}
		w.conns[id] = priv
	}
	w.kek = kek
	ps := platformtest.PubSub(tb, w.project)
	w.ps = ps
	for _, topic := range []string{stack.TopicEvents, stack.TopicDownlinks} {
		if err := platform.EnsureTopic(ctx, ps, topic); err != nil {
			tb.Fatal(err)
		}
	}
	if err := platform.EnsureSubscription(ctx, ps, platform.SubscriptionSpec{ID: "downlinks-all", Topic: stack.TopicDownlinks}); err != nil {
		tb.Fatal(err)
	}
	w.down = make(chan relay.Downlink, 10)
	rctx, cancel := context.WithCancel(ctx)
	tb.Cleanup(cancel)
	go func() {
		_ = ps.Subscriber("downlinks-all").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			if d, err := relay.OpenDownlink(m.Data, []ed25519.PublicKey{ck.ChannelPublic()}, "ccon-a", time.Now()); err == nil {
				w.down <- d
			}
		})
	}()
	w.start(cfg)
	return w
}

// start gives the world a new ingest Service, as a new instance: its
// caches empty. The first message it handles loads the cloud's keys.
func (w *costWorld) start(cfg ingest.Config) {
	dev := countingWrapper{Wrapper: w.devKeys, n: &w.c.kms}
	w.svc = ingest.New(cfg, ingest.Deps{
		Firestore: w.fs, Registry: registry.New(w.fs, dev, custody.NewCache(dev, time.Hour)),
		KEKReader: custody.NewCache(countingUnwrapper{next: w.kek, n: &w.c.kms}, time.Hour),
		Events:    w.ps.Publisher(stack.TopicEvents), Downlinks: w.ps.Publisher(stack.TopicDownlinks),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil)),
	})
}

// warm loads the Service's cloud keys with a packet to an unused index,
// and zeroes the counts.
func (w *costWorld) warm() {
	w.tb.Helper()
	w.push(signed(w.tb, w, unknownIndexPacket(w.tb, 1)))
	w.c.reset()
}

// sensor manufactures a sensor in the world's project.
func (w *costWorld) sensor() *sensor.Sensor {
	w.tb.Helper()
	m, err := registry.New(w.fs, w.devKeys, nil).Manufacture(context.Background(), registry.Spec{Type: "temperature", ProjectID: w.project}, w.devKeys.KeyName())
	if err != nil {
		w.tb.Fatal(err)
	}
	s, err := sensor.New(credentials.Sensor{DeviceID: m.Device.ID, StaticPrivate: m.Static.Private[:], StaticPublic: m.Static.Public[:],
		PSK: m.PSK, CloudPublic: w.cloud[:]}, 1, sensor.Config{})
	if err != nil {
		w.tb.Fatal(err)
	}
	return s
}

// send hands one envelope of pkt, relayed by connector id, to ingest; it
// must be acknowledged.
func (w *costWorld) send(id string, pkt []byte) {
	w.tb.Helper()
	env, err := relay.SignUplink(w.conns[id], relay.Uplink{ConnectorID: id, Received: time.Now().UTC(), RSSI: -70, SNR: 5, Packet: pkt})
	if err != nil {
		w.tb.Fatal(err)
	}
	w.push(env)
}

func (w *costWorld) push(env []byte) {
	w.tb.Helper()
	if err := w.svc.Handle(context.Background(), pushEvent(w.project, env)); err != nil {
		w.tb.Fatalf("a bad message must be acknowledged, not retried: %v", err)
	}
}

// forgedInitiation is a valid message 1 from a static key no sensor has.
func forgedInitiation(tb testing.TB, cloud [32]byte) []byte {
	static, err := radio.GenerateKeyPair(nil)
	if err != nil {
		tb.Fatal(err)
	}
	_, pkt, err := radio.Initiate(radio.InitiatorConfig{Static: static, CloudPublic: cloud, SenderIndex: 7, Now: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

// unknownIndexPacket is a transport packet to receiver index i, which no
// session has.
func unknownIndexPacket(tb testing.TB, i uint32) []byte {
	pkt, err := radio.Transport{ReceiverIndex: i, Counter: 1, Ciphertext: make([]byte, 24)}.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

// storedPacket is a data packet of a new sensor that ingest stored and
// answered.
func (w *costWorld) storedPacket() []byte {
	w.tb.Helper()
	s := w.sensor()
	var pkt []byte
	for _, reading := range []bool{false, true} {
		if reading {
			s.Record(temp(20))
		}
		var err error
		if pkt, err = s.Next(time.Now()); err != nil {
			w.tb.Fatal(err)
		}
		w.send("ccon-a", pkt)
		select {
		case d := <-w.down:
			if _, err := s.Receive(d.Packet, time.Now()); err != nil {
				w.tb.Fatal(err)
			}
		case <-time.After(15 * time.Second):
			w.tb.Fatalf("no downlink; logs:\n%s", w.logs.String())
		}
	}
	return pkt
}

// cpuTime is this process's CPU time, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBadMessages measures what a bad message costs the real ingest
// Service on the emulators, per 1000 messages: KMS calls, Firestore
// documents read and written, and CPU time. Run it with
//
//	go test -run '^$' -bench BadMessages -benchtime 1000x ./functions/ingest/
//
// The messages are built before the clock starts and sent one at a time
// by one connector.
func BenchmarkBadMessages(b *testing.B) {
	kinds := []struct {
		name string
		make func(w *costWorld, n int) [][]byte
	}{
		{"forged-handshake", func(w *costWorld, n int) [][]byte {
			out := make([][]byte, n)
			for i := range out {
				out[i] = forgedInitiation(b, w.cloud)
			}
			return out
		}},
		{"unknown-index-random", func(w *costWorld, n int) [][]byte {
			out := make([][]byte, n)
			for i := range out {
				out[i] = unknownIndexPacket(b, uint32(1000+i))
			}
			return out
		}},
		{"unknown-index-same", func(w *costWorld, n int) [][]byte {
			out := make([][]byte, n)
			for i := range out {
				out[i] = unknownIndexPacket(b, 999)
			}
			return out
		}},
		{"replayed-packet", replayedPackets},
	}
	// "limited" runs with the default per-connector limits, which a
	// flood from one connector soon meets; "unlimited" shows what each
	// message costs below them.
	limits := []struct {
		name string
		rate float64
	}{{"limited", 0}, {"unlimited", 1e6}}
	for _, k := range kinds {
		for _, lim := range limits {
			b.Run(k.name+"/"+lim.name, func(b *testing.B) {
				benchBad(b, ingest.Config{Window: 100 * time.Millisecond, HandshakeRate: lim.rate, UnknownRate: lim.rate}, k.make)
			})
		}
	}
}

func benchBad(b *testing.B, cfg ingest.Config, build func(w *costWorld, n int) [][]byte) {
	w := newCostWorld(b, cfg)
	msgs := build(w, b.N)
	envs := make([][]byte, len(msgs))
	for i, pkt := range msgs {
		envs[i] = signed(b, w, pkt)
	}
	// The first message loads the cloud's keys (KMS calls once per
	// instance): not what a bad message costs.
	w.warm()
	cpu := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		w.push(envs[i])
	}
	b.StopTimer()
	per := func(v int64) float64 { return float64(v) * 1000 / float64(b.N) }
	b.ReportMetric(per(w.c.kms.Load()), "kms/1000msg")
	b.ReportMetric(per(w.c.reads.Load()), "reads/1000msg")
	b.ReportMetric(per(w.c.writes.Load()), "writes/1000msg")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)*1000/float64(b.N), "cpu-ms/1000msg")
}

// signed is pkt in an envelope of ccon-a, received now.
func signed(tb testing.TB, w *costWorld, pkt []byte) []byte {
	env, err := relay.SignUplink(w.conns["ccon-a"], relay.Uplink{ConnectorID: "ccon-a", Received: time.Now().UTC(), RSSI: -70, Packet: pkt})
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// replayedPackets are one stored data packet relayed again and again (a
// fresh envelope each time, as a hostile connector would send it), after
// its collection window.
func replayedPackets(w *costWorld, n int) [][]byte {
	pkt := w.storedPacket()
	out := make([][]byte, n)
	for i := range out {
		out[i] = pkt
	}
	time.Sleep(300 * time.Millisecond)
	return out
}
