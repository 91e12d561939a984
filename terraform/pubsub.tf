# Topics keep messages one day: long enough to ride out a function outage,
# short enough that sealed packets do not pile up outside Firestore.
resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  name                       = each.key
  kms_key_name               = google_kms_crypto_key.symmetric["pubsub"].id
  message_retention_duration = "86400s"

  message_storage_policy {
    allowed_persistence_regions = local.eu_regions
  }

  depends_on = [google_kms_crypto_key_iam_member.pubsub_agent, google_project_service.api]
}

# The same topology the emulators use locally (emulators/stack): push to
# the function with the topic in the path, retry with backoff, and
# dead-letter after five attempts so a poison message cannot block a topic.
resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  name                 = each.key
  topic                = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds = 60

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri}/projects/${var.project_id}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.push_invoker[each.key].email
      audience              = google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "10s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead-letter"].id
    max_delivery_attempts = 5
  }

  expiration_policy {
    ttl = ""
  }

  # Pushes start at once: the invoker must already be allowed to call.
  depends_on = [google_cloud_run_v2_service_iam_member.push_invokes, google_service_account_iam_member.pubsub_mints_push_tokens]
}

# Holds what was dead-lettered for inspection and replay; its backlog is
# what the dead-letter alert watches.
resource "google_pubsub_subscription" "dead_letter_watch" {
  name                       = "dead-letter-watch"
  topic                      = google_pubsub_topic.topic["dead-letter"].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Each connector pulls its own downlinks. The filter saves traffic; the
# connector still checks the signed addressee, since a filter is no
# security boundary (and the emulator ignores filters).
resource "google_pubsub_subscription" "downlinks" {
  for_each = var.connectors

  name                       = "downlinks-${each.key}"
  topic                      = google_pubsub_topic.topic["downlinks"].id
  filter                     = "attributes.connector = \"${each.key}\""
  ack_deadline_seconds       = 10
  message_retention_duration = "600s"

  expiration_policy {
    ttl = ""
  }
}

# What a dead-letter policy needs of the Pub/Sub service agent: publish to
# the dead-letter topic, and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  topic  = google_pubsub_topic.topic["dead-letter"].id
  role   = "roles/pubsub.publisher"
  member = local.agents.pubsub
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent" {
  for_each = local.push_subscriptions

  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.agents.pubsub
}
