"""Pure parsing of VPC flow-log records: a block of text lines in, typed records out.

Field names and versions follow the AWS VPC user guide "Flow log records" (domain.md 6.1):
v2 is the default format; v3-v5 add the fields below; the v7 (ECS) and v8 (reject-reason)
names are listed as unverified [U] and only matter for custom formats. ``parse_block`` works
on a whole block so it can later be vectorised (issue 8) without changing its callers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "DEFAULT_FIELDS",
    "KNOWN_FIELDS",
    "FlowBlock",
    "FlowLayout",
    "FlowRecord",
    "fields_from_format",
    "header_fields",
    "parse_block",
]

DEFAULT_FIELDS: tuple[str, ...] = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status",
)  # fmt: skip
"""The default (version 2) format, in order."""

_LATER_FIELDS = (
    # v3
    "vpc-id", "subnet-id", "instance-id", "tcp-flags", "type", "pkt-srcaddr", "pkt-dstaddr",
    # v4
    "region", "az-id", "sublocation-type", "sublocation-id",
    # v5
    "pkt-src-aws-service", "pkt-dst-aws-service", "flow-direction", "traffic-path",
    # v7 (ECS) and v8, unverified [U]
    "ecs-cluster-arn", "ecs-cluster-name", "ecs-container-instance-arn",
    "ecs-container-instance-id", "ecs-container-id", "ecs-second-container-id",
    "ecs-service-name", "ecs-task-definition-arn", "ecs-task-arn", "ecs-task-id",
    "reject-reason",
)  # fmt: skip
KNOWN_FIELDS: frozenset[str] = frozenset((*DEFAULT_FIELDS, *_LATER_FIELDS))
"""Every field name a flow-log format may use."""

_REQUIRED = ("dstport", "start", "action")
_SKIP_STATUSES = frozenset({"NODATA", "SKIPDATA"})
_FORMAT_TOKEN = re.compile(r"\$\{([a-z0-9-]+)\}")
_INT_FIELDS = {
    "srcport": "src_port",
    "dstport": "dst_port",
    "protocol": "protocol",
    "start": "start",
    "end": "end",
    "bytes": "bytes",
    "packets": "packets",
}
_IP_FIELDS = {
    "srcaddr": "srcaddr",
    "dstaddr": "dstaddr",
    "pkt-srcaddr": "pkt_srcaddr",
    "pkt-dstaddr": "pkt_dstaddr",
}
_TEXT_FIELDS = {
    "account-id": "account",
    "interface-id": "interface_id",
    "instance-id": "instance_id",
    "action": "action",
    "flow-direction": "direction",
    "region": "region",
}


def fields_from_format(text: str) -> tuple[str, ...]:
    """``"${version} ${srcaddr} ..."`` (a flow log's LogFormat) -> field names in order."""
    names = tuple(_FORMAT_TOKEN.findall(text))
    if not names or _FORMAT_TOKEN.sub("", text).strip():
        raise ValueError("format must be ${field} tokens separated by spaces")
    return names


def header_fields(line: str) -> tuple[str, ...] | None:
    """The field names when ``line`` is a header line (S3 delivery), else ``None``."""
    tokens = tuple(line.split())
    if len(tokens) >= 2 and all(t in KNOWN_FIELDS for t in tokens):
        return tokens
    return None


@dataclass(frozen=True)
class FlowLayout:
    """A field order with its column indexes; ``missing`` names required fields it lacks."""

    fields: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {name: i for i, name in enumerate(self.fields)})

    @property
    def missing(self) -> tuple[str, ...]:
        """Fields a session needs that this layout lacks (empty when usable)."""
        out = [f for f in _REQUIRED if f not in self.index]
        if "srcaddr" not in self.index and "pkt-srcaddr" not in self.index:
            out.append("srcaddr")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One flow-log record (``None`` where the format lacks the field or it is ``-``)."""

    line: int
    account: str | None = None
    interface_id: str | None = None
    instance_id: str | None = None
    srcaddr: str | None = None
    dstaddr: str | None = None
    pkt_srcaddr: str | None = None
    pkt_dstaddr: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    protocol: int | None = None
    start: int | None = None
    end: int | None = None
    action: str | None = None
    bytes: int | None = None
    packets: int | None = None
    direction: str | None = None
    region: str | None = None

    @property
    def source_ip(self) -> str | None:
        """pkt-srcaddr (the client behind a NAT or load balancer) when present, else srcaddr."""
        return self.pkt_srcaddr or self.srcaddr


@dataclass
class FlowBlock:
    """Result of one block: parsed records, skipped NODATA/SKIPDATA lines, and errors."""

    records: list[FlowRecord] = field(default_factory=list)
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


@lru_cache(maxsize=1 << 16)
def _normal_ip(raw: str) -> str:
    """Canonical text of an address (``ValueError`` if it is not one); flows repeat the same
    few addresses, so each is parsed once (a bounded cache, exceptions are not cached)."""
    return str(ipaddress.ip_address(raw))


def _value(raw: str) -> str | None:
    return None if raw == "-" else raw


def _parse_line(tokens: Sequence[str], layout: FlowLayout, line: int) -> FlowRecord:
    values: dict[str, object] = {"line": line}
    index = layout.index
    for name, attr in _TEXT_FIELDS.items():
        if name in index:
            values[attr] = _value(tokens[index[name]])
    for name, attr in _INT_FIELDS.items():
        if name in index and (raw := _value(tokens[index[name]])) is not None:
            if not raw.isdigit():
                raise ValueError(f"{name} is not a number: {raw!r}")
            values[attr] = int(raw)
    for name, attr in _IP_FIELDS.items():
        if name in index and (raw := _value(tokens[index[name]])) is not None:
            try:
                values[attr] = _normal_ip(raw)
            except ValueError:
                raise ValueError(f"{name} is not an IP address: {raw!r}") from None
    for name in ("srcport", "dstport"):
        number = values.get(_INT_FIELDS[name])
        if isinstance(number, int) and number > 65535:
            raise ValueError(f"{name} out of range: {number}")
    return FlowRecord(**values)  # type: ignore[arg-type]


def parse_block(lines: Sequence[str], *, layout: FlowLayout, first_line: int) -> FlowBlock:
    """Parse ``lines`` (numbered from ``first_line``) against ``layout``.

    Blank lines are dropped; ``NODATA``/``SKIPDATA`` records are counted in ``skipped``; a line
    with the wrong number of fields or a bad value is an error naming its line, never fatal.
    Text after `` #`` is a comment (the AWS documentation samples carry some).
    """
    block = FlowBlock()
    width = len(layout.fields)
    status_at = layout.index.get("log-status")
    for offset, text in enumerate(lines):
        number = first_line + offset
        if "#" in text:
            text = text.split("#", 1)[0]
        tokens = text.split()
        if not tokens:
            continue
        if len(tokens) != width:
            block.errors.append((number, f"expected {width} fields, got {len(tokens)}"))
            continue
        if status_at is not None and tokens[status_at] in _SKIP_STATUSES:
            block.skipped += 1
            continue
        try:
            block.records.append(_parse_line(tokens, layout, number))
        except ValueError as exc:
            block.errors.append((number, str(exc)))
    return block
