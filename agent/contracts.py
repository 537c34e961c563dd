"""Ports: the Protocols that providers, policies and stores implement, plus the context
object a source reports through. Adapters import from here, never from each other."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import BaseModel

from agent.models import (
    Accelerator,
    AuditRun,
    Decision,
    EvaluationInput,
    ExportClassification,
    Finding,
    FindingStatus,
    GpuInstance,
    IpIntel,
    QuarantinedRecord,
    ScopeError,
    Session,
    Severity,
)

__all__ = [
    "AcceleratorClassifier",
    "AuditWindow",
    "Clock",
    "CollectContext",
    "Enricher",
    "FindingStore",
    "FollowableSource",
    "InstanceTypeCatalog",
    "InventorySource",
    "LineParser",
    "ListedFilesSource",
    "PolicyEngine",
    "SessionBatch",
    "SessionSource",
    "SourceEnv",
]

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AuditWindow:
    """Time window of an audit. ``explicit`` is False when the user gave no ``--since``:
    file sources then read whole files and live sources resume from their checkpoint."""

    since: datetime | None
    until: datetime | None
    explicit: bool = False
    default_lookback_hours: int = 24

    def contains(self, when: datetime) -> bool:
        if self.since is not None and when < self.since:
            return False
        return not (self.until is not None and when > self.until)


@dataclass(frozen=True)
class SessionBatch:
    """Sessions from one unit of work (a file, an account x region page...).

    When ``checkpoint`` is set, the pipeline stores ``(checkpoint_scope, checkpoint)`` in the
    same transaction as the batch's findings, so a checkpoint never runs ahead of its findings.
    """

    unit: str
    sessions: tuple[Session, ...]
    checkpoint_scope: str | None = None
    checkpoint: str | None = None


@dataclass
class CollectContext:
    """What a source sees while collecting: the window, prior checkpoints, and the run's
    counters. Sources report problems here instead of raising, so one bad file or account
    never hides the rest."""

    window: AuditWindow
    clock: Clock
    checkpoints: Callable[[str], str | None] = lambda _scope: None
    on_progress: Callable[[str, int], None] = lambda _unit, _n: None
    read: int = 0
    ignored: int = 0
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    quarantined_total: int = 0
    scope_errors: list[ScopeError] = field(default_factory=list)
    max_quarantine_kept: int = 1000
    inventory: tuple[GpuInstance, ...] = ()
    """The run's collected inventory (set by the pipeline before sessions are read), so a
    source without its own (flow-log files) can map ENIs / private IPs to instances."""

    def count_read(self, n: int = 1) -> None:
        self.read += n

    def count_ignored(self, n: int = 1) -> None:
        self.ignored += n

    def quarantine(
        self, *, source: str, locator: str, position: str | None, reason: str
    ) -> None:
        """Set a malformed record aside (kept up to ``max_quarantine_kept``, always counted)."""
        self.quarantined_total += 1
        if len(self.quarantined) < self.max_quarantine_kept:
            self.quarantined.append(
                QuarantinedRecord(source=source, locator=locator, position=position, reason=reason)
            )

    def scope_error(self, error: ScopeError) -> None:
        self.scope_errors.append(error)

    def checkpoint(self, scope: str) -> str | None:
        return self.checkpoints(scope)


@dataclass(frozen=True)
class SourceEnv:
    """What a source is built with besides its own config (injected, never global)."""

    name: str
    base_dir: Path
    clock: Clock
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SessionSource(Protocol):
    """A log source or provider that yields remote-access sessions."""

    Config: ClassVar[type[BaseModel]]
    name: str

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self: ...

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]: ...


class LineParser(Protocol):
    """Incremental parser of one followed file; its state survives reads, rotation and restarts
    (``chipwarden watch`` persists ``state()`` with the file offset, in one transaction)."""

    def feed(
        self, lines: Sequence[str], *, first_line: int, ctx: CollectContext
    ) -> tuple[Session, ...]:
        """Sessions started or changed by ``lines`` (numbered from ``first_line``); counts and
        quarantines go to ``ctx``. A changed session keeps its key (idempotent upsert)."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-able state to resume from (open sessions, the syslog year, ...)."""
        ...


@runtime_checkable
class FollowableSource(Protocol):
    """A source of appended text files that ``chipwarden watch`` follows like ``tail -F``."""

    name: str

    def follow_paths(self) -> list[Path]:
        """The files to follow (re-listed every cycle, so a glob may gain files)."""
        ...

    def line_parser(self, path: Path, *, state: Mapping[str, Any] | None) -> LineParser:
        """A parser for ``path``, resumed from a saved ``state`` when there is one."""
        ...


@runtime_checkable
class ListedFilesSource(Protocol):
    """A source of files written whole (never appended): ``chipwarden watch`` lists them and
    reads each new or changed file once."""

    name: str

    def list_files(self, ctx: CollectContext) -> list[Path]: ...

    def read_file(self, path: Path, ctx: CollectContext) -> SessionBatch | None: ...


@runtime_checkable
class InventorySource(Protocol):
    """Anything that lists GPU instances (a live provider, a static CSV)."""

    name: str

    def inventory(self, ctx: CollectContext) -> Iterable[GpuInstance]: ...


class InstanceTypeCatalog(Protocol):
    """A provider's offline map from instance/machine type to accelerators (canonical ids).

    Registered under ``chipwarden.instance_catalogs`` by provider name (``aws``), so a static
    inventory can resolve ``p5.48xlarge`` without importing the provider package.
    """

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        """Accelerators of ``instance_type``; ``()`` = known, no GPU; ``None`` = unknown type."""
        ...


class Enricher(Protocol):
    """Batch IP intelligence. ``describe()`` names the databases and versions in use."""

    def lookup(self, ips: Sequence[str | None]) -> list[IpIntel]: ...

    def describe(self) -> tuple[str, ...]: ...


class AcceleratorClassifier(Protocol):
    """Maps a canonical chip model id to its export classification."""

    def classify(self, model: str) -> ExportClassification: ...

    def models(self) -> Sequence[str]: ...


class PolicyEngine(Protocol):
    """Compiled policy packs; ``revision`` is a content hash of everything loaded."""

    revision: str

    def evaluate(self, item: EvaluationInput) -> list[Decision]: ...

    def describe(self) -> list[dict[str, Any]]: ...


class FindingStore(Protocol):
    """Persistence for findings, sessions, runs and checkpoints."""

    def commit_batch(
        self,
        *,
        findings: Sequence[Finding],
        sessions: Sequence[Session],
        checkpoint: tuple[str, str] | None,
        run_id: str,
    ) -> int: ...

    def get_checkpoint(self, scope: str) -> str | None: ...

    def save_run(self, run: AuditRun) -> None: ...

    def list_findings(
        self,
        *,
        status: FindingStatus | str | None = None,
        min_severity: Severity | str | None = None,
        policy_id: str | None = None,
        run_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        country: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Finding]: ...
