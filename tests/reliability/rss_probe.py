"""Read one file with one source in a fresh process and report its memory growth.

``python -m tests.reliability.rss_probe KIND PATH`` prints one JSON line: peak RSS (KiB, see
``peak_kib``) before and after reading, ``resource.getrusage`` for reference, and the counts.
"""

from __future__ import annotations

import json
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.logging import configure_logging


def _source(kind: str, path: Path, env: SourceEnv) -> Any:
    if kind == "sshd-log":
        from providers.sshd.source import SshdLogSource

        return SshdLogSource.from_config(
            {
                "type": kind,
                "path": str(path),
                "year": 2026,
                "instance": {"provider": "aws", "account": "1", "instance_id": "i-1"},
            },
            env=env,
        )
    if kind == "cloudtrail-files":
        from providers.aws.files import CloudTrailFilesSource

        return CloudTrailFilesSource.from_config({"type": kind, "paths": [str(path)]}, env=env)
    from providers.kubernetes.audit import KubernetesAuditFilesSource

    return KubernetesAuditFilesSource.from_config(
        {"type": kind, "cluster": "c", "paths": [str(path)]}, env=env
    )


def peak_kib() -> int:
    """Peak RSS of this process in KiB.

    ``getrusage`` ``ru_maxrss`` survives ``execve``: a child forked from a 900 MB pytest starts
    with a 900 MB "peak" and hides its own growth. Linux's VmHWM belongs to the new address
    space, so it is used when /proc has it; other systems fall back to getrusage.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(kind: str, path: Path) -> None:
    configure_logging(fmt="json", level="error")
    ctx = CollectContext(window=AuditWindow(None, None), clock=lambda: datetime.now(UTC))
    source = _source(kind, path, SourceEnv(name=kind, base_dir=path.parent, clock=ctx.clock))
    before = peak_kib()
    error = None
    try:
        sessions = sum(len(b.sessions) for b in source.sessions(ctx))
    except Exception as exc:  # reported, not raised: the parent judges
        sessions, error = 0, f"{type(exc).__name__}: {exc}"[:200]
    after = peak_kib()
    rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "before_kib": before,
                "after_kib": after,
                "ru_maxrss_kib": rusage,
                "read": ctx.read,
                "sessions": sessions,
                "quarantined": ctx.quarantined_total,
                "scope_errors": [e.code for e in ctx.scope_errors],
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
