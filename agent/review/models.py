"""Frozen models of the review service: trail entries, exceptions, API tokens and roles."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from agent.models import Frozen, UtcDatetime

__all__ = [
    "GENESIS_HASH",
    "USER_ACTIONS",
    "ApiToken",
    "ExceptionRecord",
    "ExceptionScope",
    "ResolveReason",
    "ReviewAction",
    "Role",
    "TrailDraft",
    "TrailEntry",
    "TrailReport",
]

GENESIS_HASH = "0" * 64
NoneOk = SkipJsonSchema[None]
"""``None`` accepted but not advertised in the JSON schema (omit the field instead)."""


class Role(StrEnum):
    """Token roles, ordered: ``viewer < reviewer < admin``."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_ROLE_RANK = {r: i for i, r in enumerate(Role)}


class ReviewAction(StrEnum):
    """What a reviewer (or the system) did to a finding."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    COMMENT = "comment"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    # Recorded by the service itself, never requested through the review endpoint:
    EXCEPT = "except"
    EXCEPTION_CREATED = "exception-created"
    EXCEPTION_EXPIRED = "exception-expired"
    REFLAG = "reflag"


USER_ACTIONS = (
    ReviewAction.ACKNOWLEDGE,
    ReviewAction.ASSIGN,
    ReviewAction.COMMENT,
    ReviewAction.ESCALATE,
    ReviewAction.RESOLVE,
    ReviewAction.REOPEN,
)


class ResolveReason(StrEnum):
    """Why a finding was resolved."""

    CONFIRMED_VIOLATION = "confirmed-violation"
    FALSE_POSITIVE = "false-positive"
    AUTHORISED = "authorised"
    DUPLICATE = "duplicate"


class TrailDraft(Frozen):
    """A trail entry before the store gives it a sequence number and seals it."""

    finding_id: str | None = None
    at: UtcDatetime
    actor: str
    action: ReviewAction
    from_status: str | None = None
    to_status: str | None = None
    note: str = ""
    details: dict[str, str] = Field(default_factory=dict)


class TrailEntry(TrailDraft):
    """An immutable, hash-chained trail entry (``hash`` covers every other field)."""

    seq: int
    id: str
    prev_hash: str
    hash: str


class TrailReport(Frozen):
    """Outcome of verifying the whole chain."""

    ok: bool
    entries: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None


class ExceptionScope(Frozen):
    """What an exception covers; every field that is set must match (at least one is set).

    ``cidr`` is checked (and normalised) when the exception is created, so a bad network is
    reported as a usage error with the value, not as a schema error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"minProperties": 1})

    principal: Annotated[str, StringConstraints(min_length=1, max_length=512)] | NoneOk = None
    instance: Annotated[str, StringConstraints(min_length=1, max_length=200)] | NoneOk = None
    account: Annotated[str, StringConstraints(min_length=1, max_length=200)] | NoneOk = None
    cidr: Annotated[str, StringConstraints(min_length=1, max_length=64)] | NoneOk = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | NoneOk = None
    policy: Annotated[str, StringConstraints(min_length=1, max_length=200)] | NoneOk = None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @model_validator(mode="after")
    def _not_empty(self) -> ExceptionScope:
        if not any(self.model_dump().values()):
            raise ValueError(
                "an exception scope needs at least one of principal, instance, account, cidr, "
                "country, policy"
            )
        return self

    def normalised(self) -> ExceptionScope:
        """This scope with ``cidr`` in canonical form; ``ValueError`` if it is no network."""
        if self.cidr is None:
            return self
        try:
            network = str(ipaddress.ip_network(self.cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"scope.cidr {self.cidr!r} is not an IP network") from exc
        return self.model_copy(update={"cidr": network})


class ExceptionRecord(Frozen):
    """An approved exception; it stops applying at ``expires_at`` (then findings re-flag)."""

    id: str
    scope: ExceptionScope
    owner: str
    approver: str
    justification: str
    created_at: UtcDatetime
    created_by: str
    expires_at: UtcDatetime
    expired_at: UtcDatetime | None = None
    origin: str = "api"

    def active(self, now: datetime) -> bool:
        """Not yet expired at ``now`` and not marked expired."""
        return self.expired_at is None and self.expires_at > now


class ApiToken(Frozen):
    """A stored API token (never the secret itself)."""

    id: str
    name: str
    role: Role
    created_at: UtcDatetime
    created_by: str
    revoked_at: UtcDatetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
