# Studio's OAuth client secret at its OpenID Connect issuer. Neither a
# Terraform variable nor a plain environment variable: either would put it
# in the state, in plan output and in the function's configuration, which
# anyone who may read the function sees. Terraform makes only the secret;
# the operator adds its value once by hand, so it never passes through
# Terraform at all:
#
#   printf %s "$CLIENT_SECRET" | gcloud secrets versions add studio-client-secret --data-file=-
#
# Its one replica sits in the functions' region, under our own key, like
# every other store: the data stays in the EU.
resource "google_secret_manager_secret" "studio_client_secret" {
  secret_id = "studio-client-secret"

  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.regional["secrets"].id
        }
      }
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.secretmanager_agent, google_project_service.api]
}

# Only Studio reads it (Cloud Run resolves it as Studio's account when an
# instance starts), and only this secret: no other function, nor Studio
# any other secret.
resource "google_secret_manager_secret_iam_member" "studio_reads_client_secret" {
  secret_id = google_secret_manager_secret.studio_client_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn["studio"].member
}
