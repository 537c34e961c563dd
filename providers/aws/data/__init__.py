"""Data shipped with the AWS provider (the generated instance-type table)."""
