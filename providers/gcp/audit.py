"""Pure Cloud Audit Log normalisation: one ``LogEntry`` dict -> ``Session`` (or ``None``).

Handled access paths (dispatch table, not a name switch): IAP TCP forwarding ``AuthorizeUser``,
OS Login ``CheckPolicy``/``StartSession``/``ContinueSession``, serial-port ``connect``, metadata
SSH-key grants (``instances.setMetadata`` / ``projects.setCommonInstanceMetadata``) and GKE
``pods/exec|attach|portforward``. Entries of one operation (IAP tunnel start/end, LRO first/
last, OS Login 2FA steps) share a session key; ``merge_sessions`` folds them together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agent.errors import RecordError
from agent.models import Accelerator, AccessMethod, Outcome, Session
from providers.gcp.entries import (
    Cursor,
    as_dict,
    caller_ip,
    entry_cursor,
    entry_key,
    entry_project,
    evidence,
    outcome_from_status,
    principal,
)
from providers.gcp.normalize import InventoryIndex

__all__ = ["AuditEntry", "merge_sessions", "session_from_audit_entry"]

_INSTANCE_PATH = re.compile(
    r"projects/(?P<project>[^/]+)/(?:iap_tunnel/)?zones/(?P<zone>[^/]+)/instances/(?P<instance>[^/]+)"
)
_POD_PATH = re.compile(r"namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)(?:/(?P<sub>[^/]+))?")
_SSH_KEY_NAMES = frozenset({"ssh-keys", "sshKeys"})
_OSLOGIN_STEPS = frozenset({"CheckPolicy", "StartSession", "ContinueSession"})
_OSLOGIN_STATUS = {
    "AUTHENTICATED": Outcome.SUCCESS,
    "CHALLENGE_FAILED": Outcome.DENIED,
    "NO_AVAILABLE_CHALLENGES": Outcome.DENIED,
    "CHALLENGE_REQUIRED": Outcome.UNKNOWN,
    "CHALLENGE_PENDING": Outcome.UNKNOWN,
}
_K8S_METHODS = {
    "exec": AccessMethod.KUBERNETES_EXEC,
    "attach": AccessMethod.KUBERNETES_ATTACH,
    "portforward": AccessMethod.KUBERNETES_PORT_FORWARD,
}
OSLOGIN_NOTE = (
    "OS Login API calls come from the VM's guest environment: callerIp is not the user's "
    "address (kept in attributes.caller_ip); the user's IP is in IAP or sshd logs"
)


@dataclass(frozen=True)
class AuditEntry:
    """One parsed audit entry with what every handler needs."""

    entry: dict[str, Any]
    proto: dict[str, Any]
    cursor: Cursor
    project: str
    service: str
    method: str
    index: InventoryIndex

    @property
    def resource_labels(self) -> dict[str, Any]:
        resource = as_dict(self.entry.get("resource"), "resource")
        return as_dict(resource.get("labels"), "resource.labels")

    @property
    def operation_id(self) -> str | None:
        op = as_dict(self.entry.get("operation"), "operation")
        value = op.get("id")
        return str(value) if value else None

    def key(self, kind: str, natural: str | None = None) -> str:
        """Session key: ``project/kind/<natural id>`` or the entry's own identity."""
        if natural:
            return f"{self.project}/{kind}/{natural}"
        return entry_key(self.entry, self.project, self.cursor)

    def session(self, *, key: str, method: AccessMethod, **fields: Any) -> Session:
        """A Session with the fields every audit path shares."""
        who, who_type = principal(self.proto)
        meta = as_dict(self.proto.get("requestMetadata"), "protoPayload.requestMetadata")
        base: dict[str, Any] = {
            "key": key,
            "provider": "gcp",
            "source": "gcp-audit",
            "account": self.project,
            "principal": who,
            "principal_type": who_type,
            "source_ip": caller_ip(self.proto),
            "user_agent": meta.get("callerSuppliedUserAgent") or None,
            "method": method,
            "outcome": outcome_from_status(self.proto),
            "started_at": self.cursor.when,
            "evidence": (evidence(self.entry, self.cursor, self.method),),
        }
        base.update(fields)
        try:
            return Session(**base)
        except ValidationError as exc:  # a field of the wrong JSON type in the entry
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise RecordError(f"audit entry: {where}: {problem['msg']}") from exc


Handler = Callable[[AuditEntry], Session | None]


def _items(value: Any) -> list[Any]:
    """A JSON list field as a list; anything else (absent, wrong type) as no items."""
    return value if isinstance(value, list) else []


def _target(
    a: AuditEntry, *, name: str | None, zone: str | None, numeric: str | None
) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
    """Session target fields, attributes and notes from a name and/or numeric instance id."""
    name = name if isinstance(name, str) else None  # request fields are free-form JSON
    zone = zone if isinstance(zone, str) else None
    attrs: dict[str, str] = {}
    notes: tuple[str, ...] = ()
    if numeric:
        attrs["gcp_instance_id"] = numeric
    inst = None
    if numeric and numeric.isdigit():
        inst = a.index.by_numeric_id.get((a.project, numeric))
    if inst is None and name and not name.isdigit():
        inst = a.index.by_name.get((a.project, name))
    if inst is not None:
        return {"instance_id": inst.instance_id, "region": inst.region or zone}, attrs, notes
    instance_id = name if name and not name.isdigit() else numeric
    if instance_id and instance_id == numeric:
        notes = ("instance not in this run's inventory; instance_id is the numeric id",)
    return {"instance_id": instance_id, "region": zone}, attrs, notes


def _iap(a: AuditEntry) -> Session | None:
    resource = as_dict(a.entry.get("resource"), "resource")
    authz = [i for i in _items(a.proto.get("authorizationInfo")) if isinstance(i, dict)]
    if resource.get("type") not in (None, "gce_instance") or any(
        str(i.get("permission", "")).startswith("iap.web") for i in authz
    ):
        return None  # IAP for HTTPS (web apps), not a tunnel to a VM
    labels = a.resource_labels
    numeric = str(labels.get("instance_id") or "") or None
    zone = labels.get("zone")
    for item in authz:
        match = _INSTANCE_PATH.search(str(item.get("resource", "")))
        if match:
            numeric = numeric or match["instance"]
            zone = zone or match["zone"]
    target, attrs, notes = _target(a, name=None, zone=zone, numeric=numeric)
    meta = as_dict(a.proto.get("requestMetadata"), "protoPayload.requestMetadata")
    dest = as_dict(meta.get("destinationAttributes"), "requestMetadata.destinationAttributes")
    for src, dst in (("ip", "destination_ip"), ("port", "destination_port")):
        if dest.get(src):
            attrs[dst] = str(dest[src])
    payload_meta = as_dict(a.proto.get("metadata"), "protoPayload.metadata")
    info = as_dict(payload_meta.get("iap_tcp_session_info"), "metadata.iap_tcp_session_info")
    phase = str(info.get("phase") or "")
    if phase:
        attrs["iap_phase"] = phase
    for key in ("bytes_sent", "bytes_received"):
        if info.get(key) is not None:
            attrs[f"iap_{key}"] = str(info[key])
    if payload_meta.get("device_state"):
        attrs["device_state"] = str(payload_meta["device_state"])
    levels = _items(payload_meta.get("unsatisfied_access_levels"))
    if levels:
        attrs["unsatisfied_access_levels"] = ",".join(str(v) for v in levels)
    fields: dict[str, Any] = {**target, "attributes": attrs, "notes": notes}
    if phase == "SESSION_END":
        fields["ended_at"] = a.cursor.when
    return a.session(key=a.key("iap", a.operation_id), method=AccessMethod.IAP_TUNNEL, **fields)


def _oslogin(a: AuditEntry) -> Session | None:
    step = a.method.rsplit(".", 1)[-1]
    request = as_dict(a.proto.get("request"), "protoPayload.request")
    response = as_dict(a.proto.get("response"), "protoPayload.response")
    match = _INSTANCE_PATH.search(str(a.proto.get("resourceName") or ""))
    name = request.get("instance") or (match["instance"] if match else None)
    zone = request.get("zone") or (match["zone"] if match else None)
    top_labels = as_dict(a.entry.get("labels"), "labels")
    numeric = str(top_labels.get("instance_id") or "") or None
    target, attrs, notes = _target(a, name=name, zone=zone, numeric=numeric)
    attrs["oslogin_step"] = step
    ip = caller_ip(a.proto)
    if ip:
        attrs["caller_ip"] = ip
    if request.get("policy"):
        attrs["oslogin_policy"] = str(request["policy"])
    outcome = outcome_from_status(a.proto)
    if outcome is Outcome.SUCCESS and step == "CheckPolicy":
        if "success" not in response:
            outcome, notes = Outcome.FAILED, (*notes, "CheckPolicy recorded no response")
        elif response.get("success") is not True:
            outcome = Outcome.DENIED
    elif outcome is Outcome.SUCCESS:
        status = str(response.get("status") or "")
        if status:
            attrs["oslogin_status"] = status
        outcome = _OSLOGIN_STATUS.get(status, Outcome.UNKNOWN)
    session_id = response.get("sessionId") or request.get("sessionId")
    return a.session(
        key=a.key("oslogin", str(session_id) if session_id else None),
        method=AccessMethod.OS_LOGIN,
        source_ip=None,
        outcome=outcome,
        attributes=attrs,
        notes=(*notes, OSLOGIN_NOTE),
        **target,
    )


def _serial(a: AuditEntry) -> Session | None:
    match = _INSTANCE_PATH.search(str(a.proto.get("resourceName") or ""))
    labels = a.resource_labels
    numeric = str(labels.get("instance_id") or "") or None
    target, attrs, notes = _target(
        a,
        name=match["instance"] if match else None,
        zone=labels.get("zone") or (match["zone"] if match else None),
        numeric=numeric,
    )
    request = as_dict(a.proto.get("request"), "protoPayload.request")
    if request.get("username"):
        attrs["username"] = str(request["username"])
    for option in _items(request.get("serialConsoleOptions")):
        if isinstance(option, dict) and option.get("name") in ("port", "source"):
            attrs[f"serial_{option['name']}"] = str(option.get("value", ""))
    key = a.key("serial", a.operation_id)
    if not a.method.endswith(".connect"):
        if not a.operation_id:
            return None  # an end/other event we cannot attach to a connect
        attrs["serial_event"] = a.method.rsplit(".", 1)[-1]
        return a.session(
            key=key,
            method=AccessMethod.SERIAL_PORT,
            ended_at=a.cursor.when,
            attributes=attrs,
            notes=notes,
            **target,
        )
    return a.session(
        key=key, method=AccessMethod.SERIAL_PORT, attributes=attrs, notes=notes, **target
    )


def _ssh_keys(a: AuditEntry) -> Session | None:
    payload_meta = as_dict(a.proto.get("metadata"), "protoPayload.metadata")
    request = as_dict(a.proto.get("request"), "protoPayload.request")
    keys: set[str] = set(str(k) for k in _items(request.get("Metadata Keys Modified")))
    for delta_name in ("instanceMetadataDelta", "projectMetadataDelta"):
        delta = as_dict(payload_meta.get(delta_name), f"metadata.{delta_name}")
        for field in ("addedMetadataKeys", "modifiedMetadataKeys"):
            keys.update(str(k) for k in _items(delta.get(field)))
    granted = sorted(keys & _SSH_KEY_NAMES)
    if not granted:
        return None  # metadata change that does not add SSH keys
    project_wide = ".projects.setCommonInstanceMetadata" in f".{a.method}"
    attrs = {"metadata_keys": ",".join(sorted(keys)), "grant_scope": "project"}
    target: dict[str, Any] = {}
    notes: tuple[str, ...] = ("access grant: SSH keys added to metadata (not itself a login)",)
    if not project_wide:
        match = _INSTANCE_PATH.search(str(a.proto.get("resourceName") or ""))
        labels = a.resource_labels
        target, extra, more = _target(
            a,
            name=match["instance"] if match else None,
            zone=labels.get("zone") or (match["zone"] if match else None),
            numeric=str(labels.get("instance_id") or "") or None,
        )
        attrs = {**attrs, **extra, "grant_scope": "instance"}
        notes = (*notes, *more)
    return a.session(
        key=a.key("ssh-keys", a.operation_id),
        method=AccessMethod.SSH_KEY_GRANT,
        attributes=attrs,
        notes=notes,
        **target,
    )


def _gke(a: AuditEntry) -> Session | None:
    parts = a.method.split(".")
    if len(parts) < 3:
        return None
    method = _K8S_METHODS.get(parts[-2])
    if method is None:
        return None
    labels = a.resource_labels
    cluster = str(labels.get("cluster_name") or "") or None
    location = str(labels.get("location") or "") or None
    attrs: dict[str, str] = {"subresource": parts[-2], "verb": parts[-1]}
    match = _POD_PATH.search(str(a.proto.get("resourceName") or ""))
    if match:
        attrs.update(namespace=match["ns"], pod=match["pod"])
    if cluster:
        attrs["gke_cluster"] = cluster
    if location:
        attrs["gke_location"] = location
    request = as_dict(a.proto.get("request"), "protoPayload.request")
    if request.get("container"):
        attrs["container"] = str(request["container"])
    if isinstance(request.get("command"), list):
        attrs["command"] = " ".join(str(c) for c in request["command"])
    fields: dict[str, Any] = {"region": location}
    notes: tuple[str, ...] = ()
    nodes = a.index.by_cluster.get((a.project, cluster), []) if cluster else []
    if len(nodes) == 1:
        fields.update(instance_id=nodes[0].instance_id, region=nodes[0].region)
    elif nodes:
        gpu = [n for n in nodes if n.has_accelerators]
        if gpu:
            fields["accelerators"] = _max_per_model(gpu)
            notes = (
                f"pod's node is not in the audit entry; accelerators are the largest per model "
                f"among the cluster's {len(gpu)} GPU node(s) (upper bound)",
            )
    decision = str(
        as_dict(a.entry.get("labels"), "labels").get("authorization.k8s.io/decision", "")
    )
    if decision == "forbid":
        fields["outcome"] = Outcome.DENIED
    return a.session(
        key=a.key("gke", a.operation_id), method=method, attributes=attrs, notes=notes, **fields
    )


def _max_per_model(nodes: list[Any]) -> tuple[Accelerator, ...]:
    best: dict[str, Accelerator] = {}
    for node in nodes:
        for acc in node.accelerators:
            if acc.model not in best or acc.count > best[acc.model].count:
                best[acc.model] = acc
    return tuple(best[m] for m in sorted(best))


_EXACT: dict[str, Handler] = {
    "AuthorizeUser": _iap,
    "google.ssh-serialport.v1.connect": _serial,
    **{
        f"{ver}compute.{scope}.{op}": _ssh_keys
        for ver in ("v1.", "beta.", "")
        for scope, op in (("instances", "setMetadata"), ("projects", "setCommonInstanceMetadata"))
    },
    **{
        f"io.k8s.core.v1.pods.{sub}.{verb}": _gke
        for sub in _K8S_METHODS
        for verb in ("create", "get")
    },
}


def _handler(service: str, method: str) -> Handler | None:
    handler = _EXACT.get(method)
    if handler is not None:
        return handler
    if service == "oslogin.googleapis.com" and method.rsplit(".", 1)[-1] in _OSLOGIN_STEPS:
        return _oslogin
    if service.endswith("ssh-serialport.googleapis.com"):
        return _serial
    return None


def session_from_audit_entry(
    entry: Any, *, project: str, index: InventoryIndex | None = None
) -> Session | None:
    """The remote-access session an audit entry records; ``None`` = not an access event.

    ``project`` is the project being read (used when ``logName`` is absent). Raises
    ``RecordError`` for entries without a usable timestamp/insertId or with wrong types.
    """
    cursor = entry_cursor(entry)
    proto = as_dict(entry.get("protoPayload"), "protoPayload")
    if not proto:
        raise RecordError("audit entry has no protoPayload")
    method = str(proto.get("methodName") or "")
    service = str(proto.get("serviceName") or "")
    handler = _handler(service, method)
    if handler is None:
        return None
    audit = AuditEntry(
        entry=entry,
        proto=proto,
        cursor=cursor,
        project=entry_project(entry, project),
        service=service,
        method=method,
        index=index or InventoryIndex(),
    )
    return handler(audit)


def merge_sessions(first: Session, later: Session) -> Session:
    """Fold two entries of one operation: earliest start, latest end, first entry's fields win.

    The later entry's outcome wins unless it is ``unknown`` (OS Login 2FA: StartSession then
    ContinueSession AUTHENTICATED).
    """
    ends = [e for e in (first.ended_at, later.ended_at) if e is not None]
    started = min(first.started_at, later.started_at)
    outcome = later.outcome if later.outcome is not Outcome.UNKNOWN else first.outcome
    return first.model_copy(
        update={
            "started_at": started,
            "ended_at": max(ends) if ends else None,
            "outcome": outcome,
            "source_ip": first.source_ip or later.source_ip,
            "principal": first.principal or later.principal,
            "principal_type": first.principal_type or later.principal_type,
            "instance_id": first.instance_id or later.instance_id,
            "region": first.region or later.region,
            "attributes": {**later.attributes, **first.attributes},
            "evidence": (*first.evidence, *later.evidence),
            "notes": tuple(dict.fromkeys((*first.notes, *later.notes))),
        }
    )
