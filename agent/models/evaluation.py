"""What the policy engine is asked about one session."""

from __future__ import annotations

from pydantic import Field

from agent.models.base import Frozen
from agent.models.intel import IpIntel
from agent.models.inventory import ExportClassification, GpuInstance
from agent.models.session import Session

__all__ = ["EvaluationInput"]


class EvaluationInput(Frozen):
    """A session with its resolved target, IP intelligence and chip classifications.

    ``instance`` is ``None`` when the target is not in the inventory; then the session's own
    ``accelerators`` (if the event named an instance type) stand in. ``classes`` maps every
    accelerator model involved to its export classification. ``context`` carries optional
    facts such as account ownership (``owner_hq_country``) that later packs may use.
    """

    session: Session
    instance: GpuInstance | None
    intel: IpIntel
    classes: dict[str, ExportClassification] = Field(default_factory=dict)
    context: dict[str, str] = Field(default_factory=dict)

    @property
    def accelerators(self) -> tuple:  # type: ignore[type-arg]
        return self.instance.accelerators if self.instance else self.session.accelerators
