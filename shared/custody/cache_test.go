package custody_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
)

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func wrapped(t *testing.T, w *custody.Wrapper, aad string) []byte {
	t.Helper()
	ct, err := w.Wrap(context.Background(), testSecret, []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	t.Parallel()
	k := &countingKMS{next: client}
	w := custody.NewWrapper(k, newKey(t))
	ct := wrapped(t, w, "a")
	c := custody.NewCache(w, time.Minute)

	const callers = 64
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range callers {
		wg.Go(func() {
			got, err := c.Unwrap(context.Background(), ct, []byte("a"))
			if err != nil || !bytes.Equal(got, testSecret) {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d callers got a wrong result", bad.Load())
	}
	if n := k.decrypts.Load(); n != 1 {
		t.Fatalf("%d concurrent callers made %d KMS calls, want 1", callers, n)
	}
}

func TestCacheExpiryAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := &countingKMS{next: client}
	w := custody.NewWrapper(k, newKey(t))
	a, b := wrapped(t, w, "a"), wrapped(t, w, "b")
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := custody.NewCache(w, time.Minute, custody.WithClock(clock.Now), custody.WithMaxEntries(1))

	steps := []struct {
		name      string
		advance   time.Duration
		ct        []byte
		aad       string
		wantErr   bool
		wantCalls int64 // cumulative KMS decrypts after the step
	}{
		{"first use unwraps", 0, a, "a", false, 1},
		{"second use is cached", 30 * time.Second, a, "a", false, 1},
		{"expired entry unwraps again", 31 * time.Second, a, "a", false, 2},
		{"a failure is not cached", 0, a, "wrong", true, 3},
		{"so the same failure calls KMS again", 0, a, "wrong", true, 4},
		{"a second key evicts the first (max 1 entry)", 0, b, "b", false, 5},
		{"the evicted key unwraps again", 0, a, "a", false, 6},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		got, err := c.Unwrap(ctx, s.ct, []byte(s.aad))
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err = %v, wantErr %v", s.name, err, s.wantErr)
		}
		if err == nil && !bytes.Equal(got, testSecret) {
			t.Fatalf("%s: wrong key", s.name)
		}
		if n := k.decrypts.Load(); n != s.wantCalls {
			t.Fatalf("%s: KMS calls = %d, want %d", s.name, n, s.wantCalls)
		}
	}
}

// blockingUnwrapper holds every unwrap until released, to show that one
// caller's cancellation neither fails nor repeats the shared call.
type blockingUnwrapper struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blockingUnwrapper) Unwrap(ctx context.Context, _, _ []byte) (custody.Secret, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
		return testSecret, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCacheCallerCancellation(t *testing.T) {
	t.Parallel()
	u := &blockingUnwrapper{release: make(chan struct{})}
	c := custody.NewCache(u, time.Minute)
	patient := make(chan error, 1)
	go func() {
		_, err := c.Unwrap(context.Background(), []byte("ct"), nil)
		patient <- err
	}()
	for u.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Unwrap(ctx, []byte("ct"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(u.release)
	if err := <-patient; err != nil {
		t.Fatalf("the patient caller failed because another gave up: %v", err)
	}
	if u.calls.Load() != 1 {
		t.Fatalf("unwrap calls = %d, want 1", u.calls.Load())
	}
}
