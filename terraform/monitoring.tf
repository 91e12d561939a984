resource "google_monitoring_notification_channel" "email" {
  display_name = "SealedSense on-call"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }
}

# Log-based metrics over the functions' structured logs (shared/logging):
# the code marks each failure class with a field, so renaming a message
# does not silence an alert.
locals {
  log_metrics = {
    rejected_messages = {
      description = "Uplinks and status messages refused: forged or unknown connector, failed decryption, replay, malformed."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.rejected:*"
      label       = "rejected"
    }
    connector_offline = {
      description = "Connectors marked OFFLINE by the sweep."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"connector-offline\""
      label       = "connectorId"
    }
    webhook_disabled = {
      description = "Data Connectors disabled after repeated delivery failures."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"webhook-disabled\""
      label       = "dataConnectorId"
    }
    function_errors = {
      description = "Error-severity log entries of the functions."
      filter      = "resource.type=\"cloud_run_revision\" AND severity>=ERROR"
      label       = ""
    }
  }
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  name        = "sealedsense_${each.key}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"

    dynamic "labels" {
      for_each = each.value.label == "" ? [] : [each.value.label]
      content {
        key        = labels.value
        value_type = "STRING"
      }
    }
  }

  label_extractors = each.value.label == "" ? {} : { (each.value.label) = "EXTRACT(jsonPayload.${each.value.label})" }
}

resource "google_monitoring_alert_policy" "decrypt_auth_failures" {
  display_name          = "SealedSense: uplinks refused (decryption or authentication)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "decrypt_auth_failures" }

  conditions {
    display_name = "more than 0.2 refused messages/s for 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/sealedsense_rejected_messages\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.2
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.rejected"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Ingest is refusing uplinks: packets that fail to decrypt, replays, unknown or forged connector signatures. Sensor data behind them is not stored. First check the `rejected` label: `unknown-connector` or `bad-signature` after a connector was re-provisioned means its key is stale; `decrypt` across many devices after a KMS change means a key version was disabled; a single device points at a broken or cloned sensor. Logs: `jsonPayload.rejected:*`."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name          = "SealedSense: messages dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "dead_letter_backlog" }

  conditions {
    display_name = "dead-letter-watch holds messages"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"dead-letter-watch\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed five deliveries to a function and was moved to the dead-letter topic: its uplink or heartbeat was not processed. First read the function's ERROR logs at the time (`message failed`) for the cause, fix it, then pull `dead-letter-watch` and republish the messages to the topic in their `CloudPubSubDeadLetterSourceSubscription` attribute. Sensors resend unacknowledged readings, so fixing the cause quickly loses nothing."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "connector_offline" {
  display_name          = "SealedSense: connector offline"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "connector_offline" }

  conditions {
    display_name = "a connector was marked OFFLINE"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/sealedsense_connector_offline\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.connectorId"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Cloud Connector sent no heartbeat for longer than `connector_offline_after`. Sensors only it hears are not reaching the cloud; they keep their readings and resend once it is back. First check the connector's power and network at its site, then its log for publish errors (its service account may have lost `pubsub.publisher` on `uplinks`)."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "webhook_disabled" {
  display_name          = "SealedSense: Data Connector disabled"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "webhook_disabled" }

  conditions {
    display_name = "a Data Connector was disabled"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/sealedsense_webhook_disabled\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.dataConnectorId"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A customer's webhook kept failing and its Data Connector was disabled: that customer receives no events by push until it is re-enabled, which backfills what was missed. First look at the connector's `:metrics` for the receiver's status codes (4xx: their endpoint or signature check; 5xx or timeouts: their outage), then tell the customer."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "function_error_rate" {
  display_name          = "SealedSense: function errors"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "function_error_rate" }

  conditions {
    display_name = "more than 0.1 error log entries/s for 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/sealedsense_function_errors\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.1
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function keeps logging errors: messages are being retried and may soon be dead-lettered, or replies are not reaching sensors. First read the service's ERROR entries (the `error` field names the failing call): Firestore or KMS permission errors point at IAM, quota errors at scaling (`max_instances`), timeouts at a slow dependency."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_dashboard" "ops" {
  dashboard_json = jsonencode({
    displayName = "SealedSense operations"
    gridLayout = {
      columns = "2"
      widgets = concat(
        [for k, m in local.log_metrics : {
          title = m.description
          xyChart = {
            dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = "metric.type=\"logging.googleapis.com/user/sealedsense_${k}\" AND resource.type=\"cloud_run_revision\""
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM" }
                }
              }
            }]
          }
        }],
        [{
          title = "Dead-lettered messages waiting"
          xyChart = {
            dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"dead-letter-watch\""
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
                }
              }
            }]
          }
        }],
      )
    }
  })
}
