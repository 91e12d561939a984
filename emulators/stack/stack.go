// Package stack assembles a working local deployment on top of the
// emulators: the KMS keys Terraform makes in GCP, the Pub/Sub topology of
// the pipeline, and provisioned sensors and connectors. The run command,
// the end-to-end tests and the load tool all build their world with it.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/emulators/platform"
)

// Keys are the KMS CryptoKey names the functions are configured with.
type Keys struct {
	Device, SessionKEK, Signing string
	// APISecrets wraps service-account key secrets and the API's
	// page-token key: apart from Device, so the API, which must wrap,
	// cannot mint device secrets.
	APISecrets string
	// WebhookSecrets wraps Data Connector signature secrets: the API only
	// wraps with it and deliver only unwraps. WebhookSigning certifies the
	// deliver instances' ES256 keys; it is not Signing, so deliver cannot
	// mint access tokens.
	WebhookSecrets, WebhookSigning string
	// Backup wraps the data keys of key backups: apart from Device, so
	// that reading a backup bucket needs a grant on this key too.
	Backup string
	// ReleaseSigning signs software releases (provision release), and
	// devices are made trusting its public halves. No function reads it,
	// so it is in OperatorEnv, not Env.
	ReleaseSigning string
}

// Env is the keys as the functions' environment variables.
func (k Keys) Env() []string {
	return []string{
		"SEALEDSENSE_DEVICE_KEY=" + k.Device,
		"SEALEDSENSE_SESSION_KEK_KEY=" + k.SessionKEK,
		"SEALEDSENSE_SIGNING_KEY=" + k.Signing,
		"SEALEDSENSE_API_SECRETS_KEY=" + k.APISecrets,
		"SEALEDSENSE_WEBHOOK_SECRETS_KEY=" + k.WebhookSecrets,
		"SEALEDSENSE_WEBHOOK_SIGNING_KEY=" + k.WebhookSigning,
		"SEALEDSENSE_BACKUP_KEY=" + k.Backup,
	}
}

// OperatorEnv is what only the operators' command reads besides Env, as
// Terraform's operator_env output gives it.
func (k Keys) OperatorEnv() []string {
	return []string{"SEALEDSENSE_RELEASE_SIGNING_KEY=" + k.ReleaseSigning}
}

// EnsureKMS creates the key ring and keys if they are missing.
func EnsureKMS(ctx context.Context, c *kmsapi.KeyManagementClient, ring string) (Keys, error) {
	i := strings.LastIndex(ring, "/keyRings/")
	if i <= 0 {
		return Keys{}, fmt.Errorf("stack: %q is not a key ring name", ring)
	}
	if _, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: ring[:i], KeyRingId: ring[i+len("/keyRings/"):]}); err != nil && status.Code(err) != codes.AlreadyExists {
		return Keys{}, fmt.Errorf("stack: key ring: %w", err)
	}
	symmetric := &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT,
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION}}
	signing := &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN,
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}}
	for id, k := range map[string]*kmspb.CryptoKey{"device-keys": symmetric, "session-kek": symmetric, "api-secrets": symmetric, "webhook-secrets": symmetric, "backup-kek": symmetric, "signing": signing, "webhook-signing": signing, "release-signing": signing} {
		_, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: id, CryptoKey: k})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return Keys{}, fmt.Errorf("stack: key %s: %w", id, err)
		}
	}
	return Keys{Device: ring + "/cryptoKeys/device-keys", SessionKEK: ring + "/cryptoKeys/session-kek", Signing: ring + "/cryptoKeys/signing", APISecrets: ring + "/cryptoKeys/api-secrets",
		WebhookSecrets: ring + "/cryptoKeys/webhook-secrets", WebhookSigning: ring + "/cryptoKeys/webhook-signing", Backup: ring + "/cryptoKeys/backup-kek",
		ReleaseSigning: ring + "/cryptoKeys/release-signing"}, nil
}

// ReleasesBucket is the bucket release images are uploaded to, named as
// Terraform names it in GCP.
func ReleasesBucket(project string) string { return project + "-releases" }

// ExportsBucket is the bucket projects' exports are written to, named as
// Terraform names it in GCP.
func ExportsBucket(project string) string { return project + "-exports" }

// EnsureBucket creates a bucket on fake-gcs-server if it is missing, as
// the tests create the key-backup buckets; in GCP, Terraform makes them.
func EnsureBucket(ctx context.Context, c *storage.Client, project, bucket string) error {
	err := c.Bucket(bucket).Create(ctx, project, nil)
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusConflict {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stack: bucket %s: %w", bucket, err)
	}
	return nil
}

// Topic ids of the pipeline.
const (
	TopicUplinks    = "uplinks"
	TopicStatus     = "connector-status"
	TopicEvents     = "events"
	TopicDownlinks  = "downlinks"
	TopicDeadLetter = "dead-letter"
)

// Subscription ids the stack creates besides the pushes to functions.
const (
	// SubEvents lets an observer (the run command, a test) watch events.
	SubEvents = "events-watch"
	// SubDeadLetter collects poison messages, so they are visible and
	// counted rather than retried forever.
	SubDeadLetter = "dead-letter-watch"
	// MaxDeliveryAttempts before a message is dead-lettered.
	MaxDeliveryAttempts = 5
)

// DownlinkSubscription is a connector's own subscription to downlinks.
func DownlinkSubscription(connectorID string) string { return "downlinks-" + connectorID }

// Topology creates the topics, the push subscriptions that drive the
// ingest and deliver functions at functionsAddr (with retry and dead-letter policies,
// as Terraform configures them in GCP), and the connectors' downlink
// subscriptions.
func Topology(ctx context.Context, c *pubsub.Client, functionsAddr string, connectors []string) error {
	for _, t := range []string{TopicUplinks, TopicStatus, TopicEvents, TopicDownlinks, TopicDeadLetter} {
		if err := platform.EnsureTopic(ctx, c, t); err != nil {
			return err
		}
	}
	subs := []platform.SubscriptionSpec{
		{ID: "ingest-uplinks", Topic: TopicUplinks, PushEndpoint: platform.PushEndpoint(functionsAddr, "Ingest", c.Project(), TopicUplinks),
			AckDeadline: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts},
		{ID: "ingest-status", Topic: TopicStatus, PushEndpoint: platform.PushEndpoint(functionsAddr, "Ingest", c.Project(), TopicStatus),
			AckDeadline: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts},
		{ID: "deliver-events", Topic: TopicEvents, PushEndpoint: platform.PushEndpoint(functionsAddr, "Deliver", c.Project(), TopicEvents),
			AckDeadline: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts},
		{ID: SubEvents, Topic: TopicEvents},
		{ID: SubDeadLetter, Topic: TopicDeadLetter},
	}
	for _, id := range connectors {
		subs = append(subs, platform.SubscriptionSpec{ID: DownlinkSubscription(id), Topic: TopicDownlinks})
	}
	for _, s := range subs {
		if err := platform.EnsureSubscription(ctx, c, s); err != nil {
			return err
		}
	}
	return nil
}
