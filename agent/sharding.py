"""Deterministic partitioning of an audit's work units across N processes (``--shard I/N``).

A work unit is named by its source: ``<source>|<account>|<region>|<day>`` for CloudTrail and
flow-log files, one name per file otherwise. A unit belongs to shard ``I`` of ``N`` when a
stable hash of its name (BLAKE2b, not Python's salted ``hash``) is ``I`` modulo ``N``, so every
process, on every machine and at every restart, agrees without talking to the others.

Protocol (opt-in, no import needed by plug-ins): a session source that can enumerate its units
cheaply defines ``select_units(owns: Callable[[str], bool]) -> None`` and then reads only the
units for which ``owns(name)`` is true. A source without it is one unit (``source|<name>``):
exactly one shard reads it whole. Inventory is collected by every shard (sessions are
resolved against all of it). For Kubernetes Indexed Jobs, ``--shards N`` takes ``I`` from
``JOB_COMPLETION_INDEX``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agent.errors import UsageError

__all__ = ["INDEX_ENV", "Shard", "apply_shard", "resolve_shard"]

log = structlog.get_logger(__name__)

INDEX_ENV = "JOB_COMPLETION_INDEX"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_HINT = "use --shard I/N with 0 <= I < N (e.g. --shard 0/4), or --shards N with $" + INDEX_ENV


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UsageError(f"invalid shard {self.index}/{self.count}", hint=_HINT)

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``; ``UsageError`` with a hint otherwise."""
        match = _SPEC.match(text)
        if match is None:
            raise UsageError(f"--shard {text!r} is not I/N", hint=_HINT)
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def active(self) -> bool:
        """False for the trivial 0/1 shard (no partitioning)."""
        return self.count > 1

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, unit: str) -> bool:
        """Whether the work unit named ``unit`` belongs to this shard."""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(unit.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index


def resolve_shard(*, shard: str | None, shards: int | None, environ: Mapping[str, str]) -> Shard:
    """The shard from ``--shard I/N``, or from ``--shards N`` plus ``$JOB_COMPLETION_INDEX``."""
    if shard is not None and shards is not None:
        raise UsageError("use either --shard I/N or --shards N, not both", hint=_HINT)
    if shard is not None:
        return Shard.parse(shard)
    if shards is None:
        return Shard()
    raw = environ.get(INDEX_ENV)
    if raw is None or not raw.strip().isdigit():
        raise UsageError(
            f"--shards {shards} needs ${INDEX_ENV} (set by a Kubernetes Indexed Job), got {raw!r}",
            hint=_HINT,
        )
    return Shard(int(raw), shards)


def apply_shard(sources: Sequence[Any], shard: Shard) -> list[Any]:
    """The session sources this shard reads, each told which of its units are ours."""
    if not shard.active:
        return list(sources)
    kept: list[Any] = []
    for source in sources:
        name = getattr(source, "name", type(source).__name__)
        select: Callable[[Callable[[str], bool]], None] | None = getattr(
            source, "select_units", None
        )
        if select is not None:
            select(shard.owns)
            kept.append(source)
        elif shard.owns(f"source|{name}"):
            kept.append(source)
        else:
            log.info("source_in_other_shard", source=name, shard=shard.label)
    return kept
