"""Notifiers selected by URL (``https://`` webhook, ``slack://`` incoming webhook,
``sns://`` topic ARN) and the dispatcher that sends only new or changed findings."""
