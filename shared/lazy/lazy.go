// Package lazy builds a function's service on first use, so that a cold
// start that fails (KMS or Firestore briefly unreachable) is retried by the
// next request instead of being fixed into the instance.
package lazy

import (
	"context"
	"sync"
)

// Value is built by its build function on the first Get that succeeds.
type Value[T any] struct {
	build func(context.Context) (T, error)
	mu    sync.Mutex
	v     T
	ok    bool
}

// New returns a Value that build makes.
func New[T any](build func(context.Context) (T, error)) *Value[T] {
	return &Value[T]{build: build}
}

// Get returns the value, building it if no earlier Get did. The build
// runs without ctx's cancellation: what it makes outlives the request.
func (l *Value[T]) Get(ctx context.Context) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.v, nil
	}
	v, err := l.build(context.WithoutCancel(ctx))
	if err != nil {
		var zero T
		return zero, err
	}
	l.v, l.ok = v, true
	return v, nil
}
