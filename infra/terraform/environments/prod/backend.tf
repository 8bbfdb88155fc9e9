# State in a GCS bucket of the environment's project; the bucket is given at init:
#   terraform init -backend-config="bucket=PROJECT-tfstate"
terraform {
  backend "gcs" {
    prefix = "workflow-engine/prod"
  }
}
