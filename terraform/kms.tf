resource "google_kms_key_ring" "main" {
  name     = "sealedsense"
  location = var.kms_location

  depends_on = [google_project_service.api]
}

# Symmetric keys rotate every 90 days: old versions keep decrypting what
# they wrapped, so rotation never strands data (`provision rewrap` then
# moves everything onto the new version; see README). prevent_destroy
# because a destroyed key makes every device secret and store it wraps
# unreadable. The keys that guard device secrets, sessions and backups
# live in Cloud HSM (key_protection_level); the CMEK and API keys guard
# stores that are already access-controlled and stay in software.
locals {
  symmetric_keys = {
    # Wraps sensor PSKs and the cloud's static and channel keys.
    device_keys = { name = "device-keys", ring = google_kms_key_ring.main.id, hsm = true }
    # Wraps the key-encryption keys that seal Noise sessions in Firestore.
    session_kek = { name = "session-kek", ring = google_kms_key_ring.main.id, hsm = true }
    # Wraps each key backup's data key: apart from device_keys, so that
    # the backup function, which may only encrypt with it, cannot read a
    # device secret, and access to a bucket alone reveals nothing.
    backup_kek = { name = "backup-kek", ring = google_kms_key_ring.main.id, hsm = true }
    # Wraps service-account key secrets and the API's page-token key; apart
    # from device_keys because the API must wrap, and must not be able to
    # mint device secrets.
    api_secrets = { name = "api-secrets", ring = google_kms_key_ring.main.id, hsm = false }
    # Wraps Data Connector signature secrets: the API only encrypts with
    # it and deliver only decrypts, so neither alone both sets and reads.
    webhook_secrets = { name = "webhook-secrets", ring = google_kms_key_ring.main.id, hsm = false }
    pubsub          = { name = "pubsub", ring = google_kms_key_ring.main.id, hsm = false }
    firestore       = { name = "firestore", ring = google_kms_key_ring.firestore.id, hsm = false }
  }
}

resource "google_kms_crypto_key" "symmetric" {
  for_each = local.symmetric_keys

  name            = each.value.name
  key_ring        = each.value.ring
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = each.value.hsm ? var.key_protection_level : "SOFTWARE"
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Access tokens: the private half never leaves KMS, the public half is
# served as JWKS.
resource "google_kms_crypto_key" "signing" {
  name     = "signing"
  key_ring = google_kms_key_ring.main.id
  purpose  = "ASYMMETRIC_SIGN"

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = var.key_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Certifies the deliver instances' short-lived webhook keys (one
# AsymmetricSign per instance per day). Apart from signing, so deliver
# can never mint an access token.
resource "google_kms_crypto_key" "webhook_signing" {
  name     = "webhook-signing"
  key_ring = google_kms_key_ring.main.id
  purpose  = "ASYMMETRIC_SIGN"

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = var.key_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Signs the software releases of sensors and connectors (`provision
# release`, one AsymmetricSign per release); every device is made trusting
# the public halves of its enabled versions. Always in Cloud HSM, whatever
# key_protection_level says: devices in the field keep trusting a version
# until they are re-provisioned, so a leaked one would let anyone install
# code on them. An asymmetric key cannot rotate on a schedule: rotate by
# adding a version, provisioning devices with both, and disabling the old
# one once no device needs it (the newest enabled version signs).
resource "google_kms_crypto_key" "release_signing" {
  name     = "release-signing"
  key_ring = google_kms_key_ring.main.id
  purpose  = "ASYMMETRIC_SIGN"

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Firestore's key must sit where the database does (europe for eur3), so
# it has a ring of its own rather than assuming the main ring fits.
resource "google_kms_key_ring" "firestore" {
  name     = "sealedsense-firestore"
  location = local.firestore_key_location

  depends_on = [google_project_service.api]
}

# A bucket accepts only a key from its own location: one ring per bucket
# location (the functions' region and each backup region).
resource "google_kms_key_ring" "storage" {
  for_each = local.storage_key_locations

  name     = "sealedsense-${each.key}"
  location = each.key

  depends_on = [google_project_service.api]
}

resource "google_kms_crypto_key" "storage" {
  for_each = local.storage_key_locations

  name            = "storage"
  key_ring        = google_kms_key_ring.storage[each.key].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

# The functions' key (their instances, images and build sources), the
# logs' key, the exports bucket's key and the secrets' key (Secret
# Manager takes only a key in its replica's location) sit in the functions' region,
# beside the source bucket's key: Cloud Run functions, Artifact Registry,
# Cloud Logging and Cloud Storage each accept only a key in their own
# location. The exports get a key apart from the storage one: disabling
# it makes every customer export unreadable at once, and nothing else.
resource "google_kms_crypto_key" "regional" {
  for_each = toset(["functions", "logs", "exports", "secrets"])

  name            = each.key
  key_ring        = google_kms_key_ring.storage[var.region].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

# Each service agent may use only the key of the store it encrypts, so a
# misconfigured store cannot borrow another store's key.
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
  for_each = local.storage_key_locations

  crypto_key_id = google_kms_crypto_key.storage[each.key].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.storage
}

# A function with CMEK needs all four agents on its key: Cloud Functions
# (the function), Cloud Run (its instances), Artifact Registry (its image)
# and Cloud Storage (its uploaded and staged sources).
resource "google_kms_crypto_key_iam_member" "functions_agents" {
  for_each = toset(["cloudfunctions", "run", "artifactregistry", "storage"])

  crypto_key_id = google_kms_crypto_key.regional["functions"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents[each.key]
}

resource "google_kms_crypto_key_iam_member" "exports_storage_agent" {
  crypto_key_id = google_kms_crypto_key.regional["exports"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.storage
}

resource "google_kms_crypto_key_iam_member" "secretmanager_agent" {
  crypto_key_id = google_kms_crypto_key.regional["secrets"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.secretmanager
}

resource "google_kms_crypto_key_iam_member" "logging_agent" {
  crypto_key_id = google_kms_crypto_key.regional["logs"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.agents.logging
}

# Ingest only ever unwraps: PSKs and cloud keys with the device key, the
# session KEK with session_kek (sessions are then sealed locally under the
# unwrapped KEK). Wrapping is the provisioning command's job, run with an
# operator's credentials, so a compromised function cannot mint secrets.
# Sweep touches no key.
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

# The API wraps and unwraps service-account key secrets with its own key,
# signs access tokens (one AsymmetricSign per token) and reads the signing
# key's public halves for its JWKS. Studio runs the API's code in-process
# (api.FromEnv, the same environment) for the people signed in to it, so
# every API grant below is Studio's too, each held as its own account.
resource "google_kms_crypto_key_iam_member" "api_secrets" {
  for_each = toset(["api", "studio"])

  crypto_key_id = google_kms_crypto_key.symmetric["api_secrets"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = google_service_account.fn[each.key].member
}

# Each grant was the api function's alone; moved keeps it, not replaced.
moved {
  from = google_kms_crypto_key_iam_member.api_secrets
  to   = google_kms_crypto_key_iam_member.api_secrets["api"]
}

resource "google_kms_crypto_key_iam_member" "api_signs" {
  for_each = toset(["api", "studio"])

  crypto_key_id = google_kms_crypto_key.signing.id
  role          = "roles/cloudkms.signerVerifier"
  member        = google_service_account.fn[each.key].member
}

moved {
  from = google_kms_crypto_key_iam_member.api_signs
  to   = google_kms_crypto_key_iam_member.api_signs["api"]
}

# The API wraps signature secrets but cannot read them back, and reads
# the webhook-signing key's public halves to check the delivery keys it
# publishes in its JWKS.
resource "google_kms_crypto_key_iam_member" "api_wraps_webhook_secrets" {
  for_each = toset(["api", "studio"])

  crypto_key_id = google_kms_crypto_key.symmetric["webhook_secrets"].id
  role          = "roles/cloudkms.cryptoKeyEncrypter"
  member        = google_service_account.fn[each.key].member
}

moved {
  from = google_kms_crypto_key_iam_member.api_wraps_webhook_secrets
  to   = google_kms_crypto_key_iam_member.api_wraps_webhook_secrets["api"]
}

# The stream service is the API deployed alone: it verifies access tokens
# with the signing key's public halves, and authenticates Basic-auth
# callers by unwrapping their key's secret with api-secrets (decrypt only:
# unlike the API it never creates a key, nor signs a token).
resource "google_kms_crypto_key_iam_member" "stream_reads_signing" {
  crypto_key_id = google_kms_crypto_key.signing.id
  role          = "roles/cloudkms.publicKeyViewer"
  member        = google_service_account.fn["stream"].member
}

resource "google_kms_crypto_key_iam_member" "stream_api_secrets" {
  crypto_key_id = google_kms_crypto_key.symmetric["api_secrets"].id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.fn["stream"].member
}

resource "google_kms_crypto_key_iam_member" "api_reads_webhook_certifier" {
  for_each = toset(["api", "studio"])

  crypto_key_id = google_kms_crypto_key.webhook_signing.id
  role          = "roles/cloudkms.publicKeyViewer"
  member        = google_service_account.fn[each.key].member
}

moved {
  from = google_kms_crypto_key_iam_member.api_reads_webhook_certifier
  to   = google_kms_crypto_key_iam_member.api_reads_webhook_certifier["api"]
}

# Deliver unwraps signature secrets (once per connector per instance) and
# certifies its instance keys. The sweep sends retries too, so it holds
# the same two grants.
resource "google_kms_crypto_key_iam_member" "deliver_webhook_secrets" {
  for_each = toset(["deliver", "deliver-sweep"])

  crypto_key_id = google_kms_crypto_key.symmetric["webhook_secrets"].id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.fn[each.key].member
}

resource "google_kms_crypto_key_iam_member" "deliver_certifies" {
  for_each = toset(["deliver", "deliver-sweep"])

  crypto_key_id = google_kms_crypto_key.webhook_signing.id
  role          = "roles/cloudkms.signer"
  member        = google_service_account.fn[each.key].member
}

# The operators sign releases and make devices trusting the release key's
# enabled versions: they sign, list the versions and read their public
# halves. No function holds any grant on this key, so no compromised
# function can sign code that devices would install.
resource "google_kms_crypto_key_iam_member" "operators_sign_releases" {
  for_each = var.operators

  crypto_key_id = google_kms_crypto_key.release_signing.id
  role          = "roles/cloudkms.signer"
  member        = each.value
}

resource "google_kms_crypto_key_iam_member" "operators_read_release_keys" {
  for_each = var.operators

  crypto_key_id = google_kms_crypto_key.release_signing.id
  role          = "roles/cloudkms.publicKeyViewer"
  member        = each.value
}

# publicKeyViewer cannot list versions, which finding the enabled ones
# needs; viewer adds reading the key's metadata, nothing more.
resource "google_kms_crypto_key_iam_member" "operators_list_release_keys" {
  for_each = var.operators

  crypto_key_id = google_kms_crypto_key.release_signing.id
  role          = "roles/cloudkms.viewer"
  member        = each.value
}

# Every use of a key (each encrypt, decrypt and sign), and every read of
# its settings or IAM, is written to the Data Access audit log: who used
# which key when is what an investigation of a leak needs first.
resource "google_project_iam_audit_config" "kms" {
  project = var.project_id
  service = "cloudkms.googleapis.com"

  audit_log_config {
    log_type = "ADMIN_READ"
  }

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }

  depends_on = [google_project_service.api]
}
