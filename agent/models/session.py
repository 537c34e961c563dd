"""One normalised remote-access session (or attempt) to a compute target."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import Field, field_validator

from agent.models.base import Frozen, UtcDatetime, clean_value
from agent.models.evidence import EvidenceRef
from agent.models.inventory import Accelerator

__all__ = ["AccessMethod", "Outcome", "Session"]


class AccessMethod(StrEnum):
    """How the principal reached (or tried to reach) the target."""

    SSM_SESSION = "ssm-session"
    SSM_PORT_FORWARD = "ssm-port-forward"
    EC2_INSTANCE_CONNECT = "ec2-instance-connect"
    EC2_SERIAL_CONSOLE = "ec2-serial-console"
    EC2_INSTANCE_CONNECT_ENDPOINT = "ec2-instance-connect-endpoint"
    CONSOLE = "console"
    SSH = "ssh"
    RDP = "rdp"
    NETWORK_FLOW = "network-flow"
    IAP_TUNNEL = "iap-tunnel"
    OS_LOGIN = "os-login"
    SERIAL_PORT = "serial-port"
    SSH_KEY_GRANT = "ssh-key-grant"
    BASTION = "bastion"
    VM_SIGN_IN = "vm-sign-in"
    RUN_COMMAND = "run-command"
    KUBERNETES_EXEC = "kubernetes-exec"
    KUBERNETES_ATTACH = "kubernetes-attach"
    KUBERNETES_PORT_FORWARD = "kubernetes-port-forward"
    KUBERNETES_DEBUG = "kubernetes-debug"
    JUPYTER = "jupyter"
    OTHER = "other"


class Outcome(StrEnum):
    """Whether the access succeeded."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Session(Frozen):
    """A remote-access session or attempt, normalised from any provider or log.

    ``key`` is the source's natural identity for the event (CloudTrail eventID, sshd host+pid+
    time, ...); together with ``provider`` it makes ``session_id`` stable across re-runs.
    ``account``/``region``/``instance_id`` name the target; ``instance_type`` and
    ``accelerators`` are filled only when the event itself says them (target not in inventory).
    """

    key: str
    provider: str
    source: str
    account: str | None = None
    region: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    accelerators: tuple[Accelerator, ...] = ()
    principal: str | None = None
    principal_type: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    method: AccessMethod
    outcome: Outcome = Outcome.SUCCESS
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    evidence: tuple[EvidenceRef, ...] = ()
    attributes: dict[str, str] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return clean_value(value)

    @property
    def session_id(self) -> str:
        """Stable id: hash of provider and the source's natural key."""
        return hashlib.sha256(
            f"{self.provider}\x1f{self.key}".encode("utf-8", "surrogatepass")
        ).hexdigest()[:32]
