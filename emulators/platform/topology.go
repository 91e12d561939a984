package platform

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SubscriptionSpec describes a subscription. PushEndpoint empty means pull.
type SubscriptionSpec struct {
	ID, Topic           string
	PushEndpoint        string
	AckDeadline         time.Duration
	MinBackoff          time.Duration
	MaxBackoff          time.Duration
	DeadLetterTopic     string // topic id
	MaxDeliveryAttempts int32
}

// PushEndpoint is where a push subscription for topic delivers to the
// local functions server: the function's path, then the topic's resource
// name, from which functions-framework-go derives the CloudEvent source.
func PushEndpoint(functionsAddr, function, project, topic string) string {
	return fmt.Sprintf("http://%s/%s/projects/%s/topics/%s", functionsAddr, function, project, topic)
}

// EnsureTopic creates a topic if it does not exist.
func EnsureTopic(ctx context.Context, c *pubsub.Client, topic string) error {
	_, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName(c, topic)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	return nil
}

// EnsureSubscription creates a subscription if it does not exist.
func EnsureSubscription(ctx context.Context, c *pubsub.Client, s SubscriptionSpec) error {
	sub := &pubsubpb.Subscription{
		Name:               fmt.Sprintf("projects/%s/subscriptions/%s", c.Project(), s.ID),
		Topic:              topicName(c, s.Topic),
		AckDeadlineSeconds: int32(max(s.AckDeadline, 10*time.Second) / time.Second),
	}
	if s.PushEndpoint != "" {
		sub.PushConfig = &pubsubpb.PushConfig{PushEndpoint: s.PushEndpoint}
	}
	if s.MinBackoff > 0 {
		sub.RetryPolicy = &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(s.MinBackoff), MaximumBackoff: durationpb.New(max(s.MaxBackoff, s.MinBackoff))}
	}
	if s.DeadLetterTopic != "" {
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{DeadLetterTopic: topicName(c, s.DeadLetterTopic), MaxDeliveryAttempts: s.MaxDeliveryAttempts}
	}
	_, err := c.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("subscription %s: %w", s.ID, err)
	}
	return nil
}

func topicName(c *pubsub.Client, topic string) string {
	return fmt.Sprintf("projects/%s/topics/%s", c.Project(), topic)
}
