locals {
  # What the first apply in a new project needs: cloudresourcemanager for
  # project IAM and data.google_project, iam for service accounts,
  # serviceusage for the service agents. iamcredentials for the API's
  # signBlob, which signs exports' download URLs. secretmanager for
  # Studio's client secret. orgpolicy only when Terraform sets the
  # organization policy.
  services = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ], local.set_location_policy ? ["orgpolicy.googleapis.com"] : []))

  set_location_policy = var.organization_id != "" && var.enforce_resource_locations

  # Google-managed service agents that use our keys: Firestore, Pub/Sub and
  # Cloud Storage for our stores; Artifact Registry, Cloud Run and Cloud
  # Functions for the functions' images and instances (CMEK needs all four
  # of Storage, Artifact Registry, Run and Functions); Cloud Logging for
  # the log bucket; Secret Manager for Studio's client secret. Some exist only after the service's first use, so each
  # is created (or looked up) here before any grant names it.
  agent_services = {
    firestore        = "firestore.googleapis.com"
    pubsub           = "pubsub.googleapis.com"
    artifactregistry = "artifactregistry.googleapis.com"
    run              = "run.googleapis.com"
    cloudfunctions   = "cloudfunctions.googleapis.com"
    secretmanager    = "secretmanager.googleapis.com"
  }

  agents = merge(
    { for k, a in google_project_service_identity.agent : k => a.member },
    {
      storage = data.google_storage_project_service_account.storage.member
      logging = "serviceAccount:${data.google_logging_project_cmek_settings.this.service_account_id}"
    },
  )
}

resource "google_project_service" "api" {
  for_each = local.services

  service = each.key
  # Turning an API off would break whatever else in the project uses it.
  disable_on_destroy = false
}

# google_project_service_identity exists only in google-beta (7.x); it
# asks Service Usage to create the agent now rather than on first use.
resource "google_project_service_identity" "agent" {
  provider = google-beta
  for_each = local.agent_services

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.api]
}

# The project's number, which Cloud Run's deterministic service URLs
# carry (Studio's address, local.studio_url).
data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.api]
}

# Cloud Storage creates its agent when asked for it; this read does that.
data "google_storage_project_service_account" "storage" {
  project = var.project_id

  depends_on = [google_project_service.api]
}

# Likewise Cloud Logging's CMEK agent, which encrypts the log bucket.
data "google_logging_project_cmek_settings" "this" {
  project = var.project_id

  depends_on = [google_project_service.api]
}

# A guard against anything (ours or added by hand) landing outside the EU.
# A project outside an organization cannot hold an organization policy,
# and setting one needs roles/orgpolicy.policyAdmin, which exists only at
# organization level (a project owner gets 403): so it is set only when
# organization_id is given, by someone holding that role.
resource "google_org_policy_policy" "resource_locations" {
  count = local.set_location_policy ? 1 : 0

  name   = "projects/${var.project_id}/policies/gcp.resourceLocations"
  parent = "projects/${var.project_id}"

  spec {
    rules {
      values {
        allowed_values = ["in:eu-locations"]
      }
    }
  }

  depends_on = [google_project_service.api]
}
