package platformtest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

func TestProjectsAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := platformtest.ProjectID(t), platformtest.ProjectID(t)
	if a == b {
		t.Fatal("two calls gave the same project id")
	}
	if _, err := platformtest.Firestore(t, a).Collection("c").Doc("d").Set(ctx, map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := platformtest.Firestore(t, a).Collection("c").Doc("d").Get(ctx); err != nil {
		t.Fatalf("read back in the same project: %v", err)
	}
	if snap, err := platformtest.Firestore(t, b).Collection("c").Doc("d").Get(ctx); err == nil && snap.Exists() {
		t.Fatal("another project id sees the document")
	}
}

func TestPubSubPullAndPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := platformtest.PubSub(t, platformtest.ProjectID(t))
	if err := platform.EnsureTopic(ctx, c, "things"); err != nil {
		t.Fatal(err)
	}
	if err := platform.EnsureTopic(ctx, c, "things"); err != nil {
		t.Fatalf("EnsureTopic is not idempotent: %v", err)
	}
	pushed := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case pushed <- r.URL.Path:
		default:
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	endpoint := platform.PushEndpoint(srv.Listener.Addr().String(), "Fn", c.Project(), "things")
	for _, s := range []platform.SubscriptionSpec{{ID: "pull-sub", Topic: "things"}, {ID: "push-sub", Topic: "things", PushEndpoint: endpoint}} {
		if err := platform.EnsureSubscription(ctx, c, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Publisher("things").Publish(ctx, &pubsub.Message{Data: []byte("hello")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		_ = c.Subscriber("pull-sub").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			select {
			case got <- string(m.Data):
			default:
			}
			cancel()
		})
	}()
	select {
	case msg := <-got:
		if msg != "hello" {
			t.Fatalf("pulled %q", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("nothing pulled")
	}
	select {
	case path := <-pushed:
		if want := "/Fn/projects/" + c.Project() + "/topics/things"; path != want {
			t.Fatalf("pushed to %s, want %s", path, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("nothing pushed")
	}
}

func TestKMSAndStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := platformtest.KMS(t).CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/" + platformtest.ProjectID(t) + "/locations/europe", KeyRingId: "r"}); err != nil {
		t.Fatal(err)
	}
	s := platformtest.Storage(t)
	b := s.Bucket("bucket-" + platformtest.ProjectID(t))
	if err := b.Create(ctx, "test", nil); err != nil {
		t.Fatal(err)
	}
	w := b.Object("o").NewWriter(ctx)
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := b.Object("o").NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != "data" {
		t.Fatalf("read %q", got)
	}
}
