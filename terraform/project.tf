data "google_project" "this" {
  project_id = var.project_id
}

locals {
  services = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "orgpolicy.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ])

  # Google-managed service agents that encrypt our stores with our keys.
  # google_project_service_identity would create them, but it exists only
  # in google-beta; their addresses are fixed, so they are built here.
  agents = {
    pubsub    = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    storage   = "serviceAccount:service-${data.google_project.this.number}@gs-project-accounts.iam.gserviceaccount.com"
    firestore = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-firestore.iam.gserviceaccount.com"
  }
}

resource "google_project_service" "api" {
  for_each = local.services

  service = each.key
  # Turning an API off would break whatever else in the project uses it.
  disable_on_destroy = false
}

# A guard against anything (ours or added by hand) landing outside the EU.
resource "google_org_policy_policy" "resource_locations" {
  count = var.enforce_resource_locations ? 1 : 0

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
