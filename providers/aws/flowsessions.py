"""Pure selection of flow records that reach a GPU instance's admin port, and their folding into
sessions per (source IP, instance, port) with a gap timeout (method ``network-flow``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.models import AccessMethod, EvidenceRef, GpuInstance, Session
from providers.aws.flowparse import FlowRecord

__all__ = ["FlowHit", "TargetIndex", "aggregate_hits", "select_hits"]

PROVIDER = "aws"
_ACCEPTED_PROTOCOLS = frozenset({6, 17})  # TCP, UDP
_SERVICES = {22: "ssh", 3389: "rdp", 5900: "vnc", 8888: "jupyter"}
_PROTOCOL_NAMES = {6: "tcp", 17: "udp"}


@dataclass(frozen=True, slots=True)
class FlowHit:
    """An accepted inbound admin-port record attributed to a GPU instance."""

    record: FlowRecord
    instance: GpuInstance
    matched_by: str
    locator: str
    position: str
    tag: str | None = None


class TargetIndex:
    """AWS instances (with accelerators unless ``gpu_only=False``) by ENI id, instance id and
    (account, private IP). A private IP held by more than one indexed instance of the same
    account (or of different accounts when the record names none) is ambiguous: no match.
    """

    def __init__(self, instances: Iterable[GpuInstance], *, gpu_only: bool = True) -> None:
        self._by_eni: dict[str, GpuInstance] = {}
        self._by_id: dict[str, GpuInstance] = {}
        self._by_ip: dict[tuple[str | None, str], list[GpuInstance]] = defaultdict(list)
        for inst in instances:
            if inst.provider != PROVIDER or (gpu_only and not inst.has_accelerators):
                continue
            for eni in inst.network_interfaces:
                self._by_eni[eni] = inst
            self._by_id[inst.instance_id] = inst
            for ip in {*inst.private_ips, *inst.public_ips}:
                self._by_ip[(inst.account, ip)].append(inst)
                self._by_ip[(None, ip)].append(inst)

    def __len__(self) -> int:
        return len(self._by_id)

    def selectors(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """(ENI ids, instance ids, addresses) ``match`` can succeed on: the pre-filter of the
        vectorised reader (``flowfast``) keeps only rows naming one of them."""
        ips = frozenset(ip for _, ip in self._by_ip)
        return frozenset(self._by_eni), frozenset(self._by_id), ips

    def by_ip(self, ip: str, *, account: str | None) -> GpuInstance | None:
        """The one GPU instance holding ``ip`` (in ``account`` when given)."""
        found = self._by_ip.get((account, ip), [])
        return found[0] if len(found) == 1 else None

    def match(self, record: FlowRecord, *, account: str | None) -> tuple[GpuInstance, str] | None:
        """The GPU instance a record is on, and which field said so."""
        if record.interface_id and record.interface_id in self._by_eni:
            return self._by_eni[record.interface_id], "interface-id"
        if record.instance_id and record.instance_id in self._by_id:
            return self._by_id[record.instance_id], "instance-id"
        for name, ip in (("dstaddr", record.dstaddr), ("pkt-dstaddr", record.pkt_dstaddr)):
            if ip:
                inst = self.by_ip(ip, account=record.account or account)
                if inst is not None:
                    return inst, name
        return None


def _inbound(record: FlowRecord, inst: GpuInstance) -> bool:
    if record.direction:
        return record.direction == "ingress"
    addresses = {*inst.private_ips, *inst.public_ips}
    if not addresses:
        return True  # an ENI match without known addresses: trust the admin-port test
    return record.dstaddr in addresses or record.pkt_dstaddr in addresses


def select_hits(
    records: Iterable[FlowRecord],
    index: TargetIndex,
    *,
    ports: frozenset[int],
    account: str | None,
    locator: str,
    tag: str | None = None,
    position_of: Callable[[FlowRecord], str] = lambda r: f"line {r.line}",
) -> tuple[list[FlowHit], int]:
    """Accepted, inbound TCP/UDP records to an admin port of a GPU instance; returns the hits
    and how many records were not hits (to count as ignored)."""
    hits: list[FlowHit] = []
    ignored = 0
    for record in records:
        if (
            record.action != "ACCEPT"
            or record.dst_port not in ports
            or (record.protocol is not None and record.protocol not in _ACCEPTED_PROTOCOLS)
            or record.source_ip is None
            or record.start is None
        ):
            ignored += 1
            continue
        found = index.match(record, account=account)
        if found is None or not _inbound(record, found[0]):
            ignored += 1
            continue
        hits.append(FlowHit(record, found[0], found[1], locator, position_of(record), tag))
    return hits, ignored


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def aggregate_hits(
    hits: Iterable[FlowHit], *, gap: timedelta, source: str
) -> tuple[list[tuple[str | None, Session]], int]:
    """Fold hits into sessions per (source IP, instance, port); a pause longer than ``gap``
    starts a new one. Returns (tag of the first hit, session) pairs and how many hits were
    merged into an earlier one."""
    groups: dict[tuple[str, str, str, int], list[FlowHit]] = defaultdict(list)
    for hit in hits:
        rec = hit.record
        key = (
            hit.instance.account,
            hit.instance.instance_id,
            rec.source_ip or "",
            rec.dst_port or 0,
        )
        groups[key].append(hit)
    out: list[tuple[str | None, Session]] = []
    merged = 0
    for items in (groups[k] for k in sorted(groups)):
        items.sort(key=lambda h: (h.record.start or 0, h.locator, h.record.line))
        run: list[FlowHit] = []
        run_end = 0
        for hit in items:
            start = hit.record.start or 0
            if run and start - run_end > gap.total_seconds():
                out.append((run[0].tag, _session(run, source)))
                merged += len(run) - 1
                run = []
            if not run:
                run_end = start
            run.append(hit)
            run_end = max(run_end, hit.record.end or start)
        out.append((run[0].tag, _session(run, source)))
        merged += len(run) - 1
    return out, merged


def _evidence(hit: FlowHit) -> EvidenceRef:
    kind = "api" if hit.locator.startswith("logs:") else "file"
    return EvidenceRef(kind=kind, locator=hit.locator, position=hit.position)


def _session(run: Sequence[FlowHit], source: str) -> Session:
    first = run[0]
    rec, inst = first.record, first.instance
    start = min(h.record.start or 0 for h in run)
    end = max(h.record.end or h.record.start or 0 for h in run)
    port = rec.dst_port or 0
    src = rec.source_ip or ""
    evidence = [_evidence(first)]
    if len(run) > 1:
        evidence.append(_evidence(run[-1]))
    attributes = {
        "port": str(port),
        "service": _SERVICES.get(port, "admin-port"),
        "protocol": _PROTOCOL_NAMES.get(rec.protocol or 6, str(rec.protocol)),
        "records": str(len(run)),
        "bytes": str(sum(h.record.bytes or 0 for h in run)),
        "matched_by": first.matched_by,
        "source_field": "pkt-srcaddr" if rec.pkt_srcaddr else "srcaddr",
        "interface_id": rec.interface_id or "",
        "dst_ip": rec.pkt_dstaddr or rec.dstaddr or "",
        "srcaddr": rec.srcaddr or "",
    }
    return Session(
        key=f"vpcflow:{inst.account}:{inst.instance_id}:{src}:{port}:{start}",
        provider=PROVIDER,
        source=source,
        account=inst.account,
        region=inst.region,
        instance_id=inst.instance_id,
        source_ip=src,
        method=AccessMethod.NETWORK_FLOW,
        started_at=_time(start),
        ended_at=_time(end) if end > start else None,
        evidence=tuple(evidence),
        attributes={k: v for k, v in attributes.items() if v},
        notes=("observed in VPC flow logs: a network connection, not an authenticated login",),
    )
