"""AWS SNS notifier plug-in (``sns://<topic ARN>``), registered as ``chipwarden.notifiers: sns``."""
