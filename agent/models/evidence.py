"""Where a fact came from: a file position or an API call, never the raw blob."""

from __future__ import annotations

from pydantic import field_validator

from agent.models.base import Frozen, clean_value

__all__ = ["EvidenceRef"]


class EvidenceRef(Frozen):
    """Pointer to the record behind a session or instance.

    ``kind`` is ``file`` (``locator`` = path, ``position`` = line or record index) or ``api``
    (``locator`` = service:operation, ``position`` = request or event id).
    """

    kind: str
    locator: str
    position: str | None = None
    event_id: str | None = None
    event_name: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return clean_value(value)

    def __str__(self) -> str:
        pos = f":{self.position}" if self.position else ""
        name = f" {self.event_name}" if self.event_name else ""
        return f"{self.kind}:{self.locator}{pos}{name}"
