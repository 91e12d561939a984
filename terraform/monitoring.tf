resource "google_monitoring_notification_channel" "email" {
  display_name = "SealedSense on-call"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.api]
}

# Log-based metrics over the functions' structured logs (shared/logging
# writes message and fields as jsonPayload). Refusals are matched on the
# `rejected` field, which every refusal carries whatever its message, so
# rewording a log line does not silence the alert.
locals {
  log_metrics = {
    rejected_uplinks = {
      description = "Uplinks and status messages refused: failed decryption or authentication, unknown or forged connector, replay, malformed."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.rejected:*"
      label       = "reason"
      field       = "rejected"
    }
    connector_offline = {
      description = "Connectors marked OFFLINE by the sweep."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.message=\"connector offline\""
      label       = "connector_id"
      field       = "connectorId"
    }
    webhook_disabled = {
      description = "Data Connectors disabled by the system after sustained webhook delivery failures."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"webhook-disabled\""
      label       = "data_connector_id"
      field       = "connectorId"
    }
    connector_rate_limited = {
      description = "Uplinks refused because one connector exceeded its handshake or unknown-lookup rate (ingest's per-connector limits); fleet health counts them per connector."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.metric=\"connector-rate-limited\""
      label       = "connector_id"
      field       = "connectorId"
    }
    device_rate_limited = {
      description = "Handshakes refused because one device passed its admission limit (twice what opens HANDSHAKE_FLOOD in a window): a cloned key's flood, its cost bounded. Unlabelled, as devices are too many for a label; the log entries name the device."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.metric=\"device-rate-limited\""
      label       = ""
      field       = ""
    }
    rollouts_paused = {
      description = "Software rollouts the sweep paused: a device refused or rolled back the release, or the updated devices' health fell outside the others' bounds."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"rollout-paused\""
      label       = "rollout_id"
      field       = "rolloutId"
    }
    release_image_mismatch = {
      description = "Release images in the releases bucket that do not match their signed manifest (altered after signing); the devices refuse them."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"release-image-mismatch\""
      label       = "release_id"
      field       = "releaseId"
    }
    device_anomalies = {
      description = "Per-device anomalies that started (deviceAnomaly events opened by ingest or its sweep), by kind: SILENT, HANDSHAKE_FLOOD, COUNTER_JUMP, COUNTER_BACKWARDS, LOCATION_CHANGE, BATTERY_DRAIN."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.metric=\"device-anomaly\""
      label       = "kind"
      field       = "anomalyKind"
    }
    connector_offline_long = {
      description = "Connectors still OFFLINE longer than `connector_offline_alert_after` (one entry per connector and outage)."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"connector-offline-long\""
      label       = "connector_id"
      field       = "connectorId"
    }
    key_backup_failed = {
      description = "Key backups that failed to reach a backup bucket (one entry per bucket and run)."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"key-backup-failed\""
      label       = "bucket"
      field       = "bucket"
    }
    key_backup_stale = {
      description = "Hourly checks that found a backup bucket whose newest key backup is older than 26 hours."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"key-backup-stale\""
      label       = "bucket"
      field       = "bucket"
    }
    key_backup_checked = {
      description = "Hourly key-backup checks that ran; their absence means the backup job itself stopped."
      filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.metric=\"key-backup-checked\""
      label       = ""
      field       = ""
    }
    api_auth_failures = {
      description = "Public API requests refused for missing or wrong credentials (unauthenticated), token requests with a bad signed assertion (bad-assertion), and Studio's refusals: writes without the session's CSRF token (csrf), sign-in callbacks with another browser's state or a failed code exchange (state, callback), sign-ins over an instance's rate (rate). Mostly internet noise, so counted apart from uplink refusals."
      filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"api\" OR \"stream\" OR \"studio\") AND jsonPayload.rejected=(\"unauthenticated\" OR \"bad-assertion\" OR \"csrf\" OR \"state\" OR \"callback\" OR \"rate\")"
      label       = "reason"
      field       = "rejected"
    }
    # The sweeps write nothing on success; Cloud Run's request log line
    # with a 2xx status is their success line (a failed sweep answers 500,
    # an unbuildable one 503, a refused call 403).
    sweep_succeeded = {
      description = "Successful runs of the connector-offline and webhook-delivery sweeps (2xx in Cloud Run's request log); their absence means a sweep stopped."
      filter      = "resource.type=\"cloud_run_revision\" AND LOG_ID(\"run.googleapis.com/requests\") AND resource.labels.service_name=(${join(" OR ", [for f in local.sweeps : "\"${f}\""])}) AND httpRequest.status>=200 AND httpRequest.status<300"
      label       = ""
      field       = ""
    }
    function_errors = {
      description = "Error-severity log entries of the functions."
      filter      = "resource.type=\"cloud_run_revision\" AND severity>=ERROR"
      label       = ""
      field       = ""
    }
  }
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  name        = "sealedsense/${each.key}"
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

  label_extractors = each.value.label == "" ? {} : { (each.value.label) = "EXTRACT(jsonPayload.${each.value.field})" }

  depends_on = [google_project_service.api]
}

# Late copies of a packet heard by several connectors are refused as
# `replay` in normal operation; only these reasons mean a failed decryption
# or authentication, and only they page. The public API's refusals
# (unauthenticated, bad-assertion) come from anyone on the internet and
# have an alert of their own.
locals {
  auth_reasons = join(", ", [for r in ["decrypt", "handshake-auth", "bad-signature", "unknown-connector", "revoked-connector", "retired-connector-key", "unknown-sensor"] : "\"${r}\""])

  # The functions Cloud Scheduler calls every minute; the sweep alert
  # below has a condition for each.
  sweeps = ["sweep", "deliver-sweep"]
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
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/rejected_uplinks\" AND resource.type=\"cloud_run_revision\" AND metric.label.reason=one_of(${local.auth_reasons})"
      threshold = 0.2
      duration  = "300s"
      aligner   = "ALIGN_RATE"
      group_by  = ["metric.label.reason"]
      doc       = "Ingest is refusing messages that fail decryption or authentication, so the sensor data in them is not stored. First check the `reason` label: `unknown-connector` or `bad-signature` right after a connector was re-provisioned, or `retired-connector-key` after its key rotation's grace ended, means it runs with a stale key; `decrypt` or `handshake-auth` across many devices after a KMS change means a key version was disabled; one device alone points at a broken or cloned sensor. Logs: `jsonPayload.rejected:*`."
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
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/connector_offline\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.connector_id"]
      doc       = "A Cloud Connector sent no heartbeat for longer than `connector_offline_after`. Sensors only it hears are not reaching the cloud; they keep their readings and resend once it is back. First check the connector's power and network at its site, then its log for publish errors (its service account may have lost `pubsub.publisher` on `connector-status`)."
    }
    connector_offline_long = {
      title     = "connector offline for long"
      condition = "a connector has been OFFLINE longer than connector_offline_alert_after"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/connector_offline_long\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.connector_id"]
      doc       = "A Cloud Connector has sent no heartbeat for longer than `connector_offline_alert_after`: past a short outage, sensors only it hears fill their backlogs and start dropping their oldest readings. First check `GET /v2/projects/{p}/health` and the connector's device (`devices/{id}`: its last `ethernetStatus` and `cellularStatus` say whether both links failed or the box lost power), then its site. Both links down at once points at power; only Ethernet down with no cellular fallback at the SIM or antenna."
    }
    device_anomaly_rate = {
      title     = "fleet-wide device anomalies"
      condition = "more than anomaly_alert_per_hour anomalies of one kind started per hour, for 15 minutes"
      severity  = "WARNING"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/device_anomalies\" AND resource.type=\"cloud_run_revision\""
      threshold = var.anomaly_alert_per_hour / 3600
      duration  = "900s"
      aligner   = "ALIGN_RATE"
      group_by  = ["metric.label.kind"]
      doc       = "Many devices across the fleet started one kind of anomaly (the `kind` label): one device's trouble is its customer's business (`GET /v2/projects/{p}/health`), many at once is ours. SILENT on many devices: a connector or site outage (check the connector alerts) or ingest refusing packets (the uplink refusal alert). LOCATION_CHANGE on many: a connector moved or its antenna changed. BATTERY_DRAIN on many of one type: a firmware or batch fault. Logs: `jsonPayload.metric=\"device-anomaly\"` name each device."
    }
    device_anomaly_security = {
      title     = "possible cloned or tampered sensor"
      condition = "a HANDSHAKE_FLOOD, COUNTER_JUMP or COUNTER_BACKWARDS anomaly started"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/device_anomalies\" AND resource.type=\"cloud_run_revision\" AND metric.label.kind=one_of(\"HANDSHAKE_FLOOD\", \"COUNTER_JUMP\", \"COUNTER_BACKWARDS\")"
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.kind"]
      doc       = "A sensor made more handshakes than its own protocol limits allow, or its reading counter jumped or went back without a reboot: its keys may be in a second device (a clone) or its firmware is faulty. First find the device in the `device anomaly` log entry (`deviceId`, `evidence`), read its `deviceAnomaly` events and which connectors heard the handshakes (`networkStatus`), then ask its owner whether it was replaced or reset. If it was not: `provision keys` for its history, revoke it and re-provision (terraform/README.md, Key lifecycle)."
    }
    rollout_paused = {
      title     = "software rollout paused"
      condition = "the sweep paused a rollout"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/rollouts_paused\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.rollout_id"]
      doc       = "A staged software rollout stopped by itself: a device refused the release (its reason: a bad signature, a hash mismatch, a downgrade, another type) or rolled it back after a failed boot, or the updated devices' anomalies or ACK rate fell outside the not-updated devices' bounds. Its pending devices were withdrawn; those that installed keep it. First read the `rollout paused` log entry's `reason` and `provision rollout status -id ID`, then the devices' `softwareUpdateStatus` events. Resume (`provision rollout resume`) only once the cause is understood; abort and release a fixed version otherwise (terraform/README.md, Software updates)."
    }
    release_image_mismatch = {
      title     = "release image altered"
      condition = "a release image does not match its signed manifest"
      severity  = "CRITICAL"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/release_image_mismatch\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.release_id"]
      doc       = "An image in the releases bucket no longer matches the SHA-256 its manifest signed: it was overwritten after signing, by an operator's mistake or by someone with write access to the bucket. Devices verify every image and refuse this one, so nothing is installed, but treat it as an intrusion until shown otherwise: read the bucket's Data Access audit logs for the object's writer, restore the signed version (the bucket keeps versions), and abort any rollout of it."
    }
    webhook_disabled = {
      title     = "Data Connector disabled"
      condition = "a Data Connector was disabled"
      severity  = "WARNING"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/webhook_disabled\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.data_connector_id"]
      doc       = "A customer's webhook kept failing and its Data Connector was disabled: that customer receives no events by push until it is re-enabled, which backfills what was missed. First look at the connector's `:metrics` for the receiver's status codes (4xx: their endpoint or signature check; 5xx or timeouts: their outage), then tell the customer."
    }
    key_backup_failed = {
      title     = "key backup failed"
      condition = "a key backup did not reach a backup bucket"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/key_backup_failed\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.bucket"]
      doc       = "The backup function could not write the day's key backup to the bucket in the `bucket` label; the other bucket is written independently. Nothing is lost yet, but until it is fixed a lost database could only be restored from the other region. First read the `key backup failed` log entry's `error`: a permission error means the backup service account lost `storage.objectCreator` on the bucket or `cryptoKeyEncrypter` on backup-kek; a KMS FAILED_PRECONDITION means the backup-kek primary version is disabled. Then run `provision backup` by hand (terraform/README.md, Key backups)."
    }
    key_backup_stale = {
      title     = "key backup older than 26 hours"
      condition = "a backup bucket's newest key backup is older than 26 hours"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/key_backup_stale\" AND resource.type=\"cloud_run_revision\""
      threshold = 0
      duration  = "0s"
      aligner   = "ALIGN_SUM"
      group_by  = ["metric.label.bucket"]
      doc       = "The newest key backup in the bucket named by the `bucket` label is more than 26 hours old, so sensors manufactured or connectors registered since then would be lost with the database. First look for `key backup failed` entries (the cause is there), fix it, then run `provision backup` and check that `key backup written` is logged for both buckets (terraform/README.md, Key backups)."
    }
    api_auth_failures = {
      title     = "API authentication failures"
      condition = "more than 1 refused API request/s for 10 minutes"
      severity  = "WARNING"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/api_auth_failures\" AND resource.type=\"cloud_run_revision\""
      threshold = 1
      duration  = "600s"
      aligner   = "ALIGN_RATE"
      group_by  = ["metric.label.reason"]
      doc       = "The public API (api, stream) is refusing many requests without valid credentials (`unauthenticated`) or token requests with a bad signed assertion (`bad-assertion`). A trickle is internet noise; this rate is either someone guessing credentials or a customer whose client broke (a deleted or rotated key, a wrong token URL or clock). First read the refusals' `route` and `reason` fields and the request log's source addresses and user agents: one customer's service account or address means contact them; many addresses spraying `unauthenticated` is an attack, which the per-account rate limit and key secrets withstand, so watch that it does not grow into a cost problem."
    }
    push_backlog_age = {
      title     = "push backlog growing old"
      condition = "a push subscription's oldest unacknowledged message is older than 5 minutes, for 5 minutes"
      severity  = "ERROR"
      filter    = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=one_of(${join(", ", [for k in keys(local.push_subscriptions) : "\"${k}\""])})"
      threshold = 300
      duration  = "300s"
      aligner   = "ALIGN_MAX"
      group_by  = ["resource.label.subscription_id"]
      doc       = "Pub/Sub cannot hand the messages of the subscription in the `subscription_id` label to its function: uplinks, connector heartbeats or events wait, and sensors see no replies. Nothing is lost yet (topics keep messages a day, and failing messages dead-letter after five attempts). First look at the push subscription's delivery errors (Pub/Sub metrics `push_request_count` by response class): 403 means the subscription's own invoker account lost `run.invoker` or Pub/Sub lost token creation on it; 429 or 5xx means the function is failing or at `max_instances` (its logs); none at all means the function cannot keep up."
    }
    function_error_rate = {
      title     = "function errors"
      condition = "more than 0.1 error log entries/s for 5 minutes"
      severity  = "ERROR"
      filter    = "metric.type=\"logging.googleapis.com/user/sealedsense/function_errors\" AND resource.type=\"cloud_run_revision\""
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

  # A condition on a log-based metric is refused until the metric exists,
  # and the filter names it only as text.
  depends_on = [google_logging_metric.metric]
}

# The hourly check is what reports a stale backup, so its own silence
# needs an alert of its own: three hours without a check means the
# scheduler job, the function or its logs stopped.
resource "google_monitoring_alert_policy" "key_backup_unchecked" {
  display_name          = "SealedSense: key backups unchecked"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "key_backup_unchecked" }

  conditions {
    display_name = "no key-backup check for 3 hours"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/sealedsense/key_backup_checked\" AND resource.type=\"cloud_run_revision\""
      duration = "10800s"
      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The backup function has not checked the key backups for three hours, so neither a failed nor a stale backup would be reported. First check the Cloud Scheduler job `key-backup` (paused, or its last attempt's status), then the `backup` function's logs and its service account's roles (terraform/README.md, Key backups)."
  }

  depends_on = [google_logging_metric.metric]
}

# The sweeps run every minute; three minutes without a successful one means
# connectors are no longer marked OFFLINE, or webhook retries, backfills
# and syncs stopped. Scheduler failures are logged under
# cloud_scheduler_job and Cloud Run's 403s only at WARNING, so only the
# absence of success catches every cause.
resource "google_monitoring_alert_policy" "sweep_not_running" {
  display_name          = "SealedSense: sweeps not running"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels           = { failure_class = "sweep_not_running" }

  conditions {
    display_name = "no successful sweep run for 3 minutes"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/sealedsense/sweep_succeeded\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"sweep\""
      duration = "180s"
      # One series per service, whatever revision served it, so that a
      # deployment does not read as an absence.
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  conditions {
    display_name = "no successful deliver-sweep run for 3 minutes"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/sealedsense/sweep_succeeded\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"deliver-sweep\""
      duration = "180s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A sweep (`sweep`: connectors OFFLINE; `deliver-sweep`: webhook retries, backfills and syncs) has not completed for three minutes. First check its Cloud Scheduler job (`connector-offline-sweep` or `webhook-delivery-sweep`: paused, or its last attempt's status, logged under `cloud_scheduler_job`), then the service's request log: 403 means the job's own `sched-` account lost `run.invoker` on the function, 500 a failed sweep (its ERROR entry says why), 503 a function that cannot start (its configuration or KMS)."
  }

  depends_on = [google_logging_metric.metric]
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
                  filter      = "metric.type=\"logging.googleapis.com/user/sealedsense/${k}\" AND resource.type=\"cloud_run_revision\""
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

  depends_on = [google_project_service.api]
}
