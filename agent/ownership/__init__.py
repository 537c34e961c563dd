"""Account ownership (EAR headquarters test input) and Consolidated Screening List matching."""

from agent.ownership.context import OwnershipContext
from agent.ownership.owners import HEADER, OwnershipIndex, OwnershipRecord, load_ownership
from agent.ownership.screening import CslEntry, Screener, ScreeningHit, load_csl, normalize_name

__all__ = [
    "HEADER",
    "CslEntry",
    "OwnershipContext",
    "OwnershipIndex",
    "OwnershipRecord",
    "Screener",
    "ScreeningHit",
    "load_csl",
    "load_ownership",
    "normalize_name",
]
