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

# One alert per failure class in DESIGN.md. The failure_class label is how
# the policy tests find them; each documentation says what the alert means
# and what to check first (terraform/README.md says the same at length).
locals {
  alerts = {
    decrypt_auth_failures = {
      title     = "uplinks refused (decryption or authentication)"
      condition = "more than 0.2 refused messages/s for 5 minutes"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense_rejected_messages\" AND resource.type=\"cloud_run_revision\""
      threshold = 0.2
      duration  = "300s"
      aligner   = "ALIGN_RATE"
      group_by  = ["metric.label.rejected"]
      doc       = "Ingest is refusing uplinks: packets that fail to decrypt, replays, unknown or forged connector signatures. Sensor data behind them is not stored. First check the `rejected` label: `unknown-connector` or `bad-signature` after a connector was re-provisioned means its key is stale; `decrypt` across many devices after a KMS change means a key version was disabled; a single device points at a broken or cloned sensor. Logs: `jsonPayload.rejected:*`."
    }
    dead_letter_backlog = {
      title     = "messages dead-lettered"
      condition = "dead-letter-watch holds messages"
      severity  = "ERROR"
      filter    = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"dead-letter-watch\""
      threshold = 0
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      group_by  = []
      doc       = "A message failed five deliveries to a function and was moved to the dead-letter topic: its uplink or heartbeat was not processed. First read the function's ERROR logs at the time (`message failed`) for the cause, fix it, then pull `dead-letter-watch` and republish the messages to the topic in their `CloudPubSubDeadLetterSourceSubscription` attribute. Sensors resend unacknowledged readings, so fixing the cause quickly loses nothing."
    }
    connector_offline = {
      title     = "connector offline"
      condition = "a connector was marked OFFLINE"
      severity  = "WARNING"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense_connector_offline\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.connectorId"]
      doc       = "A Cloud Connector sent no heartbeat for longer than `connector_offline_after`. Sensors only it hears are not reaching the cloud; they keep their readings and resend once it is back. First check the connector's power and network at its site, then its log for publish errors (its service account may have lost `pubsub.publisher` on `uplinks`)."
    }
    webhook_disabled = {
      title     = "Data Connector disabled"
      condition = "a Data Connector was disabled"
      severity  = "WARNING"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense_webhook_disabled\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.dataConnectorId"]
      doc       = "A customer's webhook kept failing and its Data Connector was disabled: that customer receives no events by push until it is re-enabled, which backfills what was missed. First look at the connector's `:metrics` for the receiver's status codes (4xx: their endpoint or signature check; 5xx or timeouts: their outage), then tell the customer."
    }
    function_error_rate = {
      title     = "function errors"
      condition = "more than 0.1 error log entries/s for 5 minutes"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense_function_errors\" AND resource.type=\"cloud_run_revision\""
      threshold = 0.1
      duration  = "300s"
      aligner   = "ALIGN_RATE"
      group_by  = ["resource.label.service_name"]
      doc       = "A function keeps logging errors: messages are being retried and may soon be dead-lettered, or replies are not reaching sensors. First read the service's ERROR entries (the `error` field names the failing call): Firestore or KMS permission errors point at IAM, quota errors at scaling (`max_instances`), timeouts at a slow dependency."
    }
  }
}

resource "google_monitoring_alert_policy" "failure" {
  for_each = local.alerts

  display_name          = "SealedSense: ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = each.key }

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = length(each.value.group_by) > 0 ? "REDUCE_SUM" : null
        group_by_fields      = each.value.group_by
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.doc
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
