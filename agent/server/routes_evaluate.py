"""``POST /v1/evaluate`` (a gateway asks before admitting a session) and
``POST /v1/ingest/{webhook}`` (push sessions, e.g. the Kubernetes audit webhook).

Both run the audit's own ``Evaluator`` (same enrichment, inventory resolution, policies and
API-managed exceptions), built once at startup. Evaluate stays on the event loop (pure CPU,
cached lookups) unless ``record: true`` asks for a store write.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    HTTPException,
    Path,
    Query,
    Request,
    status,
)
from starlette.concurrency import run_in_threadpool

from agent.errors import PluginError, RecordError
from agent.models import Accelerator, Finding, FindingStatus, Session
from agent.review.models import Role
from agent.server.auth import Caller, get_state, require
from agent.server.routes_api import BAD_REQUEST, ERRORS
from agent.server.schemas import (
    ErrorBody,
    EvaluateRequest,
    EvaluateResponse,
    IngestResult,
    IpOut,
    MatchedPolicy,
)
from agent.server.state import ServiceState

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter()
EVALUATE_RUN = "api-evaluate"


def _session(state: ServiceState, body: EvaluateRequest, decision_id: str) -> Session:
    accelerators: tuple[Accelerator, ...] = ()
    if body.instance_type:
        accelerators = state.accelerators_for(body.provider, body.instance_type)
    return Session(
        key=decision_id,
        provider=body.provider,
        source="api-evaluate",
        account=body.account,
        region=body.region,
        instance_id=body.instance_id,
        instance_type=body.instance_type,
        accelerators=accelerators,
        principal=body.principal,
        source_ip=body.source_ip,
        method=body.method,
        outcome=body.outcome,
        started_at=body.at or state.clock(),
        attributes=dict(body.attributes),
    )


def _matched(finding: Finding) -> MatchedPolicy:
    return MatchedPolicy(
        policy_id=finding.policy_id,
        severity=finding.severity,
        title=finding.title,
        reasons=list(finding.reasons),
        jurisdictions=list(finding.jurisdictions),
        citations=list(finding.citations),
        indeterminate=finding.indeterminate,
        excepted=finding.status is FindingStatus.EXCEPTED,
        exception_id=finding.extra.get("exception_id") or finding.extra.get("excepted_by"),
        finding_id=finding.id,
    )


def _record(
    state: ServiceState,
    *,
    session: Session,
    findings: list[Finding],
    body: EvaluateRequest,
    response: EvaluateResponse,
) -> None:
    state.store.commit_batch(
        findings=findings, sessions=[session], checkpoint=None, run_id=EVALUATE_RUN
    )
    state.review.queries.record_decision(
        decision_id=response.decision_id,
        at=response.evaluated_at,
        decision=response.decision,
        session_id=session.session_id,
        request=body.model_dump(mode="json"),
        response=response.model_dump(mode="json"),
    )


@router.post(
    "/v1/evaluate",
    response_model=EvaluateResponse,
    tags=["evaluate"],
    responses={**ERRORS, **BAD_REQUEST},
)
async def evaluate(
    body: EvaluateRequest,
    request: Request,
    caller: Annotated[Caller, Depends(require(Role.VIEWER))],
) -> EvaluateResponse:
    """Decide on one session before it is admitted (``record: true`` needs reviewer)."""
    state = get_state(request)
    if body.record and not caller.role.allows(Role.REVIEWER):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="record: true needs the reviewer role",
        )
    decision_id = uuid.uuid4().hex
    session = _session(state, body, decision_id)
    item = state.evaluator.inputs([session])[0]
    findings = state.evaluator.findings(item, run_id=EVALUATE_RUN if body.record else None)
    threshold = state.settings.deny_severity
    deny = any(f.status is not FindingStatus.EXCEPTED and f.severity >= threshold for f in findings)
    decision = "deny" if deny else "allow"
    ip = item.intel
    response = EvaluateResponse(
        decision_id=decision_id,
        decision=decision,
        allow=not deny,
        deny_severity=threshold,
        evaluated_at=state.clock(),
        bundle_revision=state.engine.revision,
        ip=IpOut(
            address=ip.ip,
            kind=ip.kind.value,
            country=ip.country,
            subdivision=ip.subdivision,
            asn=ip.asn,
            asn_org=ip.asn_org,
            tags=list(ip.tags),
            unknown_reason=ip.unknown_reason,
        ),
        instance_in_inventory=item.instance is not None,
        accelerators=[
            {"model": a.model, "count": a.count}
            for a in (item.instance.accelerators if item.instance else session.accelerators)
        ],
        matched=[_matched(f) for f in findings],
        recorded=body.record,
    )
    metrics = request.app.state.metrics
    metrics.sessions_evaluated.labels("evaluate").inc()
    metrics.decisions.labels(decision).inc()
    if body.record:
        await run_in_threadpool(
            _record, state, session=session, findings=findings, body=body, response=response
        )
        for f in findings:
            metrics.findings_produced.labels(f.severity.value).inc()
    log.info(
        "session_evaluated",
        decision_id=decision_id,
        decision=decision,
        matched=len(findings),
        recorded=body.record,
        token_id=caller.token_id,
    )
    return response


def _ingest(
    state: ServiceState, sessions: list[Session], *, webhook: str
) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    for item in state.evaluator.inputs(sessions):
        findings.extend(state.evaluator.findings(item, run_id=f"ingest-{webhook}"))
    new = state.store.commit_batch(
        findings=findings, sessions=sessions, checkpoint=None, run_id=f"ingest-{webhook}"
    )
    return findings, new


@router.post(
    "/v1/ingest/{webhook}",
    response_model=IngestResult,
    tags=["ingest"],
    responses={
        **ERRORS,
        400: {"model": ErrorBody, "description": "the body is not what the webhook expects"},
        404: {"model": ErrorBody, "description": "no such webhook"},
        413: {"model": ErrorBody, "description": "body over max_ingest_bytes"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "the webhook's native body (Kubernetes: an audit.k8s.io EventList)",
        }
    },
)
async def ingest(
    request: Request,
    webhook: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")],
    cluster: Annotated[str, Query(pattern=r"^[A-Za-z0-9._-]{1,100}$")],
    caller: Annotated[Caller, Depends(require(Role.REVIEWER))],
    background: BackgroundTasks,
) -> IngestResult:
    """Evaluate and store the sessions in a webhook body (``kubernetes-audit``: EventList)."""
    state = get_state(request)
    try:
        parser = state.webhook_parser(webhook)
    except PluginError as exc:
        raise HTTPException(status_code=404, detail=f"no webhook named {webhook!r}") from exc
    body = await request.body()
    metrics = request.app.state.metrics
    try:
        parsed: Any = parser(body, cluster=cluster)
    except RecordError as exc:
        metrics.ingest_rejected.labels(webhook).inc()
        log.info("ingest_rejected", webhook=webhook, error=exc.message, token_id=caller.token_id)
        raise HTTPException(status_code=400, detail=exc.message) from exc
    sessions, item_errors = parsed
    if item_errors:
        metrics.ingest_items_quarantined.labels(webhook).inc(len(item_errors))
    findings, new = await run_in_threadpool(_ingest, state, list(sessions), webhook=webhook)
    if state.dispatcher is not None and findings:
        # After the response: a slow or failing receiver never delays the webhook sender.
        background.add_task(state.dispatcher.dispatch, findings, run_id=f"ingest-{webhook}")
    metrics.sessions_evaluated.labels(f"ingest-{webhook}").inc(len(sessions))
    for f in findings:
        metrics.findings_produced.labels(f.severity.value).inc()
    log.info(
        "webhook_ingested",
        webhook=webhook,
        cluster=cluster,
        sessions=len(sessions),
        findings=len(findings),
        item_errors=len(item_errors),
    )
    return IngestResult(
        sessions=len(sessions), findings=len(findings), new_findings=new, item_errors=item_errors
    )
