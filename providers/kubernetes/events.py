"""Kubernetes audit events -> pod-access facts -> Session (pure).

Access is ``pods/exec``, ``pods/attach``, ``pods/portforward`` (verb ``create``, or ``get`` from
WebSocket clients) and ``kubectl debug`` ephemeral containers (``pods/ephemeralcontainers``
``patch``/``update``). Everything else returns None (ignored, not malformed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Frozen, Outcome, Session
from providers.kubernetes.wrappers import RawEvent, parse_time

__all__ = ["AuditAccess", "NodeRef", "access_from", "merge", "to_session"]

_METHODS: dict[tuple[str, str], AccessMethod] = {
    ("exec", "create"): AccessMethod.KUBERNETES_EXEC,
    ("exec", "get"): AccessMethod.KUBERNETES_EXEC,
    ("attach", "create"): AccessMethod.KUBERNETES_ATTACH,
    ("attach", "get"): AccessMethod.KUBERNETES_ATTACH,
    ("portforward", "create"): AccessMethod.KUBERNETES_PORT_FORWARD,
    ("portforward", "get"): AccessMethod.KUBERNETES_PORT_FORWARD,
    ("ephemeralcontainers", "patch"): AccessMethod.KUBERNETES_DEBUG,
    ("ephemeralcontainers", "update"): AccessMethod.KUBERNETES_DEBUG,
}
_STAGE_RANK = {"ResponseStarted": 1, None: 2, "ResponseComplete": 3, "Panic": 3}
_GKE_METHOD = re.compile(r"io\.k8s\.core\.v1\.pods\.([a-z]+)\.([a-z]+)")
_GKE_RESOURCE = re.compile(r"(?:core/)?v1/namespaces/([^/]+)/pods/([^/]+)(?:/([a-z]+))?")
_GKE_DENIED = {7, 16}  # google.rpc PERMISSION_DENIED, UNAUTHENTICATED


class NodeRef(Frozen):
    """The node a pod resolved to, and how (``pod-index`` live inventory or ``static-map``)."""

    node: str
    region: str | None = None
    basis: str


class AuditAccess(Frozen):
    """A pod-access audit event, normalised across dialects, before node resolution."""

    key: str
    method: AccessMethod
    verb: str
    subresource: str
    namespace: str
    pod: str
    container: str | None = None
    command: str | None = None
    ports: str | None = None
    username: str | None = None
    groups: tuple[str, ...] = ()
    impersonated_user: str | None = None
    impersonated_groups: tuple[str, ...] = ()
    source_ips: tuple[str, ...] = ()
    user_agent: str | None = None
    code: int | None = None
    outcome: Outcome
    stage: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    shape: str
    log_cluster: str | None = None
    debug_image: str | None = None

    @property
    def stage_rank(self) -> int:
        return _STAGE_RANK.get(self.stage, 2)


_FILLABLE = ("container", "command", "ports", "user_agent", "debug_image", "log_cluster")


def merge(current: AuditAccess | None, candidate: AuditAccess) -> tuple[AuditAccess, bool]:
    """Combine two stage records of one request: ``(merged, candidate_won)``.

    The later stage wins (ResponseComplete over ResponseStarted); the merged record keeps the
    earliest start, the latest known end, and fills facts only the other record carried (GKE
    logs the exec command on the first entry of an operation only).
    """
    if current is None:
        return candidate, True
    won = candidate.stage_rank > current.stage_rank
    winner, loser = (candidate, current) if won else (current, candidate)
    update: dict[str, Any] = {k: getattr(loser, k) for k in _FILLABLE if getattr(winner, k) is None}
    update["started_at"] = min(winner.started_at, loser.started_at)
    if winner.ended_at is None and loser.ended_at is not None:
        update["ended_at"] = loser.ended_at
    return winner.model_copy(update=update), won


def _str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} is a {type(value).__name__}, not a string")
    return value or None


def _strs(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{field} is not a list of strings")
    return tuple(value)


def _map(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{field} is a {type(value).__name__}, not an object")
    return value


def _synthetic_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return "synthetic:" + hashlib.sha256(blob).hexdigest()[:32]


def _outcome(code: int | None, *, stage: str | None, decision: str | None) -> Outcome:
    if stage == "Panic":
        return Outcome.FAILED
    if code is None:
        return Outcome.DENIED if decision == "forbid" else Outcome.UNKNOWN
    if code in (401, 403):
        return Outcome.DENIED
    return Outcome.FAILED if code >= 400 else Outcome.SUCCESS


def _exec_options(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(command, container) from a PodExecOptions/PodAttachOptions request body, if logged."""
    command = obj.get("command")
    words = [c for c in command if isinstance(c, str)] if isinstance(command, list) else []
    text = " ".join(words) or None
    container = obj.get("container")
    return text, container if isinstance(container, str) else None


def _debug_container(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    spec = obj.get("spec")
    eph = spec.get("ephemeralContainers") if isinstance(spec, Mapping) else None
    last = eph[-1] if isinstance(eph, list) and eph and isinstance(eph[-1], Mapping) else {}
    name, image = last.get("name"), last.get("image")
    return (name if isinstance(name, str) else None, image if isinstance(image, str) else None)


def _from_k8s(raw: RawEvent) -> AuditAccess | None:
    ev = raw.data
    obj = _map(ev.get("objectRef"), "objectRef")
    verb, sub = ev.get("verb"), obj.get("subresource")
    if obj.get("resource") != "pods" or (obj.get("apiGroup") or "") != "":
        return None
    method = _METHODS.get((str(sub), str(verb)))
    stage = _str(ev.get("stage"), "stage")
    if method is None or stage == "RequestReceived":
        return None
    namespace, pod = (
        _str(obj.get("namespace"), "objectRef.namespace"),
        _str(obj.get("name"), "objectRef.name"),
    )
    if not namespace or not pod:
        raise RecordError(f"pods/{sub} event without objectRef.namespace/name")
    when = ev.get("requestReceivedTimestamp") or ev.get("timestamp") or ev.get("stageTimestamp")
    if when is None and raw.fallback_time is None:
        raise RecordError("missing requestReceivedTimestamp (and no wrapper time)")
    started = parse_time(when, field="requestReceivedTimestamp") if when else raw.fallback_time
    assert started is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
    ended = None
    if stage == "ResponseComplete" and ev.get("stageTimestamp"):
        ended = parse_time(ev["stageTimestamp"], field="stageTimestamp")
    user = _map(ev.get("user"), "user")
    imp = _map(ev.get("impersonatedUser"), "impersonatedUser")
    status = _map(ev.get("responseStatus"), "responseStatus")
    code = status.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RecordError(f"responseStatus.code is not an integer: {code!r}")
    annotations = _map(ev.get("annotations"), "annotations")
    uri = _str(ev.get("requestURI"), "requestURI") or ""
    query = parse_qs(urlsplit(uri).query, keep_blank_values=True)
    command = " ".join(query["command"]) if query.get("command") else None
    container = query["container"][0] if query.get("container") else None
    body = _map(ev.get("requestObject"), "requestObject")
    debug_image = None
    if method is AccessMethod.KUBERNETES_DEBUG:
        container, debug_image = _debug_container(body)
    elif body and (command is None or container is None):
        body_cmd, body_container = _exec_options(body)
        command, container = command or body_cmd, container or body_container
    audit_id = _str(ev.get("auditID"), "auditID")
    ips = _strs(ev.get("sourceIPs"), "sourceIPs")
    return AuditAccess(
        key=audit_id or _synthetic_key(when, uri, verb, user.get("username"), ips),
        method=method,
        verb=str(verb),
        subresource=str(sub),
        namespace=namespace,
        pod=pod,
        container=container,
        command=command,
        ports=",".join(query["ports"]) if query.get("ports") else None,
        username=_str(user.get("username"), "user.username"),
        groups=_strs(user.get("groups"), "user.groups"),
        impersonated_user=_str(imp.get("username"), "impersonatedUser.username"),
        impersonated_groups=_strs(imp.get("groups"), "impersonatedUser.groups"),
        source_ips=ips,
        user_agent=_str(ev.get("userAgent"), "userAgent"),
        code=code,
        outcome=_outcome(
            code, stage=stage, decision=annotations.get("authorization.k8s.io/decision")
        ),
        stage=stage,
        started_at=started,
        ended_at=ended,
        shape=raw.shape,
        log_cluster=raw.log_cluster,
        debug_image=debug_image,
    )


def _from_gke(raw: RawEvent) -> AuditAccess | None:
    entry = raw.data
    payload = _map(entry.get("protoPayload"), "protoPayload")
    match = _GKE_METHOD.fullmatch(str(payload.get("methodName") or ""))
    method = _METHODS.get((match.group(1), match.group(2))) if match else None
    if match is None or method is None:
        return None
    sub, verb = match.group(1), match.group(2)
    res = _GKE_RESOURCE.fullmatch(str(payload.get("resourceName") or ""))
    if res is None:
        raise RecordError(
            f"{payload.get('methodName')} without a namespaces/<ns>/pods/<pod> resourceName"
        )
    meta = _map(payload.get("requestMetadata"), "protoPayload.requestMetadata")
    auth = _map(payload.get("authenticationInfo"), "protoPayload.authenticationInfo")
    status = _map(payload.get("status"), "protoPayload.status")
    operation = _map(entry.get("operation"), "operation")
    when = entry.get("timestamp") or entry.get("receiveTimestamp")
    if when is None:
        raise RecordError("missing timestamp")
    code = status.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RecordError(f"protoPayload.status.code is not an integer: {code!r}")
    grants = payload.get("authorizationInfo")
    grants = grants if isinstance(grants, list) else []
    refused = any(isinstance(g, Mapping) and g.get("granted") is False for g in grants)
    granted = bool(grants) and all(isinstance(g, Mapping) and g.get("granted") for g in grants)
    if code in _GKE_DENIED or refused:
        outcome = Outcome.DENIED
    elif code:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.SUCCESS if code == 0 or granted else Outcome.UNKNOWN
    stage = (
        "ResponseComplete"
        if operation.get("last")
        else ("ResponseStarted" if operation.get("first") else None)
    )
    ip = _str(meta.get("callerIp") or meta.get("callerIP"), "requestMetadata.callerIp")
    principal = _str(auth.get("principalEmail"), "authenticationInfo.principalEmail")
    command, container = _exec_options(_map(payload.get("request"), "protoPayload.request"))
    key = _str(operation.get("id"), "operation.id") or _str(entry.get("insertId"), "insertId")
    at = parse_time(when, field="timestamp")
    closes_stream = bool(operation.get("last")) and not operation.get("first")
    return AuditAccess(
        key=key or _synthetic_key(when, payload.get("resourceName"), principal, ip),
        method=method,
        verb=verb,
        subresource=sub,
        namespace=res.group(1),
        pod=res.group(2),
        container=container,
        command=command,
        username=principal,
        source_ips=(ip,) if ip else (),
        user_agent=_str(
            meta.get("callerSuppliedUserAgent"), "requestMetadata.callerSuppliedUserAgent"
        ),
        code=code,
        outcome=outcome,
        stage=stage,
        started_at=at,
        ended_at=at if closes_stream else None,
        shape=raw.shape,
        log_cluster=raw.log_cluster,
    )


def access_from(raw: RawEvent) -> AuditAccess | None:
    """The pod-access facts in ``raw``; None if it is not pod access; RecordError if malformed."""
    return _from_gke(raw) if raw.dialect == "gke" else _from_k8s(raw)


def _principal_type(name: str | None) -> str | None:
    if name is None:
        return None
    if name.startswith("system:serviceaccount:") or name.endswith(".iam.gserviceaccount.com"):
        return "serviceaccount"
    if name.startswith("system:node:"):
        return "node"
    return "system" if name.startswith("system:") else "user"


def to_session(
    access: AuditAccess,
    *,
    cluster: str,
    source: str,
    node: NodeRef | None,
    evidence: EvidenceRef,
) -> Session:
    """Session for ``access``; ``instance_id`` is the node when the pod resolved, else None."""
    principal = access.impersonated_user or access.username
    attrs: dict[str, str] = {
        "namespace": access.namespace,
        "pod": access.pod,
        "verb": access.verb,
        "subresource": access.subresource,
        "log_format": access.shape,
        "node_resolved_by": node.basis if node else "unresolved",
    }
    optional = {
        "container": access.container,
        "command": access.command,
        "ports": access.ports,
        "stage": access.stage,
        "response_code": None if access.code is None else str(access.code),
        "source_ip_chain": ",".join(access.source_ips) or None,
        "groups": ",".join(access.groups) or None,
        "log_cluster": access.log_cluster,
        "debug_image": access.debug_image,
    }
    if access.impersonated_user:
        optional["real_user"] = access.username
        optional["impersonated_groups"] = ",".join(access.impersonated_groups) or None
    attrs.update({k: v for k, v in optional.items() if v})
    notes: tuple[str, ...] = ()
    if node is None:
        notes = (f"pod {access.namespace}/{access.pod} did not resolve to a node",)
    return Session(
        key=access.key,
        provider="kubernetes",
        source=source,
        account=cluster,
        region=node.region if node else None,
        instance_id=node.node if node else None,
        principal=principal,
        principal_type=_principal_type(principal),
        source_ip=access.source_ips[0] if access.source_ips else None,
        user_agent=access.user_agent,
        method=access.method,
        outcome=access.outcome,
        started_at=access.started_at,
        ended_at=access.ended_at,
        evidence=(evidence,),
        attributes=attrs,
        notes=notes,
    )
