package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// CloudKeys is the stored form of the cloud's keys, each private half
// KMS-wrapped and bound by its AAD to its role.
type CloudKeys = store.CloudKeys

// staticAAD and channelAAD bind each wrapped cloud key to its role and
// version, so one version's wrapped key cannot stand in for another's.
// Version 1 keeps the AAD from before keys had versions.
func staticAAD(version int) []byte  { return versionedAAD("sealedsense/cloud-static/v1", version) }
func channelAAD(version int) []byte { return versionedAAD("sealedsense/cloud-channel/v1", version) }

// CloudKeyAAD is what version v of the cloud's key of role is wrapped
// with, for the operators' re-wrap.
func CloudKeyAAD(role store.KeyRole, v int) []byte {
	switch role {
	case store.RoleStatic:
		return staticAAD(v)
	case store.RoleChannel:
		return channelAAD(v)
	}
	return custody.KEKAAD(store.CloudKey{Version: v}.KEKID())
}

func versionedAAD(base string, version int) []byte {
	if version == 1 {
		return []byte(base)
	}
	return fmt.Appendf(nil, "%s/version-%d", base, version)
}

// Bootstrap creates the cloud's keys if they do not exist yet and returns
// what is stored. Running it again returns the existing keys unchanged, so
// provisioning can always start with it.
func (r *Registry) Bootstrap(ctx context.Context, kekWrapper *custody.Wrapper, wrapKeyName string) (CloudKeys, error) {
	if ck, err := r.CloudKeys(ctx); err == nil {
		return ck, nil
	} else if !errors.Is(err, ErrNotFound) {
		return CloudKeys{}, err
	}
	now := time.Now().UTC()
	ck := CloudKeys{WrapKey: wrapKeyName, CreateTime: now}
	for _, role := range []store.KeyRole{store.RoleStatic, store.RoleChannel, store.RoleKEK} {
		k, err := r.newCloudKey(ctx, role, 1, kekWrapper)
		if err != nil {
			return CloudKeys{}, fmt.Errorf("registry: bootstrap: %w", err)
		}
		k.Created = now
		switch role {
		case store.RoleStatic:
			ck.Statics = []store.CloudKey{k}
		case store.RoleChannel:
			ck.Channels = []store.CloudKey{k}
		default:
			ck.KEKs = []store.CloudKey{k}
		}
	}
	err := r.db.CreateCloudKeys(ctx, ck)
	if store.IsExists(err) {
		// Another bootstrap won the race; its keys are the ones to use.
		return r.CloudKeys(ctx)
	}
	if err != nil {
		return CloudKeys{}, err
	}
	return ck, nil
}

// newCloudKey makes version v of role and wraps its private half: the
// static and channel keys with the device key, a KEK with kekWrapper.
func (r *Registry) newCloudKey(ctx context.Context, role store.KeyRole, v int, kekWrapper *custody.Wrapper) (store.CloudKey, error) {
	k := store.CloudKey{Version: v, Created: time.Now().UTC()}
	var err error
	switch role {
	case store.RoleStatic:
		var kp radio.KeyPair
		if kp, err = radio.GenerateKeyPair(rand.Reader); err != nil {
			return k, err
		}
		k.Public = kp.Public[:]
		k.Wrapped, err = r.keys.Wrap(ctx, kp.Private[:], staticAAD(v))
		clear(kp.Private[:])
	case store.RoleChannel:
		var pub ed25519.PublicKey
		var priv ed25519.PrivateKey
		if pub, priv, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return k, err
		}
		k.Public = pub
		k.Wrapped, err = r.keys.Wrap(ctx, custody.Secret(priv.Seed()), channelAAD(v))
		clear(priv)
	case store.RoleKEK:
		var kek custody.KEK
		kek, k.Wrapped, err = custody.NewKEK(ctx, kekWrapper, k.KEKID())
		kek.Key.Clear()
	default:
		return k, fmt.Errorf("registry: unknown key role %q", role)
	}
	if err != nil {
		return k, fmt.Errorf("%s version %d: %w", role, v, err)
	}
	return k, nil
}

// RotateCloudKey adds a new newest version of role and returns it. The
// older versions stay until RetireCloudKey removes them.
func (r *Registry) RotateCloudKey(ctx context.Context, role store.KeyRole, kekWrapper *custody.Wrapper) (store.CloudKey, error) {
	ck, err := r.CloudKeys(ctx)
	if err != nil {
		return store.CloudKey{}, err
	}
	newest, _ := ck.Newest(role)
	k, err := r.newCloudKey(ctx, role, newest.Version+1, kekWrapper)
	if err != nil {
		return store.CloudKey{}, fmt.Errorf("registry: rotate: %w", err)
	}
	if err := r.db.AddCloudKey(ctx, role, k); err != nil {
		return store.CloudKey{}, err
	}
	return k, nil
}

// RetireCloudKey removes version v of role: whatever still uses it stops
// working. The newest version cannot be retired.
func (r *Registry) RetireCloudKey(ctx context.Context, role store.KeyRole, v int) error {
	return r.db.RetireCloudKey(ctx, role, v)
}

// CloudKeys reads the stored cloud keys.
func (r *Registry) CloudKeys(ctx context.Context) (CloudKeys, error) {
	return r.db.CloudKeys(ctx)
}

// StaticKey is one unwrapped version of the cloud's static key.
type StaticKey struct {
	Version int
	radio.KeyPair
}

// CloudStatics unwraps every version of the cloud's static X25519 key,
// newest first.
func (r *Registry) CloudStatics(ctx context.Context, ck CloudKeys) ([]StaticKey, error) {
	var out []StaticKey
	for _, k := range slices.Backward(ck.Statics) {
		priv, err := r.read.Unwrap(ctx, k.Wrapped, staticAAD(k.Version))
		if err != nil {
			return nil, fmt.Errorf("registry: cloud static key version %d: %w", k.Version, err)
		}
		if len(priv) != 32 || len(k.Public) != 32 {
			return nil, fmt.Errorf("registry: cloud static key version %d has the wrong size", k.Version)
		}
		sk := StaticKey{Version: k.Version}
		copy(sk.Private[:], priv)
		copy(sk.Public[:], k.Public)
		out = append(out, sk)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry: no cloud static key")
	}
	return out, nil
}

// ChannelKey is one unwrapped version of the cloud's channel key.
type ChannelKey struct {
	Version int
	Private ed25519.PrivateKey
}

// ChannelKeys unwraps every version of the cloud's Ed25519 downlink
// signing key, newest first.
func (r *Registry) ChannelKeys(ctx context.Context, ck CloudKeys) ([]ChannelKey, error) {
	var out []ChannelKey
	for _, k := range slices.Backward(ck.Channels) {
		seed, err := r.read.Unwrap(ctx, k.Wrapped, channelAAD(k.Version))
		if err != nil {
			return nil, fmt.Errorf("registry: channel key version %d: %w", k.Version, err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("registry: channel key version %d has the wrong size", k.Version)
		}
		out = append(out, ChannelKey{Version: k.Version, Private: ed25519.NewKeyFromSeed(seed)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry: no channel key")
	}
	return out, nil
}

// SessionEnvelope unwraps every session KEK (through kekReader, usually a
// cache) and returns the envelope that seals session keys under the newest
// and still opens sessions sealed under the older ones.
func (r *Registry) SessionEnvelope(ctx context.Context, kekReader custody.Unwrapper, ck CloudKeys) (*custody.Envelope, error) {
	var keks []custody.KEK
	for _, k := range slices.Backward(ck.KEKs) {
		kek, err := custody.UnwrapKEK(ctx, kekReader, k.KEKID(), k.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		keks = append(keks, kek)
	}
	if len(keks) == 0 {
		return nil, fmt.Errorf("registry: no session kek")
	}
	return custody.NewEnvelope(keks[0], keks[1:]...)
}
