"""Read gzip-bomb files with one source in a fresh process, limits lowered, and report its
memory growth (``rss_probe``'s measure) and what the source made of the files.

``python -m tests.reliability.bomb_probe KIND LIMIT PATH...`` prints one JSON line. ``LIMIT``
replaces the decompressed-size limits (CloudTrail files, Kubernetes JSON documents) and the
flow-log chunk (= longest line) size, so a small bomb proves the mechanism.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.logging import configure_logging
from agent.models import Accelerator, GpuInstance
from tests.reliability import rss_probe

GPU = GpuInstance(
    provider="aws",
    account="111122223333",
    region="us-east-1",
    instance_id="i-0a1b2c3d4e5f60001",
    instance_type="p5.48xlarge",
    accelerators=(Accelerator(model="nvidia-h100", count=8),),
    private_ips=("10.0.1.10",),
    network_interfaces=("eni-0a1b2c3d4e5f6a001",),
)
"""The instance flow-log bombs' valid lines reach (vpc-flow-files needs an inventory)."""


def lower_limits(limit: int) -> None:
    """Set every decompressed-size limit a bomb can meet to ``limit`` bytes."""
    from providers.aws import fastscan, flowfast
    from providers.kubernetes import auditfiles

    fastscan.MAX_DECOMPRESSED_BYTES = limit
    auditfiles.MAX_DOCUMENT_BYTES = limit
    flowfast.CHUNK_BYTES = limit  # type: ignore[misc]


def _source(kind: str, paths: list[Path], env: SourceEnv) -> Any:
    if kind == "vpc-flow-files":
        from providers.aws.flowlogs import VpcFlowFilesSource

        return VpcFlowFilesSource.from_config(
            {"type": kind, "paths": [str(p) for p in paths]}, env=env
        )
    if kind == "cloudtrail-files":
        from providers.aws.files import CloudTrailFilesSource

        return CloudTrailFilesSource.from_config(
            {"type": kind, "paths": [str(p) for p in paths]}, env=env
        )
    return rss_probe._source(kind, paths[0], env)


def main(kind: str, limit: int, paths: list[Path]) -> None:
    configure_logging(fmt="json", level="error")
    lower_limits(limit)
    ctx = CollectContext(window=AuditWindow(None, None), clock=lambda: datetime.now(UTC))
    ctx.inventory = (GPU,)
    env = SourceEnv(name=kind, base_dir=paths[0].parent, clock=ctx.clock)
    source = _source(kind, paths, env)
    before = rss_probe.peak_kib()
    error = None
    try:
        sessions = sum(len(b.sessions) for b in source.sessions(ctx))
    except Exception as exc:  # reported, not raised: the parent judges
        sessions, error = 0, f"{type(exc).__name__}: {exc}"[:200]
    after = rss_probe.peak_kib()
    print(
        json.dumps(
            {
                "before_kib": before,
                "after_kib": after,
                "read": ctx.read,
                "sessions": sessions,
                "quarantined": [[q.locator, q.position] for q in ctx.quarantined],
                "scope_errors": [[e.scope, e.code, e.message] for e in ctx.scope_errors],
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
