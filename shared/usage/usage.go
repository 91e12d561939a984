// Package usage counts what this process is billed for by Firestore and
// Pub/Sub (document writes and reads, publish requests and their bytes)
// and the push deliveries it handles, so that the load tool can turn a run
// into a bill. The counts are process-wide, as a Cloud Run instance's are.
package usage

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// MinBillableBytes is the least Pub/Sub bills for one publish or push
// request, however small its messages.
const MinBillableBytes = 1000

// Counts are the billable operations counted since the process started.
type Counts struct {
	DocWrites   uint64 `json:"docWrites"`
	DocReads    uint64 `json:"docReads"`
	Publishes   uint64 `json:"publishes"`   // publish requests
	Messages    uint64 `json:"messages"`    // messages they carried
	PubBytes    uint64 `json:"pubBytes"`    // billable bytes, MinBillableBytes at least per request
	Pushes      uint64 `json:"pushes"`      // push deliveries handled: function invocations
	PushedBytes uint64 `json:"pushedBytes"` // billable bytes of those deliveries
	// PushedByTopic is PushedBytes by the topic pushed from: what
	// another process published to it (a connector, to uplinks) is
	// billed again at its publishing.
	PushedByTopic map[string]uint64 `json:"pushedByTopic"`
	// PubBytesByTopic is PubBytes by topic: what this process published
	// is billed again at its delivery to another (a connector pulling
	// downlinks).
	PubBytesByTopic map[string]uint64 `json:"pubBytesByTopic"`
}

// n holds the counts. The byte totals are the sums of the by-topic maps,
// taken when read.
var n struct {
	docWrites, docReads, publishes, messages, pushes atomic.Uint64

	mu                sync.Mutex
	pushed, published map[string]uint64
}

// Now returns the counts so far.
func Now() Counts {
	n.mu.Lock()
	pushed, published := maps.Clone(n.pushed), maps.Clone(n.published)
	n.mu.Unlock()
	return Counts{DocWrites: n.docWrites.Load(), DocReads: n.docReads.Load(), Publishes: n.publishes.Load(),
		Messages: n.messages.Load(), PubBytes: sum(published), Pushes: n.pushes.Load(), PushedBytes: sum(pushed),
		PushedByTopic: pushed, PubBytesByTopic: published}
}

// Plus is the counts of two processes together: on many instances, a
// deployment's counts are the sum of each one's latest.
func (c Counts) Plus(o Counts) Counts {
	return Counts{DocWrites: c.DocWrites + o.DocWrites, DocReads: c.DocReads + o.DocReads, Publishes: c.Publishes + o.Publishes,
		Messages: c.Messages + o.Messages, PubBytes: c.PubBytes + o.PubBytes, Pushes: c.Pushes + o.Pushes, PushedBytes: c.PushedBytes + o.PushedBytes,
		PushedByTopic: addMaps(c.PushedByTopic, o.PushedByTopic), PubBytesByTopic: addMaps(c.PubBytesByTopic, o.PubBytesByTopic)}
}

func addMaps(a, b map[string]uint64) map[string]uint64 {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]uint64{}
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

func sum(m map[string]uint64) uint64 {
	var t uint64
	for _, v := range m {
		t += v
	}
	return t
}

// LogAttrs are the counts as log attributes, under the Counts JSON names.
func LogAttrs() []any {
	c := Now()
	return []any{"docWrites", c.DocWrites, "docReads", c.DocReads, "publishes", c.Publishes, "messages", c.Messages,
		"pubBytes", c.PubBytes, "pushes", c.Pushes, "pushedBytes", c.PushedBytes, "pushedByTopic", c.PushedByTopic,
		"pubBytesByTopic", c.PubBytesByTopic}
}

// Pushed counts one push delivery from topic of a message of size bytes
// (its data and attributes).
func Pushed(topic string, size int) {
	billed := uint64(max(size+messageOverhead, MinBillableBytes))
	n.pushes.Add(1)
	addTo(&n.pushed, topic, billed)
}

func addTo(m *map[string]uint64, topic string, bytes uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if *m == nil {
		*m = map[string]uint64{}
	}
	(*m)[topic] += bytes
}

// messageOverhead is what Pub/Sub adds to a message's data and attributes
// when it sizes it: 20 bytes of timestamp and the message id (about 16
// digits).
const messageOverhead = 20 + 16

// ClientOptions count the billable calls of a Pub/Sub client made with
// them.
func ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(countUnary)),
		option.WithGRPCDialOption(grpc.WithChainStreamInterceptor(countStream)),
	}
}

// FirestoreOptions count the billable calls of a Firestore client made
// with them. The client dials the emulator itself, ignoring dial options,
// so for the emulator they carry a connection of their own, made as the
// client makes its own (no TLS, the emulator's owner token), which
// replaces the client's unused one.
func FirestoreOptions() ([]option.ClientOption, error) {
	addr := os.Getenv("FIRESTORE_EMULATOR_HOST")
	if addr == "" {
		return ClientOptions(), nil
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(emulatorOwner{}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
		grpc.WithChainUnaryInterceptor(countUnary),
		grpc.WithChainStreamInterceptor(countStream))
	if err != nil {
		return nil, fmt.Errorf("usage: firestore emulator at %s: %w", addr, err)
	}
	return []option.ClientOption{option.WithGRPCConn(conn)}, nil
}

// emulatorOwner is the credential the Firestore emulator takes for an
// administrator, which bypasses security rules.
type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (emulatorOwner) RequireTransportSecurity() bool { return false }

func countUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		return err
	}
	switch r := req.(type) {
	case *firestorepb.CommitRequest:
		n.docWrites.Add(uint64(len(r.GetWrites())))
	case *firestorepb.BatchWriteRequest:
		n.docWrites.Add(uint64(len(r.GetWrites())))
	case *pubsubpb.PublishRequest:
		n.publishes.Add(1)
		n.messages.Add(uint64(len(r.GetMessages())))
		size := 0
		for _, m := range r.GetMessages() {
			size += messageSize(m)
		}
		topic := r.GetTopic()
		addTo(&n.published, topic[strings.LastIndexByte(topic, '/')+1:], uint64(max(size, MinBillableBytes)))
	}
	return nil
}

// messageSize is a message's size as Pub/Sub bills it.
func messageSize(m *pubsubpb.PubsubMessage) int {
	size := len(m.GetData()) + messageOverhead
	for k, v := range m.GetAttributes() {
		size += len(k) + len(v)
	}
	return size
}

func countStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &readCounter{ClientStream: s}, nil
}

// readCounter counts the documents a Firestore read stream returns:
// Firestore bills one read per document, and one for a query that returns
// none.
type readCounter struct {
	grpc.ClientStream
	query, found bool
}

func (r *readCounter) RecvMsg(m any) error {
	err := r.ClientStream.RecvMsg(m)
	if err != nil {
		if r.query && !r.found {
			n.docReads.Add(1)
			r.found = true
		}
		return err
	}
	switch m := m.(type) {
	case *firestorepb.BatchGetDocumentsResponse:
		if m.GetFound() != nil || m.GetMissing() != "" {
			n.docReads.Add(1)
		}
	case *firestorepb.RunQueryResponse:
		r.query = true
		if m.GetDocument() != nil {
			n.docReads.Add(1)
			r.found = true
		}
	case *firestorepb.RunAggregationQueryResponse:
		// One read per up to 1000 index entries counted: a count
		// over fewer costs one.
		if m.GetResult() != nil {
			n.docReads.Add(1)
		}
	}
	return nil
}
