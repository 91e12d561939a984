output "api_base_url" {
  description = "Where customers will reach the REST API (the api function lands with the customer API issue)."
  value       = local.api_base_url
}

output "jwks_url" {
  description = "The public keys that verify access tokens and webhook signatures."
  value       = local.jwks_url
}

output "studio_url" {
  description = "Where people open Studio, the web console."
  value       = local.studio_url
}

output "studio_redirect_uri" {
  description = "The redirect URI to register for Studio's OAuth client at studio_issuer (the client whose id goes in studio_client_id)."
  value       = local.studio_redirect_uri
}

output "topics" {
  description = "Topic ids by name."
  value       = { for k, t in google_pubsub_topic.topic : k => t.id }
}

output "buckets" {
  description = "The function source bucket, the release images' bucket, the customer exports' bucket and the key-backup buckets by region."
  value = {
    source   = google_storage_bucket.bucket["source"].name
    releases = google_storage_bucket.bucket["releases"].name
    exports  = google_storage_bucket.exports.name
    backups  = { for l in var.backup_locations : l => google_storage_bucket.bucket["keys-${l}"].name }
  }
}

output "function_uris" {
  description = "Each function's HTTPS endpoint."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].uri }
}

output "kms_keys" {
  description = "KMS key ids, for the provisioning command's flags and for audits."
  value = {
    device_keys = google_kms_crypto_key.symmetric["device_keys"].id
    session_kek = google_kms_crypto_key.symmetric["session_kek"].id
    api_secrets = google_kms_crypto_key.symmetric["api_secrets"].id
    signing     = google_kms_crypto_key.signing.id
    release     = google_kms_crypto_key.release_signing.id
    firestore   = google_kms_crypto_key.symmetric["firestore"].id
    pubsub      = google_kms_crypto_key.symmetric["pubsub"].id
    storage     = { for k, key in google_kms_crypto_key.storage : k => key.id }
    functions   = google_kms_crypto_key.regional["functions"].id
    logs        = google_kms_crypto_key.regional["logs"].id
    exports     = google_kms_crypto_key.regional["exports"].id
  }
}

output "connector_service_accounts" {
  description = "The identity each connector runs as."
  value       = { for k, sa in google_service_account.connector : k => sa.email }
}

output "operator_env" {
  description = "The environment the operators' command (go run ./scripts/provision) needs for this project, as shell exports: eval \"$(terraform output -raw operator_env)\"."
  value = join("\n", [for k, v in {
    GOOGLE_CLOUD_PROJECT            = var.project_id
    SEALEDSENSE_DEVICE_KEY          = google_kms_crypto_key.symmetric["device_keys"].id
    SEALEDSENSE_SESSION_KEK_KEY     = google_kms_crypto_key.symmetric["session_kek"].id
    SEALEDSENSE_API_SECRETS_KEY     = google_kms_crypto_key.symmetric["api_secrets"].id
    SEALEDSENSE_WEBHOOK_SECRETS_KEY = google_kms_crypto_key.symmetric["webhook_secrets"].id
    SEALEDSENSE_BACKUP_KEY          = google_kms_crypto_key.symmetric["backup_kek"].id
    SEALEDSENSE_BACKUP_BUCKETS      = join(",", local.backup_buckets)
    SEALEDSENSE_RELEASE_SIGNING_KEY = google_kms_crypto_key.release_signing.id
    SEALEDSENSE_RELEASES_BUCKET     = google_storage_bucket.bucket["releases"].name
  } : "export ${k}=${v}"])
}
