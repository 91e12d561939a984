resource "google_kms_key_ring" "main" {
  name     = "sealedsense"
  location = var.kms_location

  depends_on = [google_project_service.api]
}

# Symmetric keys rotate every 90 days; old versions keep decrypting what
# they wrapped, and re-wrapping with the new primary is an operator command.
locals {
  symmetric_keys = {
    device_keys = "device-keys" # sensor PSKs, the cloud's static and channel keys
    session_kek = "session-kek" # the key-encryption keys of Noise session keys
    firestore   = "firestore"   # CMEK of the database
    pubsub      = "pubsub"      # CMEK of every topic
  }
}

resource "google_kms_crypto_key" "symmetric" {
  for_each = local.symmetric_keys

  name            = each.value
  key_ring        = google_kms_key_ring.main.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"
  labels          = { role = each.key }

  lifecycle {
    prevent_destroy = true
  }
}

# Access tokens and asymmetric webhook signatures; the private half never
# leaves KMS, the public half is served as JWKS.
resource "google_kms_crypto_key" "signing" {
  name     = "signing"
  key_ring = google_kms_key_ring.main.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = { role = "token-signing" }

  version_template {
    algorithm = "EC_SIGN_P256_SHA256"
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Buckets, Artifact Registry and functions need a key in their own region.
resource "google_kms_key_ring" "regional" {
  for_each = local.regional_key_locations

  name     = "sealedsense-${each.key}"
  location = each.key

  depends_on = [google_project_service.api]
}

resource "google_kms_crypto_key" "regional" {
  for_each = local.regional_key_locations

  name            = "storage"
  key_ring        = google_kms_key_ring.regional[each.key].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"
  labels          = { role = "storage-cmek" }

  lifecycle {
    prevent_destroy = true
  }
}

# Each service agent may use only the key of the store it encrypts.
resource "google_kms_crypto_key_iam_member" "firestore_agent" {
  crypto_key_id = google_kms_crypto_key.symmetric["firestore"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.firestore
}

resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  crypto_key_id = google_kms_crypto_key.symmetric["pubsub"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.pubsub
}

resource "google_kms_crypto_key_iam_member" "storage_agent" {
  for_each = local.regional_key_locations

  crypto_key_id = google_kms_crypto_key.regional[each.key].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.storage
}

resource "google_kms_crypto_key_iam_member" "artifactregistry_agent" {
  crypto_key_id = google_kms_crypto_key.regional[var.region].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.artifactregistry
}

resource "google_kms_crypto_key_iam_member" "functions_agent" {
  crypto_key_id = google_kms_crypto_key.regional[var.region].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.functions
}

# Ingest unwraps PSKs, the cloud keys and session KEKs. Only the
# provisioning command (run by an operator) wraps with the device key, so
# ingest may not. Sweep touches no key.
resource "google_kms_crypto_key_iam_member" "ingest_device_keys" {
  crypto_key_id = google_kms_crypto_key.symmetric["device_keys"].id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.fn["ingest"].member
}

resource "google_kms_crypto_key_iam_member" "ingest_session_kek" {
  crypto_key_id = google_kms_crypto_key.symmetric["session_kek"].id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.fn["ingest"].member
}
