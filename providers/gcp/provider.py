"""``GcpSource``: GPU inventory and remote-access sessions for Google Cloud projects.

Per project and access stream (``streams.STREAMS``) it reads Cloud Logging from the stream's
checkpoint (``gcp:<project>:<stream>`` = ``"<timestamp>|<insertId>"``), normalises entries
(``audit``/``flows``), resolves targets through the inventory built in the same run, and yields
``SessionBatch``es whose checkpoint the pipeline commits with their findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import structlog
from pydantic import ValidationError

from agent.config import format_validation_error
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError, RecordError, SourceError
from agent.models import GpuInstance, Session
from providers.gcp.audit import merge_sessions, session_from_audit_entry
from providers.gcp.catalog import GcpMachineCatalog, default_catalog
from providers.gcp.client import GcpClient
from providers.gcp.config import GcpSourceConfig
from providers.gcp.dataaccess import DataAccessState, assess, iap_data_access_state
from providers.gcp.entries import Cursor, entry_cursor
from providers.gcp.flows import session_from_flow_entry
from providers.gcp.inventory import InventoryCollector, Reporter
from providers.gcp.normalize import InventoryIndex
from providers.gcp.streams import STREAMS, StreamSpec, build_filter, checkpoint_scope

__all__ = ["GcpSource"]

log = structlog.get_logger(__name__)
_MAX_ANCESTRY = 12


@dataclass
class _Run:
    """State of one collection run (one ``CollectContext``)."""

    ctx: CollectContext
    reporter: Reporter
    projects: list[str] | None = None
    inventory: list[GpuInstance] | None = None
    incomplete: set[str] = field(default_factory=set)
    """Projects whose inventory listing failed or was partial: their checkpoints are held."""
    index: InventoryIndex = field(default_factory=InventoryIndex)
    policies: dict[str, dict[str, Any] | None] = field(default_factory=dict)


@dataclass
class _StreamCounts:
    """What one project's streams saw (for the IAP Data Access assessment)."""

    entries: dict[str, int] = field(default_factory=dict)
    iap_flows: int = 0
    failed: set[str] = field(default_factory=set)


class GcpSource:
    """Google Cloud source: ``inventory(ctx)`` and ``sessions(ctx)`` over projects."""

    Config: ClassVar[type[GcpSourceConfig]] = GcpSourceConfig

    def __init__(
        self,
        config: GcpSourceConfig,
        *,
        env: SourceEnv,
        client: GcpClient | None = None,
        catalog: GcpMachineCatalog | None = None,
    ) -> None:
        self.config = config
        self.env = env
        self.name = config.name or env.name
        self.client = client or GcpClient(
            credentials=config.credentials,
            endpoints=config.endpoints,
            retry=config.retry,
            timeout=config.timeout,
            page_size=config.page_size,
        )
        self.catalog = catalog or default_catalog()
        self._run: _Run | None = None

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated ``GcpSourceConfig`` or a raw mapping (validated here)."""
        if not isinstance(config, GcpSourceConfig):
            try:
                config = GcpSourceConfig.model_validate(config, context={"base_dir": env.base_dir})
            except ValidationError as exc:
                raise ConfigError(
                    "\n".join(format_validation_error(exc, name=f"source {env.name}", lines=None)),
                    hint="see docs/gcp.md for the accepted keys",
                ) from exc
        return cls(config, env=env)

    # -- run state -----------------------------------------------------------------------------

    def _state(self, ctx: CollectContext) -> _Run:
        if self._run is None or self._run.ctx is not ctx:
            self._run = _Run(ctx=ctx, reporter=Reporter(ctx=ctx, source=self.name))
        return self._run

    def _collector(self, run: _Run) -> InventoryCollector:
        return InventoryCollector(self.config, self.client, self.catalog, run.reporter)

    def _projects(self, run: _Run) -> list[str]:
        if run.projects is None:
            try:
                run.projects = self._collector(run).projects()
            except SourceError as exc:  # e.g. no credentials at all
                run.reporter.error("gcp", exc, what="resolving projects")
                run.projects = []
        return run.projects

    # -- inventory -----------------------------------------------------------------------------

    def inventory(self, ctx: CollectContext) -> Iterable[GpuInstance]:
        """Every VM (GPU or not) and TPU node of the configured projects (cached per run)."""
        run = self._state(ctx)
        if run.inventory is None:
            projects = self._projects(run)
            if projects:
                collector = self._collector(run)
                run.inventory = collector.collect(projects, ctx.count_read)
                run.incomplete = collector.incomplete
            else:
                run.inventory = []
            run.index = InventoryIndex.build(run.inventory)
        return list(run.inventory)

    # -- sessions ------------------------------------------------------------------------------

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """Batches per project and stream, each carrying its stream's checkpoint. A stream that
        fails part-way yields what it read, checkpointed at its newest entry (the next run
        resumes there); a project whose inventory is incomplete yields no checkpoints."""
        run = self._state(ctx)
        if run.inventory is None:
            self.inventory(ctx)
        for project in self._projects(run):
            counts = _StreamCounts()
            failures: dict[tuple[str, str | None], tuple[list[str], SourceError]] = {}
            for name in self.config.streams:
                spec = STREAMS[name]
                try:
                    yield from self._stream(run, project, spec, counts)
                except SourceError as exc:  # its checkpoint stays at the last page committed
                    counts.failed.add(name)
                    key = (exc.code, getattr(exc, "permission", None))
                    failures.setdefault(key, ([], exc))[0].append(name)
            for names, error in failures.values():  # one ScopeError per cause, its streams
                what = f"reading {', '.join(names)} logs"
                run.reporter.error(f"projects/{project}", error, what=what)
            if (
                "iap" in self.config.streams
                and "iap" not in counts.failed
                and self.config.data_access_check
            ):
                self._check_iap_logging(run, project, counts)

    def _window(
        self, ctx: CollectContext, previous: Cursor | None
    ) -> tuple[datetime | str | None, datetime | None]:
        window = ctx.window
        if window.explicit:
            return window.since, window.until
        now = ctx.clock()
        until = window.until or now - timedelta(seconds=self.config.ingestion_delay_seconds)
        if previous is not None:
            return previous.timestamp, until
        return window.since or now - timedelta(hours=window.default_lookback_hours), until

    def _stream(
        self, run: _Run, project: str, spec: StreamSpec, counts: _StreamCounts
    ) -> Iterator[SessionBatch]:
        ctx = run.ctx
        scope = checkpoint_scope(project, spec.name)
        unit = f"gcp:{project}:{spec.name}"
        previous = Cursor.parse(ctx.checkpoint(scope))
        # Sessions resolved against an incomplete inventory are reported now but read again
        # next run (checkpoint held), so their targets are judged once the inventory is whole.
        commit_scope = None if project in run.incomplete else scope
        if commit_scope is None:
            log.warning("gcp_checkpoint_held", project=project, stream=spec.name)
        since, until = self._window(ctx, previous)
        skip_upto = None if ctx.window.explicit else previous
        filter_ = build_filter(
            spec, project=project, since=since, until=until, admin_ports=self.config.admin_ports
        )
        batch: dict[str, Session] = {}
        newest, read, skipped = previous, 0, 0
        mark = previous  # the checkpoint last handed to the pipeline
        pages = self.client.list_entries(project, filter_=filter_, permission=spec.permission)
        try:
            for page in pages:
                for entry in page:
                    try:
                        cursor = entry_cursor(entry)
                    except RecordError as exc:
                        ctx.count_read()
                        read += 1
                        self._quarantine(ctx, project, spec, entry, exc)
                        continue
                    if skip_upto is not None and cursor <= skip_upto:
                        skipped += 1  # processed by an earlier run
                        continue
                    ctx.count_read()
                    read += 1
                    newest = cursor if newest is None or cursor > newest else newest
                    self._add(run, project, spec, entry, cursor, batch, counts)
                if len(batch) >= self.config.batch_size and newest is not None:
                    yield self._batch(unit, batch, commit_scope, newest)
                    ctx.on_progress(unit, len(batch))
                    batch, mark = {}, newest
        except SourceError:
            # Pages come oldest first and each was read whole: commit what was read, with a
            # checkpoint at its newest entry, so the next run resumes exactly after it.
            if newest is not None and (batch or newest != mark):
                yield self._batch(unit, batch, commit_scope, newest)
                ctx.on_progress(unit, len(batch))
            raise
        counts.entries[spec.name] = counts.entries.get(spec.name, 0) + read
        log.info(
            "gcp_stream_read",
            project=project,
            stream=spec.name,
            read=read,
            skipped=skipped,
            since=str(since),
            until=str(until),
        )
        if newest is not None and (batch or newest != mark):
            yield self._batch(unit, batch, commit_scope, newest)
            ctx.on_progress(unit, len(batch))

    def _add(
        self,
        run: _Run,
        project: str,
        spec: StreamSpec,
        entry: dict[str, Any],
        cursor: Cursor,
        batch: dict[str, Session],
        counts: _StreamCounts,
    ) -> None:
        ctx = run.ctx
        try:
            if spec.kind == "flow":
                result = session_from_flow_entry(
                    entry, project=project, index=run.index, admin_ports=self.config.admin_ports
                )
                target = result.target
                if result.ignored == "iap-range" and target and target.has_accelerators:
                    counts.iap_flows += 1
                session = result.session
            else:
                session = session_from_audit_entry(entry, project=project, index=run.index)
        except RecordError as exc:
            self._quarantine(ctx, project, spec, entry, exc, cursor.insert_id)
            return
        if session is None:
            ctx.count_ignored()
        elif session.key in batch:
            batch[session.key] = merge_sessions(batch[session.key], session)
            ctx.count_ignored()  # folded into an earlier entry of the same operation
        else:
            batch[session.key] = session

    def _quarantine(
        self,
        ctx: CollectContext,
        project: str,
        spec: StreamSpec,
        entry: Any,
        exc: RecordError,
        position: str | None = None,
    ) -> None:
        if position is None and isinstance(entry, dict):
            position = str(entry.get("insertId") or "") or None
        ctx.quarantine(
            source=self.name,
            locator=f"logging:projects/{project}:{spec.name}",
            position=position,
            reason=str(exc),
        )

    @staticmethod
    def _batch(
        unit: str, batch: dict[str, Session], scope: str | None, newest: Cursor
    ) -> SessionBatch:
        """A batch; with ``scope`` None it carries no checkpoint (the stream is held)."""
        return SessionBatch(
            unit=unit,
            sessions=tuple(batch.values()),
            checkpoint_scope=scope,
            checkpoint=newest.serialize() if scope is not None else None,
        )

    # -- IAP Data Access -----------------------------------------------------------------------

    def _policy(self, run: _Run, resource: str) -> dict[str, Any] | None:
        if resource not in run.policies:
            try:
                run.policies[resource] = self.client.get_iam_policy(resource)
            except SourceError as exc:
                log.info("gcp_iam_policy_unreadable", resource=resource, error=exc.message)
                run.policies[resource] = None
        return run.policies[resource]

    def _audit_config_state(self, run: _Run, project: str) -> tuple[DataAccessState, str]:
        resource = f"projects/{project}"
        levels: list[tuple[str, dict[str, Any] | None]] = [(resource, self._policy(run, resource))]
        state, reason = iap_data_access_state(levels)
        if state is DataAccessState.ENABLED:
            return state, reason
        try:
            parent = self.client.get_project(project).get("parent")
        except SourceError:
            levels.append((f"ancestors of {resource}", None))
            return iap_data_access_state(levels)
        for _ in range(_MAX_ANCESTRY):
            if not parent:
                break
            levels.append((parent, self._policy(run, parent)))
            if not parent.startswith("folders/"):
                break
            try:
                parent = self.client.get_folder(parent).get("parent")
            except SourceError:
                levels.append((f"ancestors of {parent}", None))
                break
        return iap_data_access_state(levels)

    def _check_iap_logging(self, run: _Run, project: str, counts: _StreamCounts) -> None:
        vms = [i for i in run.index.gpu_instances(project) if "tpu-node" not in i.tags]
        if not vms and counts.iap_flows == 0:
            log.info("gcp_iap_logging_skipped", project=project, reason="no GPU VMs")
            return
        state, reason = self._audit_config_state(run, project)
        running = [i.instance_id for i in vms if i.state == "running"]
        finding = assess(
            project=project,
            state=state,
            reason=reason,
            iap_entries=counts.entries.get("iap", 0),
            iap_flows=counts.iap_flows,
            gpu_vms=len(vms),
            running_gpu_vms=running,
        )
        log.info(
            "gcp_iap_logging_assessed",
            project=project,
            state=str(state),
            problem=finding.code if finding else None,
        )
        if finding is not None:
            run.reporter.problem(
                f"projects/{project}",
                code=finding.code,
                message=finding.message,
                remediation=finding.remediation,
                permission=finding.permission,
            )
