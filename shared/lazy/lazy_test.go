package lazy

import (
	"context"
	"errors"
	"testing"
)

func TestFailedBuildIsRetried(t *testing.T) {
	t.Parallel()
	calls := 0
	v := New(func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, errors.New("cold start failed")
		}
		return 42, nil
	})
	if _, err := v.Get(context.Background()); err == nil {
		t.Fatal("the failure was not returned")
	}
	for range 3 {
		if got, err := v.Get(context.Background()); err != nil || got != 42 {
			t.Fatalf("got %d, %v", got, err)
		}
	}
	if calls != 2 {
		t.Fatalf("built %d times, want 2", calls)
	}
}
