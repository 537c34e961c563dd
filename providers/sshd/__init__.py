"""OpenSSH server logs (auth.log / secure / syslog) as a session source.

``parse`` turns one syslog line into an :class:`~providers.sshd.parse.SshdEvent` (pure),
``assemble`` folds events into sessions (pure), ``source`` reads the file and reports counts.
"""
