"""Google Cloud provider: GPU inventory (Compute Engine, Cloud TPU) and remote-access sessions
(Cloud Audit Logs, VPC flow logs). Only ``client.py`` imports google-cloud libraries."""
