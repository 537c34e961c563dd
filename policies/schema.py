"""The policy-pack DSL as frozen pydantic models (and their JSON Schema).

A condition is a mapping with ``type:`` (a discriminated union, unknown keys rejected) or a
combinator ``{all: [...]}``, ``{any: [...]}``, ``{not: ...}``. ``policies.conditions`` compiles
each one into a predicate closure once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from agent.models import AccessMethod, IpKind, Outcome, Severity

__all__ = [
    "COMBINATOR_TAGS",
    "CONDITION_TYPES",
    "AccountIn",
    "AllOf",
    "AnyOf",
    "AttributeEquals",
    "Cap",
    "Condition",
    "ContextCountryIn",
    "ContextEquals",
    "ContextIn",
    "MethodIn",
    "NotOf",
    "OutcomeIn",
    "Pack",
    "Policy",
    "PolicyException",
    "PrincipalMatches",
    "ProviderIn",
    "RiskScore",
    "RiskSignal",
    "SourceCountryIn",
    "SourceCountryKnown",
    "SourceIpInCidr",
    "SourceIpKindIn",
    "SourceSubdivisionIn",
    "SourceTagIn",
    "TargetExportClassIn",
    "TargetHasAccelerator",
    "TargetInInventory",
    "iter_conditions",
    "pack_json_schema",
]

ExportClassName = Literal["3A090.a", "3A090.b", "not-controlled", "unknown"]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Subdivision = Annotated[str, Field(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$")]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Leaf(_Strict):
    """Base of the ``type:`` conditions; ``TAG`` is the YAML ``type`` value."""

    TAG: ClassVar[str]


class SourceCountryIn(_Leaf):
    """Source IP's country is in any named list (dated, HK->CN where the list says) or given."""

    TAG = "source-country-in"
    type: Literal["source-country-in"]
    lists: tuple[NonEmpty, ...] = ()
    countries: tuple[Country, ...] = ()

    @model_validator(mode="after")
    def _some(self) -> SourceCountryIn:
        if not self.lists and not self.countries:
            raise ValueError("give 'lists' or 'countries'")
        return self


class SourceSubdivisionIn(_Leaf):
    """Source IP's ISO 3166-2 subdivision (when known) is in any named list or given code."""

    TAG = "source-subdivision-in"
    type: Literal["source-subdivision-in"]
    lists: tuple[NonEmpty, ...] = ()
    codes: tuple[Subdivision, ...] = ()

    @model_validator(mode="after")
    def _some(self) -> SourceSubdivisionIn:
        if not self.lists and not self.codes:
            raise ValueError("give 'lists' or 'codes'")
        return self


class SourceCountryKnown(_Leaf):
    """Whether the source IP has a known country."""

    TAG = "source-country-known"
    type: Literal["source-country-known"]
    value: bool


class SourceIpKindIn(_Leaf):
    """Source address kind (public, private, service, ...)."""

    TAG = "source-ip-kind-in"
    type: Literal["source-ip-kind-in"]
    values: tuple[IpKind, ...] = Field(min_length=1)


class SourceIpInCidr(_Leaf):
    """Source IP falls in any of the CIDR blocks."""

    TAG = "source-ip-in-cidr"
    type: Literal["source-ip-in-cidr"]
    cidrs: tuple[str, ...] = Field(min_length=1)

    @field_validator("cidrs")
    @classmethod
    def _valid(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in v:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR block") from exc
        return v


class SourceTagIn(_Leaf):
    """Source IP carries any of the enrichment tags (tor-exit, hosting, cn-cloud, ...).

    A value also matches its family: ``cn-cloud`` matches ``cn-cloud:alibaba`` and ``tor``
    matches ``tor-exit`` (a tag extended after ``:`` or ``-``).
    """

    TAG = "source-tag-in"
    type: Literal["source-tag-in"]
    values: tuple[NonEmpty, ...] = Field(min_length=1)


class TargetInInventory(_Leaf):
    """Whether the target instance was found in the inventory."""

    TAG = "target-in-inventory"
    type: Literal["target-in-inventory"]
    value: bool


class TargetHasAccelerator(_Leaf):
    """Whether the target (or the event's named instance type) carries accelerators."""

    TAG = "target-has-accelerator"
    type: Literal["target-has-accelerator"]
    value: bool


class TargetExportClassIn(_Leaf):
    """Any accelerator on the target has one of these computed 3A090 classes."""

    TAG = "target-export-class-in"
    type: Literal["target-export-class-in"]
    values: tuple[ExportClassName, ...] = Field(min_length=1)


class OutcomeIn(_Leaf):
    """Session outcome (success, denied, failed, unknown)."""

    TAG = "outcome-in"
    type: Literal["outcome-in"]
    values: tuple[Outcome, ...] = Field(min_length=1)


class MethodIn(_Leaf):
    """Access method (ssm-session, ssh, bastion, ...)."""

    TAG = "method-in"
    type: Literal["method-in"]
    values: tuple[AccessMethod, ...] = Field(min_length=1)


class ProviderIn(_Leaf):
    """Session provider (aws, gcp, azure, kubernetes, host...)."""

    TAG = "provider-in"
    type: Literal["provider-in"]
    values: tuple[NonEmpty, ...] = Field(min_length=1)


class AccountIn(_Leaf):
    """Target account (AWS account, GCP project, Azure subscription)."""

    TAG = "account-in"
    type: Literal["account-in"]
    values: tuple[NonEmpty, ...] = Field(min_length=1)


class PrincipalMatches(_Leaf):
    """Principal matches any fnmatch pattern (case-sensitive)."""

    TAG = "principal-matches"
    type: Literal["principal-matches"]
    patterns: tuple[NonEmpty, ...] = Field(min_length=1)


class AttributeEquals(_Leaf):
    """A session attribute equals a value."""

    TAG = "attribute-equals"
    type: Literal["attribute-equals"]
    key: NonEmpty
    value: str


class ContextEquals(_Leaf):
    """An evaluation-context fact (e.g. ``history.new_country``) equals a value.

    ``explain`` names another context key whose text (a plain sentence) becomes the reason.
    """

    TAG = "context-equals"
    type: Literal["context-equals"]
    key: NonEmpty
    value: str
    explain: NonEmpty | None = None


class ContextIn(_Leaf):
    """An evaluation-context fact is one of ``values`` (``explain``: see context-equals)."""

    TAG = "context-in"
    type: Literal["context-in"]
    key: NonEmpty
    values: tuple[str, ...] = Field(min_length=1)
    explain: NonEmpty | None = None


class ContextCountryIn(_Leaf):
    """A context fact holding a country code (e.g. ``parent_hq_country``) is in a named list
    at the session's start date (HK->CN where the list says) or in ``countries``."""

    TAG = "context-country-in"
    type: Literal["context-country-in"]
    key: NonEmpty
    lists: tuple[NonEmpty, ...] = ()
    countries: tuple[Country, ...] = ()
    explain: NonEmpty | None = None

    @model_validator(mode="after")
    def _some(self) -> ContextCountryIn:
        if not self.lists and not self.countries:
            raise ValueError("give 'lists' or 'countries'")
        return self


class RiskSignal(_Strict):
    """One weighted signal of a risk score; ``says`` is its plain-word reason."""

    when: Condition
    weight: int = Field(ge=1, le=100)
    says: NonEmpty


class RiskScore(_Leaf):
    """The weights of the signals that hold add up to at least ``min``."""

    TAG = "risk-score"
    type: Literal["risk-score"]
    min: int = Field(ge=1)
    signals: tuple[RiskSignal, ...] = Field(min_length=1)


class AllOf(_Strict):
    """Every sub-condition holds (empty = always true)."""

    TAG: ClassVar[str] = "{all}"
    all_: tuple[Condition, ...] = Field(alias="all")


class AnyOf(_Strict):
    """At least one sub-condition holds."""

    TAG: ClassVar[str] = "{any}"
    any_: tuple[Condition, ...] = Field(alias="any", min_length=1)


class NotOf(_Strict):
    """The sub-condition does not hold."""

    TAG: ClassVar[str] = "{not}"
    not_: Condition = Field(alias="not")


LEAF_MODELS: tuple[type[_Leaf], ...] = (
    SourceCountryIn,
    SourceSubdivisionIn,
    SourceCountryKnown,
    SourceIpKindIn,
    SourceIpInCidr,
    SourceTagIn,
    TargetInInventory,
    TargetHasAccelerator,
    TargetExportClassIn,
    OutcomeIn,
    MethodIn,
    ProviderIn,
    AccountIn,
    PrincipalMatches,
    AttributeEquals,
    ContextEquals,
    ContextIn,
    ContextCountryIn,
    RiskScore,
)
CONDITION_TYPES: tuple[str, ...] = tuple(m.TAG for m in LEAF_MODELS)
_COMBINATOR_KEYS = {"all": AllOf.TAG, "any": AnyOf.TAG, "not": NotOf.TAG}
COMBINATOR_TAGS: frozenset[str] = frozenset(_COMBINATOR_KEYS.values())


def _condition_tag(value: Any) -> str | None:
    """``type`` value, or the combinator tag for ``{all|any|not: ...}``."""
    if isinstance(value, dict):
        if "type" in value:
            tag = value["type"]
            return tag if isinstance(tag, str) else repr(tag)
        for key, tag in _COMBINATOR_KEYS.items():
            if key in value:
                return tag
        return None
    return getattr(type(value), "TAG", None)


Condition = Annotated[
    Annotated[SourceCountryIn, Tag(SourceCountryIn.TAG)]
    | Annotated[SourceSubdivisionIn, Tag(SourceSubdivisionIn.TAG)]
    | Annotated[SourceCountryKnown, Tag(SourceCountryKnown.TAG)]
    | Annotated[SourceIpKindIn, Tag(SourceIpKindIn.TAG)]
    | Annotated[SourceIpInCidr, Tag(SourceIpInCidr.TAG)]
    | Annotated[SourceTagIn, Tag(SourceTagIn.TAG)]
    | Annotated[TargetInInventory, Tag(TargetInInventory.TAG)]
    | Annotated[TargetHasAccelerator, Tag(TargetHasAccelerator.TAG)]
    | Annotated[TargetExportClassIn, Tag(TargetExportClassIn.TAG)]
    | Annotated[OutcomeIn, Tag(OutcomeIn.TAG)]
    | Annotated[MethodIn, Tag(MethodIn.TAG)]
    | Annotated[ProviderIn, Tag(ProviderIn.TAG)]
    | Annotated[AccountIn, Tag(AccountIn.TAG)]
    | Annotated[PrincipalMatches, Tag(PrincipalMatches.TAG)]
    | Annotated[AttributeEquals, Tag(AttributeEquals.TAG)]
    | Annotated[ContextEquals, Tag(ContextEquals.TAG)]
    | Annotated[ContextIn, Tag(ContextIn.TAG)]
    | Annotated[ContextCountryIn, Tag(ContextCountryIn.TAG)]
    | Annotated[RiskScore, Tag(RiskScore.TAG)]
    | Annotated[AllOf, Tag(AllOf.TAG)]
    | Annotated[AnyOf, Tag(AnyOf.TAG)]
    | Annotated[NotOf, Tag(NotOf.TAG)],
    Discriminator(_condition_tag),
]

for _model in (RiskSignal, RiskScore, AllOf, AnyOf, NotOf):
    _model.model_rebuild()


class Cap(_Strict):
    """Lower the severity to ``max`` when ``when`` holds (e.g. denied attempts)."""

    when: Condition
    max: Severity
    reason: NonEmpty


class PolicyException(_Strict):
    """An approved exception; it stops applying after ``expires`` (inclusive)."""

    id: NonEmpty
    owner: NonEmpty
    reason: NonEmpty
    approver: str | None = None
    expires: date
    match: Condition


class Policy(_Strict):
    """One rule: what matches, how severe, with caps, indeterminacy and exceptions."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: NonEmpty
    severity: Severity
    description: str = ""
    citations: tuple[NonEmpty, ...] = ()
    match: Condition
    caps: tuple[Cap, ...] = ()
    indeterminate_when: Condition | None = None
    exceptions: tuple[PolicyException, ...] = ()


class Pack(_Strict):
    """A versioned pack of policies; ``first`` = at most one decision per session."""

    pack: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: NonEmpty
    description: str = ""
    match_mode: Literal["first", "all"] = "first"
    policies: tuple[Policy, ...] = Field(min_length=1)


def iter_conditions(
    cond: BaseModel, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], BaseModel]]:
    """Every condition in the tree under ``cond`` with its YAML key path."""
    yield path, cond
    if isinstance(cond, AllOf):
        for i, sub in enumerate(cond.all_):
            yield from iter_conditions(sub, (*path, "all", i))
    elif isinstance(cond, AnyOf):
        for i, sub in enumerate(cond.any_):
            yield from iter_conditions(sub, (*path, "any", i))
    elif isinstance(cond, NotOf):
        yield from iter_conditions(cond.not_, (*path, "not"))
    elif isinstance(cond, RiskScore):
        for i, sig in enumerate(cond.signals):
            yield from iter_conditions(sig.when, (*path, "signals", i, "when"))


def pack_json_schema() -> dict[str, Any]:
    """JSON Schema of a pack file (for editors and ``chipwarden policy schema``)."""
    return Pack.model_json_schema(by_alias=True)
