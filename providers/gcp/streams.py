"""The access streams a GCP source reads: one Logging query each, with its own checkpoint.

``STREAMS`` is the registry (name -> ``StreamSpec``); the provider loops over the configured
names and never switches on them. Filters are pure strings in the Logging query language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from providers.gcp.entries import format_timestamp

__all__ = ["STREAMS", "StreamSpec", "build_filter", "checkpoint_scope"]

DATA_ACCESS = "cloudaudit.googleapis.com%2Fdata_access"
ACTIVITY = "cloudaudit.googleapis.com%2Factivity"
VPC_FLOWS = "compute.googleapis.com%2Fvpc_flows"
PRIVATE = "logging.privateLogEntries.list"
PUBLIC = "logging.logEntries.list"


@dataclass(frozen=True)
class StreamSpec:
    """One access stream: which logs it reads, how it filters, what permission it needs."""

    name: str
    kind: Literal["audit", "flow"]
    logs: tuple[str, ...]
    permission: str
    clauses: Callable[[Sequence[int]], tuple[str, ...]]
    description: str

    def log_clause(self, project: str) -> str:
        names = [f'"projects/{project}/logs/{log}"' for log in self.logs]
        return f"logName={names[0]}" if len(names) == 1 else f"logName=({' OR '.join(names)})"


def _ports(ports: Sequence[int]) -> tuple[str, ...]:
    values = " OR ".join(str(p) for p in sorted(set(ports)))
    return (f"jsonPayload.connection.dest_port=({values})",)


STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec(
            "iap",
            "audit",
            (DATA_ACCESS,),
            PRIVATE,
            lambda _p: (
                'protoPayload.serviceName="iap.googleapis.com"',
                'protoPayload.methodName="AuthorizeUser"',
                'resource.type="gce_instance"',
            ),
            "IAP TCP forwarding tunnels (AuthorizeUser, a Data Access log)",
        ),
        StreamSpec(
            "oslogin",
            "audit",
            (DATA_ACCESS,),
            PRIVATE,
            lambda _p: (
                'protoPayload.serviceName="oslogin.googleapis.com"',
                'protoPayload.methodName:("CheckPolicy" OR "StartSession" OR "ContinueSession")',
            ),
            "OS Login policy checks and 2FA sessions (Data Access log)",
        ),
        StreamSpec(
            "serial-port",
            "audit",
            (ACTIVITY,),
            PUBLIC,
            lambda _p: ('protoPayload.methodName:"google.ssh-serialport.v1."',),
            "interactive serial console connections",
        ),
        StreamSpec(
            "ssh-keys",
            "audit",
            (ACTIVITY,),
            PUBLIC,
            lambda _p: (
                'protoPayload.serviceName="compute.googleapis.com"',
                'protoPayload.methodName:("instances.setMetadata" OR '
                '"projects.setCommonInstanceMetadata")',
            ),
            "SSH keys added to instance or project metadata (access grants)",
        ),
        StreamSpec(
            "gke",
            "audit",
            (ACTIVITY, DATA_ACCESS),
            PRIVATE,
            lambda _p: (
                'protoPayload.serviceName="k8s.io"',
                'protoPayload.methodName:("io.k8s.core.v1.pods.exec." OR '
                '"io.k8s.core.v1.pods.attach." OR "io.k8s.core.v1.pods.portforward.")',
            ),
            "GKE pods exec/attach/port-forward (create: Admin Activity; WebSocket get: Data "
            "Access)",
        ),
        StreamSpec(
            "vpc-flows",
            "flow",
            (VPC_FLOWS,),
            PUBLIC,
            _ports,
            "VPC flow logs: inbound connections to GPU VMs on admin ports",
        ),
    )
}


def build_filter(
    spec: StreamSpec,
    *,
    project: str,
    since: datetime | str | None,
    until: datetime | str | None,
    admin_ports: Sequence[int],
) -> str:
    """The server-side filter for one stream, project and time window.

    ``since``/``until`` are datetimes or canonical nanosecond timestamps (checkpoint cursors keep
    nanoseconds, which a datetime cannot).
    """
    clauses = [spec.log_clause(project), *spec.clauses(admin_ports)]
    if since is not None:
        clauses.append(f'timestamp>="{_ts(since)}"')
    if until is not None:
        clauses.append(f'timestamp<="{_ts(until)}"')
    return " AND ".join(clauses)


def _ts(value: datetime | str) -> str:
    return value if isinstance(value, str) else format_timestamp(value)


def checkpoint_scope(project: str, stream: str) -> str:
    """Checkpoint scope of one project and stream: ``gcp:<project>:<stream>``."""
    return f"gcp:{project}:{stream}"
