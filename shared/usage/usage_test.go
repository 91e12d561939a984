package usage_test

import (
	"context"
	"reflect"
	"testing"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/usage"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// TestCountsWhatIsBilled runs billable calls against the emulators and
// checks each count against what Firestore and Pub/Sub bill for them.
func TestCountsWhatIsBilled(t *testing.T) {
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	platformtest.Platform()
	opts, err := usage.FirestoreOptions()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := firestore.NewClient(ctx, project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ps, err := pubsub.NewClient(ctx, project, usage.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if err := platform.EnsureTopic(ctx, ps, "billed"); err != nil {
		t.Fatal(err)
	}
	things := fs.Collection("things")

	steps := []struct {
		name string
		do   func() error
		want usage.Counts
	}{
		{"a transaction reading one document and writing three", func() error {
			return fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
				if _, err := tx.Get(things.Doc("a")); status.Code(err) != codes.NotFound {
					return err
				}
				for _, id := range []string{"a", "b", "c"} {
					if err := tx.Set(things.Doc(id), map[string]any{"n": 1}); err != nil {
						return err
					}
				}
				return nil
			})
		}, usage.Counts{DocReads: 1, DocWrites: 3}},
		{"a query returning two documents", func() error {
			_, err := things.Where("n", "==", 1).Limit(2).Documents(ctx).GetAll()
			return err
		}, usage.Counts{DocReads: 2}},
		{"a query returning none", func() error {
			_, err := things.Where("n", "==", 2).Documents(ctx).GetAll()
			return err
		}, usage.Counts{DocReads: 1}},
		{"two small messages in one publish request", func() error {
			pub := ps.Publisher("billed")
			defer pub.Stop()
			pub.PublishSettings.CountThreshold = 2
			r1 := pub.Publish(ctx, &pubsub.Message{Data: []byte("hello")})
			r2 := pub.Publish(ctx, &pubsub.Message{Data: []byte("world"), Attributes: map[string]string{"k": "v"}})
			if _, err := r1.Get(ctx); err != nil {
				return err
			}
			_, err := r2.Get(ctx)
			return err
		}, usage.Counts{Publishes: 1, Messages: 2, PubBytes: usage.MinBillableBytes}},
		{"one large message", func() error {
			pub := ps.Publisher("billed")
			defer pub.Stop()
			_, err := pub.Publish(ctx, &pubsub.Message{Data: make([]byte, 3000)}).Get(ctx)
			return err
		}, usage.Counts{Publishes: 1, Messages: 1, PubBytes: 3000 + 36}},
	}
	for _, s := range steps {
		before := usage.Now()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := usage.Now()
		got := usage.Counts{
			DocWrites: after.DocWrites - before.DocWrites, DocReads: after.DocReads - before.DocReads,
			Publishes: after.Publishes - before.Publishes, Messages: after.Messages - before.Messages,
			PubBytes: after.PubBytes - before.PubBytes,
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: counted %+v; want %+v", s.name, got, s.want)
		}
	}
}

func TestPushedBillsAtLeastTheMinimum(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		want uint64
	}{
		{"a small message", 10, usage.MinBillableBytes},
		{"a large one", 5000, 5000 + 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := usage.Now()
			usage.Pushed("things", tc.size)
			after := usage.Now()
			if after.Pushes-before.Pushes != 1 || after.PushedBytes-before.PushedBytes != tc.want {
				t.Errorf("counted %d pushes of %d bytes; want 1 of %d", after.Pushes-before.Pushes, after.PushedBytes-before.PushedBytes, tc.want)
			}
			if got := after.PushedByTopic["things"] - before.PushedByTopic["things"]; got != tc.want {
				t.Errorf("counted %d bytes from the topic; want %d", got, tc.want)
			}
		})
	}
}
