terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
    # Only for google_project_service_identity, which the 7.x google
    # provider does not have: it creates a service agent before the first
    # grant to it, instead of waiting for the agent's first use.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.45"
    }
  }
}
