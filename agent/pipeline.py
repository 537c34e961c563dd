"""run_audit(): collect -> enrich -> evaluate -> store, with checkpoints and partial failure.

Inventory is collected first (every source that can list instances), then sessions stream in
batches; each batch's findings, sessions and checkpoint are committed in one transaction, so
a checkpoint never runs ahead of the findings it covers.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from agent.assembly import Plugins
from agent.checkpoints import CheckpointReader
from agent.contracts import (
    AcceleratorClassifier,
    AuditWindow,
    Clock,
    CollectContext,
    Enricher,
    PolicyEngine,
    SessionBatch,
)
from agent.errors import ChipwardenError
from agent.inventory_index import InventoryIndex
from agent.models import (
    AuditRun,
    EvaluationInput,
    ExportClassification,
    Finding,
    FindingStatus,
    GpuInstance,
    InstanceView,
    IpIntel,
    RunCounts,
    RunStatus,
    ScopeError,
    Session,
    finding_id,
)
from agent.sharding import Shard, apply_shard
from agent.store import SqlStore

__all__ = ["AuditResult", "ContextProvider", "Evaluator", "collect_inventory", "run_audit"]

log = structlog.get_logger(__name__)

Progress = Callable[[str, int], None]
FindingHook = Callable[[Finding], Finding]
"""Applied to every new Finding before it is stored (e.g. API-managed exceptions)."""
RunHook = Callable[[AuditRun, list[Finding]], None]
"""Called once after the run is saved with its findings (e.g. notifiers)."""


class ContextProvider(Protocol):
    """Adds facts (ownership, principal history) to each input's ``context`` for a batch."""

    def contexts(self, items: Sequence[EvaluationInput]) -> list[dict[str, str]]: ...


@dataclass
class AuditResult:
    """The finished run and the findings it produced or refreshed."""

    run: AuditRun
    findings: list[Finding] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return self.run.status is RunStatus.PARTIAL


class Evaluator:
    """Enrich, resolve and evaluate sessions into findings (shared by audit and the API)."""

    def __init__(
        self,
        *,
        engine: PolicyEngine,
        enricher: Enricher,
        classifier: AcceleratorClassifier,
        inventory: InventoryIndex,
        clock: Clock,
        finding_hook: FindingHook | None = None,
        context_providers: Sequence[ContextProvider] = (),
    ) -> None:
        self.finding_hook = finding_hook
        self.context_providers = tuple(context_providers)
        self._timed = "at" in inspect.signature(enricher.lookup).parameters
        self.engine = engine
        self.enricher = enricher
        self.classifier = classifier
        self.inventory = inventory
        self.clock = clock
        self._classes: dict[str, ExportClassification] = {}

    def classify(self, models: Iterable[str]) -> dict[str, ExportClassification]:
        out = {}
        for model in models:
            if model not in self._classes:
                self._classes[model] = self.classifier.classify(model)
            out[model] = self._classes[model]
        return out

    def inputs(self, sessions: Sequence[Session]) -> list[EvaluationInput]:
        """Build one EvaluationInput per session (batch IP lookup at each session's time)."""
        ips = [s.source_ip for s in sessions]
        if self._timed:
            times = [s.started_at for s in sessions]
            intel = self.enricher.lookup(ips, at=times)  # type: ignore[call-arg]
        else:
            intel = self.enricher.lookup(ips)
        items = []
        for session, ip in zip(sessions, intel, strict=True):
            instance = self.inventory.resolve(session)
            accs = instance.accelerators if instance else session.accelerators
            context: dict[str, str] = {}
            has_gpus = self.inventory.account_has_gpus(session.provider, session.account)
            if has_gpus is not None:
                context["account_has_gpus"] = str(has_gpus).lower()
            items.append(
                EvaluationInput(
                    session=session,
                    instance=instance,
                    intel=ip,
                    classes=self.classify(a.model for a in accs),
                    context=context,
                )
            )
        for provider in self.context_providers:
            extra = provider.contexts(items)
            items = [
                item.model_copy(update={"context": {**item.context, **facts}}) if facts else item
                for item, facts in zip(items, extra, strict=True)
            ]
        return items

    def findings(self, item: EvaluationInput, *, run_id: str | None) -> list[Finding]:
        """Evaluate one input and turn each decision into a Finding."""
        now = self.clock()
        out = []
        for decision in self.engine.evaluate(item):
            finding = Finding(
                id=finding_id(decision.policy_id, item.session),
                policy_id=decision.policy_id,
                severity=decision.severity,
                title=decision.title,
                reasons=decision.reasons,
                status=FindingStatus.EXCEPTED if decision.excepted_by else FindingStatus.OPEN,
                session=item.session,
                ip=item.intel,
                instance=_view(item.session, item.instance, item.classes),
                jurisdictions=decision.jurisdictions,
                indeterminate=decision.indeterminate,
                bundle_revision=decision.bundle_revision,
                pack_version=decision.pack_version,
                citations=decision.citations,
                first_seen=now,
                last_seen=now,
                run_id=run_id,
                extra={"excepted_by": decision.excepted_by} if decision.excepted_by else {},
            )
            out.append(self.finding_hook(finding) if self.finding_hook else finding)
        return out


def _view(
    session: Session, instance: GpuInstance | None, classes: dict[str, ExportClassification]
) -> InstanceView:
    return InstanceView.build(session=session, instance=instance, classes=classes)


def scope_error_from(source: str, scope: str, exc: BaseException) -> ScopeError:
    if isinstance(exc, ChipwardenError):
        return ScopeError(
            source=source,
            scope=scope,
            code=exc.code,
            message=exc.message,
            remediation=exc.hint,
            permission=getattr(exc, "permission", None),
        )
    return ScopeError(
        source=source,
        scope=scope,
        code="internal_error",
        message=f"{type(exc).__name__}: {exc}",
        remediation="this is a bug in chipwarden or a plug-in; please report it with the log",
    )


def collect_inventory(plugins: Plugins, ctx: CollectContext) -> InventoryIndex:
    """Every instance any inventory-capable source lists; failures become ScopeErrors."""
    index = InventoryIndex()
    for source in plugins.inventory_sources:
        name = getattr(source, "name", type(source).__name__)
        try:
            for inst in source.inventory(ctx):
                index.add(inst)
        except Exception as exc:
            log.warning("inventory_failed", source=name, error=str(exc))
            ctx.scope_error(scope_error_from(name, "inventory", exc))
    log.info("inventory_collected", instances=len(index))
    return index


def _batches(source: object, ctx: CollectContext) -> Generator[SessionBatch, None, None]:
    name = getattr(source, "name", type(source).__name__)
    try:
        yield from source.sessions(ctx)  # type: ignore[attr-defined]
    except Exception as exc:
        log.warning("source_failed", source=name, error=str(exc))
        ctx.scope_error(scope_error_from(name, "sessions", exc))


def _interrupted(committed: int) -> ScopeError:
    log.warning("audit_interrupted", sessions_committed=committed)
    return ScopeError(
        source="chipwarden",
        scope="run",
        code="interrupted",
        message=f"the audit was stopped (SIGTERM) after committing {committed} sessions; "
        "the sources after that point were not read",
        remediation="run the audit again: committed findings and checkpoints are kept, the "
        "rest is read then",
    )


@dataclass
class _Pending:
    """Consecutive batches of one source committed in ONE transaction (their checkpoints
    included), so a tree of small files costs one commit per ``MAX_BATCHES`` files."""

    MAX_BATCHES = 64
    MAX_SESSIONS = 2_000
    units: list[str] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    checkpoints: dict[str, str] = field(default_factory=dict)
    sessions_total: int = 0
    findings_total: int = 0
    new_total: int = 0

    def add(self, batch: SessionBatch) -> None:
        self.units.append(batch.unit)
        self.sessions.extend(batch.sessions)
        if batch.checkpoint_scope and batch.checkpoint is not None:
            self.checkpoints[batch.checkpoint_scope] = batch.checkpoint

    @property
    def full(self) -> bool:
        return len(self.units) >= self.MAX_BATCHES or len(self.sessions) >= self.MAX_SESSIONS

    def commit(self, evaluator: Evaluator, store: SqlStore, run_id: str) -> None:
        """Evaluate and commit what is pending; adds to the run's totals."""
        if not self.units:
            return
        findings: list[Finding] = []
        for item in evaluator.inputs(self.sessions):
            findings.extend(evaluator.findings(item, run_id=run_id))
        new = 0
        if self.sessions or self.checkpoints:
            checkpoints = list(self.checkpoints.items())
            new = store.commit_batch(
                findings=findings,
                sessions=self.sessions,
                checkpoint=checkpoints[0] if checkpoints else None,
                run_id=run_id,
                more_checkpoints=checkpoints[1:],
            )
        self.sessions_total += len(self.sessions)
        self.findings_total += len(findings)
        self.new_total += new
        log.debug(
            "batch_committed",
            units=len(self.units),
            first_unit=self.units[0],
            sessions=len(self.sessions),
            findings=len(findings),
        )
        self.units, self.sessions, self.checkpoints = [], [], {}


def run_audit(
    *,
    plugins: Plugins,
    store: SqlStore,
    engine: PolicyEngine,
    enricher: Enricher,
    classifier: AcceleratorClassifier,
    window: AuditWindow,
    clock: Clock,
    progress: Progress | None = None,
    run_id: str | None = None,
    finding_hook: FindingHook | None = None,
    after_run: Sequence[RunHook] = (),
    should_stop: Callable[[], bool] | None = None,
    context_providers: Sequence[ContextProvider] = (),
    shard: Shard | None = None,
) -> AuditResult:
    """Run one audit end to end and record it in the store.

    ``shard`` (``--shard I/N``) restricts the session sources to this shard's work units
    (``agent.sharding``); inventory is always collected whole.

    ``should_stop`` (e.g. set by SIGTERM) is checked after inventory and after each committed
    batch; when true the run stops there and is saved partial with an ``interrupted`` error.
    """
    run_id = run_id or uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started = clock()
    ctx = CollectContext(
        window=window,
        clock=clock,
        checkpoints=CheckpointReader(store),
        on_progress=progress or (lambda _u, _n: None),
    )
    source_names = tuple(getattr(s, "name", type(s).__name__) for s in plugins.sources)
    run = AuditRun(
        id=run_id,
        started_at=started,
        window_start=window.since,
        window_end=window.until,
        sources=source_names,
        bundle_revision=engine.revision,
        geo_sources=enricher.describe(),
    )
    store.start_run(run)
    log.info("audit_started", sources=list(source_names), revision=engine.revision)
    inventory = collect_inventory(plugins, ctx)
    ctx.inventory = tuple(inventory)
    evaluator = Evaluator(
        engine=engine,
        enricher=enricher,
        classifier=classifier,
        inventory=inventory,
        clock=clock,
        finding_hook=finding_hook,
        context_providers=context_providers,
    )
    pending = _Pending()
    stop = should_stop or (lambda: False)
    interrupted = False
    for source in apply_shard(plugins.session_sources, shard or Shard()):
        if interrupted or stop():
            interrupted = True
            break
        batches = _batches(source, ctx)
        for batch in batches:
            pending.add(batch)
            if not pending.full:
                continue
            pending.commit(evaluator, store, run_id)
            if stop():
                interrupted = True
                batches.close()
                break
        pending.commit(evaluator, store, run_id)
    sessions_total = evaluated = pending.sessions_total
    produced, new = pending.findings_total, pending.new_total
    if interrupted:
        ctx.scope_error(_interrupted(sessions_total))
    partial = bool(ctx.scope_errors) or ctx.quarantined_total > 0
    run = run.model_copy(
        update={
            "finished_at": clock(),
            "status": RunStatus.PARTIAL if partial else RunStatus.COMPLETE,
            "counts": RunCounts(
                read=ctx.read,
                sessions=sessions_total,
                ignored=ctx.ignored,
                quarantined=ctx.quarantined_total,
                evaluated=evaluated,
                findings=produced,
                new_findings=new,
            ),
            "scope_errors": tuple(ctx.scope_errors),
            "quarantined": tuple(ctx.quarantined),
        }
    )
    store.save_run(run)
    log.info(
        "audit_finished",
        status=run.status.value,
        sessions=sessions_total,
        findings=produced,
        new_findings=new,
        scope_errors=len(ctx.scope_errors),
        quarantined=ctx.quarantined_total,
    )
    produced_here = store.count_findings(run_id=run_id)
    result = AuditResult(
        run=run, findings=store.list_findings(run_id=run_id, limit=max(produced_here, 1))
    )
    for hook in after_run:
        try:
            hook(run, result.findings)
        except Exception as exc:
            log.warning(
                "after_run_hook_failed", hook=getattr(hook, "__name__", str(hook)), error=str(exc)
            )
    structlog.contextvars.unbind_contextvars("run_id")
    return result


def intel_summary(intel: IpIntel) -> str:
    """Short text for tables: ``CN AS4134 [tor]`` or the unknown reason."""
    if intel.country:
        parts = [intel.subdivision or intel.country]
        if intel.asn:
            parts.append(f"AS{intel.asn}")
        if intel.tags:
            parts.append("[" + ",".join(intel.tags) + "]")
        return " ".join(parts)
    return intel.kind.value
