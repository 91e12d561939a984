package ingest

import (
	"context"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// sendConnectorSoftware answers a connector's heartbeat with the piece of
// its pending release the heartbeat asked for: the signed manifest until
// it says it is fetching, then a run of chunks from the one it needs. The
// connector sends a status after each envelope it takes in, so the
// download goes at the pace of that round trip; a lost envelope costs a
// heartbeat, after which it is asked for again. A failure here is logged,
// never retried: the next heartbeat asks again.
func (s *Service) sendConnectorSoftware(ctx context.Context, id string, o softwareOffer) {
	if o.release == "" {
		return
	}
	if !s.limits.software(id) {
		s.log.Warn("connector software not sent: the connector asks faster than it may be answered", "connectorId", id, "releaseId", o.release)
		return
	}
	err := func() error {
		rel, err := s.releases.get(ctx, o.release)
		if err != nil {
			return err
		}
		keys, err := s.cloud(ctx)
		if err != nil {
			return err
		}
		sw := relay.Software{ConnectorID: id, Expires: s.deps.Now().Add(s.cfg.DownlinkTTL)}
		if o.manifest || int(o.chunk) >= len(rel.chunks) {
			sw.Manifest = rel.signed
		} else {
			sw.Chunks = rel.chunks[o.chunk:min(len(rel.chunks), int(o.chunk)+relay.MaxSoftwareChunks)]
		}
		env, err := relay.SignSoftware(keys.channel, sw)
		if err != nil {
			return err
		}
		_, err = s.deps.Downlinks.Publish(ctx, &pubsub.Message{Data: env, Attributes: map[string]string{"connector": id}}).Get(ctx)
		return err
	}()
	if err != nil {
		s.log.Error("connector software not sent; its next heartbeat asks again", "connectorId", id, "releaseId", o.release, "error", err.Error())
		return
	}
	s.log.Debug("connector software sent", "connectorId", id, "releaseId", o.release, "manifest", o.manifest, "chunk", o.chunk)
}
