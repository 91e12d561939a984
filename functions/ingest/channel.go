package ingest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// announceTTL is how long a connector may still act on a channel-key
// announcement: longer than a reply's, since nothing waits for it, and
// shorter than the heartbeat interval that brings the next one.
const announceTTL = 20 * time.Second

// announceEvery spaces one connector's announcements: a heartbeat, even a
// replayed or redelivered one, costs a downlink publish at most this
// often, so a connector that floods heartbeats cannot flood downlinks.
const announceEvery = 10 * time.Second

// endorseChannel returns the endorsements of the newest channel key by
// the older ones still stored (channels is newest first). At most
// relay.MaxEndorsements of the newest older ones endorse: a connector
// further behind than that missed several rotations and needs new
// credentials.
func endorseChannel(channels []registry.ChannelKey) []relay.Endorsement {
	if len(channels) < 2 {
		return nil
	}
	pub := channels[0].Private.Public().(ed25519.PublicKey)
	var out []relay.Endorsement
	for _, older := range channels[1:min(len(channels), relay.MaxEndorsements+1)] {
		out = append(out, relay.Endorse(older.Private, pub))
	}
	return out
}

// announceChannel sends connector id a downlink with no packet that
// carries the newest channel key's endorsements, while older versions are
// still stored: a connector that relays no sensor traffic gets no replies
// to learn the key from, but it does send heartbeats. A failure is only
// logged; the next heartbeat tries again.
func (s *Service) announceChannel(ctx context.Context, id string) {
	keys, err := s.cloud(ctx)
	if err != nil || len(keys.endorsements) == 0 {
		return
	}
	if _, recent := s.announced.Get(id); recent {
		return
	}
	s.announced.Put(id, struct{}{})
	if err := s.publishAnnouncement(ctx, id, keys); err != nil {
		s.log.Warn("channel key announcement failed; the next heartbeat retries", "connectorId", id, "error", err.Error())
		return
	}
	s.log.Info("channel key announced", "connectorId", id, "endorsements", len(keys.endorsements))
}

func (s *Service) publishAnnouncement(ctx context.Context, id string, keys *cloudKeys) error {
	env, err := relay.SignDownlink(keys.channel, relay.Downlink{ConnectorID: id, Expires: s.deps.Now().Add(announceTTL), Endorsements: keys.endorsements})
	if err != nil {
		return err
	}
	if _, err := s.deps.Downlinks.Publish(ctx, &pubsub.Message{Data: env, Attributes: map[string]string{"connector": id}}).Get(ctx); err != nil {
		return fmt.Errorf("downlink: %w", err)
	}
	return nil
}
