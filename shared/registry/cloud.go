package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// CloudKeys is the stored form of the cloud's keys, each private half
// KMS-wrapped and bound by its AAD to its role.
type CloudKeys = store.CloudKeys

// AADs bind each wrapped cloud key to its role.
const (
	staticAAD  = "sealedsense/cloud-static/v1"
	channelAAD = "sealedsense/cloud-channel/v1"
)

// Bootstrap creates the cloud's keys if they do not exist yet and returns
// what is stored. Running it again returns the existing keys unchanged, so
// provisioning can always start with it.
func (r *Registry) Bootstrap(ctx context.Context, kekWrapper *custody.Wrapper, wrapKeyName string) (CloudKeys, error) {
	if ck, err := r.CloudKeys(ctx); err == nil {
		return ck, nil
	} else if !errors.Is(err, ErrNotFound) {
		return CloudKeys{}, err
	}
	static, err := radio.GenerateKeyPair(rand.Reader)
	if err != nil {
		return CloudKeys{}, fmt.Errorf("registry: bootstrap: %w", err)
	}
	staticWrapped, err := r.keys.Wrap(ctx, static.Private[:], []byte(staticAAD))
	if err != nil {
		return CloudKeys{}, fmt.Errorf("registry: bootstrap static key: %w", err)
	}
	chPub, chPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return CloudKeys{}, fmt.Errorf("registry: bootstrap: %w", err)
	}
	chWrapped, err := r.keys.Wrap(ctx, custody.Secret(chPriv.Seed()), []byte(channelAAD))
	if err != nil {
		return CloudKeys{}, fmt.Errorf("registry: bootstrap channel key: %w", err)
	}
	kek, kekWrapped, err := custody.NewKEK(ctx, kekWrapper, "kek-1")
	if err != nil {
		return CloudKeys{}, fmt.Errorf("registry: bootstrap session kek: %w", err)
	}
	kek.Key.Clear()
	ck := CloudKeys{
		StaticPublic:   static.Public[:],
		StaticWrapped:  staticWrapped,
		ChannelPublic:  chPub,
		ChannelWrapped: chWrapped,
		KEKID:          kek.ID,
		KEKWrapped:     kekWrapped,
		WrapKey:        wrapKeyName,
		CreateTime:     time.Now().UTC(),
	}
	err = r.db.CreateCloudKeys(ctx, ck)
	if store.IsExists(err) {
		// Another bootstrap won the race; its keys are the ones to use.
		return r.CloudKeys(ctx)
	}
	if err != nil {
		return CloudKeys{}, err
	}
	return ck, nil
}

// CloudKeys reads the stored cloud keys.
func (r *Registry) CloudKeys(ctx context.Context) (CloudKeys, error) {
	return r.db.CloudKeys(ctx)
}

// CloudStatic unwraps the cloud's static X25519 key pair.
func (r *Registry) CloudStatic(ctx context.Context, ck CloudKeys) (radio.KeyPair, error) {
	priv, err := r.read.Unwrap(ctx, ck.StaticWrapped, []byte(staticAAD))
	if err != nil {
		return radio.KeyPair{}, fmt.Errorf("registry: cloud static key: %w", err)
	}
	if len(priv) != 32 || len(ck.StaticPublic) != 32 {
		return radio.KeyPair{}, fmt.Errorf("registry: cloud static key has the wrong size")
	}
	var kp radio.KeyPair
	copy(kp.Private[:], priv)
	copy(kp.Public[:], ck.StaticPublic)
	return kp, nil
}

// ChannelKey unwraps the cloud's Ed25519 downlink signing key.
func (r *Registry) ChannelKey(ctx context.Context, ck CloudKeys) (ed25519.PrivateKey, error) {
	seed, err := r.read.Unwrap(ctx, ck.ChannelWrapped, []byte(channelAAD))
	if err != nil {
		return nil, fmt.Errorf("registry: channel key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("registry: channel key has the wrong size")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// SessionEnvelope unwraps the session KEK (through kekReader, usually a
// cache) and returns the envelope that seals session keys.
func (r *Registry) SessionEnvelope(ctx context.Context, kekReader custody.Unwrapper, ck CloudKeys) (*custody.Envelope, error) {
	kek, err := custody.UnwrapKEK(ctx, kekReader, ck.KEKID, ck.KEKWrapped)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return custody.NewEnvelope(kek)
}
