"""Pure parsing of NSG (v1, v2) and VNet flow-log blobs, and folding of accepted inbound tuples
into sessions per (source ip, VM, port) with a gap timeout (method network-flow).

Tuple layouts (domain.md 6.3; Microsoft Docs vnet-flow-logs-overview for VNet):
  nsg-v1  ts(s),src,dst,sport,dport,proto(T|U),dir(I|O),decision(A|D)
  nsg-v2  nsg-v1 + state(B|C|E),packetsS2D,bytesS2D,packetsD2S,bytesD2S (counts may be empty)
  vnet    ts(ms),src,dst,sport,dport,proto(IANA no.),dir(I|O),state(B|C|E|D),encryption,
          packetsS2D,bytesS2D,packetsD2S,bytesD2S  (state D = denied)
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Session
from providers.azure.normalize import mac_key, subscription_of

__all__ = [
    "FlowHit",
    "FlowTuple",
    "RawTuple",
    "aggregate_flows",
    "iter_records",
    "parse_tuple",
    "record_tuples",
]

_PROTOCOLS = {"T": "tcp", "U": "udp", "6": "tcp", "17": "udp", "1": "icmp"}


@dataclass(frozen=True)
class FlowTuple:
    """One parsed flow tuple."""

    time: datetime
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    protocol: str
    direction: str
    accepted: bool
    state: str | None
    bytes_total: int | None
    layout: str

    @property
    def inbound(self) -> bool:
        return self.direction == "I"


@dataclass(frozen=True)
class RawTuple:
    """A tuple string with the context of the record it came from."""

    text: str
    mac: str | None
    rule: str | None
    layout: str
    position: str


def _ip(value: str, *, field: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise RecordError(f"{field}: not an IP address: {value!r}") from exc


def _int(value: str, *, field: str, low: int = 0, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise RecordError(f"{field}: not a number: {value!r}") from exc
    if number < low or (high is not None and number > high):
        raise RecordError(f"{field}: out of range: {value!r}")
    return number


def _counts(parts: list[str]) -> int | None:
    texts = [p.strip() for p in parts]
    values = [int(t) for t in texts if t.isascii() and t.isdigit() and len(t) <= 20]
    return sum(values[i] for i in (1, 3) if i < len(values)) if len(values) == 4 else None


def parse_tuple(text: str, *, layout: str) -> FlowTuple:
    """Parse one tuple string of ``layout`` (nsg-v1, nsg-v2, vnet); RecordError when malformed."""
    if not isinstance(text, str):
        raise RecordError(f"flow tuple is not a string: {text!r}")
    parts = text.split(",")
    expected = {"nsg-v1": 8, "nsg-v2": 13, "vnet": 13}[layout]
    if len(parts) != expected:
        raise RecordError(f"{layout} tuple has {len(parts)} fields, expected {expected}: {text!r}")
    stamp = _int(parts[0], field="timestamp", low=1)
    seconds = stamp / 1000 if stamp > 10**11 else stamp
    direction = parts[6].strip().upper()
    if direction not in {"I", "O"}:
        raise RecordError(f"direction must be I or O: {parts[6]!r}")
    state: str | None
    if layout == "vnet":
        state = parts[7].strip().upper()
        if state not in {"B", "C", "E", "D"}:
            raise RecordError(f"flow state must be B, C, E or D: {parts[7]!r}")
        accepted, counts = state != "D", parts[9:13]
    else:
        decision = parts[7].strip().upper()
        if decision not in {"A", "D"}:
            raise RecordError(f"decision must be A or D: {parts[7]!r}")
        accepted = decision == "A"
        state = (parts[8].strip().upper() or None) if layout == "nsg-v2" else None
        counts = parts[9:13] if layout == "nsg-v2" else []
    protocol = parts[5].strip().upper()
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise RecordError(f"timestamp: out of range: {parts[0]!r}") from exc
    return FlowTuple(
        time=when,
        src_ip=_ip(parts[1].strip(), field="source ip"),
        dst_ip=_ip(parts[2].strip(), field="destination ip"),
        src_port=_int(parts[3], field="source port", high=65535),
        dst_port=_int(parts[4], field="destination port", high=65535),
        protocol=_PROTOCOLS.get(protocol, protocol.lower()),
        direction=direction,
        accepted=accepted,
        state=state,
        bytes_total=_counts(counts),
        layout=layout,
    )


def iter_records(data: bytes) -> Iterator[tuple[str, Mapping[str, Any] | RecordError]]:
    """Records of a diagnostic-settings blob: ``{"records": [...]}``, a list, or JSON lines."""
    text = data.decode("utf-8-sig", errors="replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, 4300+ digit ints, deep nesting
        doc = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line {number}", RecordError(f"invalid JSON: {exc.msg}")
                continue
            except (ValueError, RecursionError) as exc:  # 4300+ digit ints, deep nesting
                yield f"line {number}", RecordError(f"unparsable JSON: {exc}"[:200])
                continue
            for index, record in enumerate(_records_of(item)):
                suffix = (
                    f" record {index}" if isinstance(item, Mapping) and "records" in item else ""
                )
                yield f"line {number}{suffix}", record
        return
    for index, record in enumerate(_records_of(doc)):
        yield f"record {index}", record


def _records_of(doc: Any) -> list[Any]:
    if isinstance(doc, Mapping) and isinstance(doc.get("records"), list):
        items: list[Any] = doc["records"]
    elif isinstance(doc, list):
        items = doc
    else:
        items = [doc]
    return [i if isinstance(i, Mapping) else RecordError("record is not an object") for i in items]


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{what} is not a list")
    return value


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{what} is not an object")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def record_tuples(record: Mapping[str, Any], *, position: str) -> Iterator[RawTuple]:
    """Every tuple string of an NSG or VNet flow record, with its MAC, rule and layout.

    A container of the wrong JSON type is a RecordError naming it (the record is quarantined).
    """
    if isinstance(record.get("flowRecords"), Mapping):
        mac = mac_key(_str(record.get("macAddress")))
        for f, flow in enumerate(_list(record["flowRecords"].get("flows"), "flowRecords.flows")):
            groups = _list(_obj(flow, "flow").get("flowGroups"), "flowGroups")
            for g, group in enumerate(groups):
                group = _obj(group, "flowGroup")
                for j, text in enumerate(_list(group.get("flowTuples"), "flowTuples")):
                    where = f"{position} flow {f} group {g} tuple {j}"
                    yield RawTuple(text, mac, _str(group.get("rule")), "vnet", where)
        return
    props = record.get("properties")
    if not isinstance(props, Mapping) or "flows" not in props:
        raise RecordError("neither an NSG (properties.flows) nor a VNet (flowRecords) record")
    version = props.get("Version", props.get("version", 1))
    layout = "nsg-v2" if str(version) == "2" else "nsg-v1"
    for r, rule_flow in enumerate(_list(props.get("flows"), "properties.flows")):
        rule_flow = _obj(rule_flow, "rule flow")
        rule = _str(rule_flow.get("rule"))
        for m, mac_flow in enumerate(_list(rule_flow.get("flows"), "rule flows")):
            mac_flow = _obj(mac_flow, "mac flow")
            mac = mac_key(_str(mac_flow.get("mac")))
            for j, text in enumerate(_list(mac_flow.get("flowTuples"), "flowTuples")):
                yield RawTuple(text, mac, rule, layout, f"{position} rule {r} mac {m} tuple {j}")


@dataclass(frozen=True)
class FlowHit:
    """An accepted inbound admin-port tuple attributed to a GPU VM."""

    flow: FlowTuple
    vm_id: str
    matched_by: str
    rule: str | None
    locator: str
    position: str


def aggregate_flows(
    hits: Iterable[FlowHit], *, gap: timedelta, source: str
) -> tuple[list[Session], int]:
    """Fold hits into sessions per (source ip, VM, port); a pause longer than ``gap`` starts a
    new one. Returns the sessions and how many hits were merged into an earlier one."""
    groups: dict[tuple[str, str, int], list[FlowHit]] = defaultdict(list)
    for hit in hits:
        groups[(hit.flow.src_ip, hit.vm_id, hit.flow.dst_port)].append(hit)
    sessions: list[Session] = []
    merged = 0
    for (src, vm_id, port), items in sorted(groups.items()):
        items.sort(key=lambda h: h.flow.time)
        run: list[FlowHit] = []
        for hit in items:
            if run and hit.flow.time - run[-1].flow.time > gap:
                sessions.append(_flow_session(run, src=src, vm_id=vm_id, port=port, source=source))
                merged += len(run) - 1
                run = []
            run.append(hit)
        sessions.append(_flow_session(run, src=src, vm_id=vm_id, port=port, source=source))
        merged += len(run) - 1
    return sessions, merged


def _flow_session(run: list[FlowHit], *, src: str, vm_id: str, port: int, source: str) -> Session:
    first, last = run[0], run[-1]
    total = sum(h.flow.bytes_total or 0 for h in run)
    return Session(
        key=f"flow:{vm_id}:{src}:{port}:{int(first.flow.time.timestamp())}",
        provider="azure",
        source=source,
        account=subscription_of(vm_id),
        instance_id=vm_id,
        source_ip=src,
        method=AccessMethod.NETWORK_FLOW,
        started_at=first.flow.time,
        ended_at=last.flow.time if last.flow.time > first.flow.time else None,
        evidence=(EvidenceRef(kind="file", locator=first.locator, position=first.position),),
        attributes={
            k: v
            for k, v in {
                "port": str(port),
                "protocol": first.flow.protocol,
                "tuples": str(len(run)),
                "bytes": str(total),
                "rule": first.rule or "",
                "layout": first.flow.layout,
                "matched_by": first.matched_by,
                "dst_ip": first.flow.dst_ip,
            }.items()
            if v
        },
    )
