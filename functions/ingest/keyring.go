package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// minReload spaces the reloads that traffic asks for: a session sealed
// under a KEK the instance does not hold, or a message 1 under no static
// key it holds, may mean a key was rotated since the last load, but
// anyone can send a message 1 that opens under nothing, and such garbage
// must not make every packet read Firestore.
const minReload = 10 * time.Second

// keyring holds the instance's unwrapped cloud keys and reads them again
// when they are maxAge old, or sooner when traffic names a key they lack.
// The unwraps go through caches (custody.Cache), so a reload costs one
// Firestore read and no KMS call for a key already unwrapped.
type keyring struct {
	load   func(context.Context) (*cloudKeys, error)
	maxAge time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	cur      *cloudKeys // nil until the first load succeeds
	loadedAt time.Time  // when cur was loaded, or pushed on after a failed reload
	askedAt  time.Time  // when the last reload traffic asked for began
	group    singleflight.Group
}

func newKeyring(load func(context.Context) (*cloudKeys, error), maxAge time.Duration, now func() time.Time, log *slog.Logger) *keyring {
	return &keyring{load: load, maxAge: maxAge, now: now, log: log}
}

// get returns the keys, loading them if they are missing or maxAge old.
func (k *keyring) get(ctx context.Context) (*cloudKeys, error) {
	k.mu.Lock()
	cur, due := k.cur, k.cur == nil || k.now().Sub(k.loadedAt) >= k.maxAge
	k.mu.Unlock()
	if !due {
		return cur, nil
	}
	return k.reload(ctx)
}

// refresh is asked for by traffic that used stale and found a key
// missing. It returns keys loaded after stale, reloading them unless
// another caller has or a reload began less than minReload ago; reloaded
// is false when the caller has nothing newer to try.
func (k *keyring) refresh(ctx context.Context, stale *cloudKeys) (keys *cloudKeys, reloaded bool, err error) {
	k.mu.Lock()
	now := k.now()
	switch {
	case k.cur != stale:
		cur := k.cur
		k.mu.Unlock()
		return cur, true, nil
	case !k.askedAt.IsZero() && now.Sub(k.askedAt) < minReload:
		k.mu.Unlock()
		return stale, false, nil
	}
	k.askedAt = now
	k.mu.Unlock()
	keys, err = k.reload(ctx)
	if err != nil {
		return nil, false, err
	}
	return keys, keys != stale, nil
}

// reload loads the keys once for all concurrent callers. A failure with
// keys in hand keeps them for minReload more: a Firestore or KMS outage
// then costs one read per minReload rather than one per message, and
// traffic goes on with keys a little older.
func (k *keyring) reload(ctx context.Context) (*cloudKeys, error) {
	v, err, _ := k.group.Do("load", func() (any, error) {
		loaded, err := k.load(context.WithoutCancel(ctx))
		k.mu.Lock()
		defer k.mu.Unlock()
		now := k.now()
		if err != nil {
			if k.cur == nil {
				return nil, err
			}
			k.loadedAt = now.Add(minReload - k.maxAge)
			k.log.Warn("cloud keys could not be read again; the ones in hand stay in use", "error", err.Error())
			return k.cur, nil
		}
		k.cur, k.loadedAt = loaded, now
		return loaded, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cloudKeys), nil
}
