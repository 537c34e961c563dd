"""ISO 3166-1 alpha-3 -> alpha-2 for VPC flow-log ``src_location.country`` (e.g. ``usa``).

Uses the bundled table ``data/iso3166_alpha3.json`` (249 codes, generated from pycountry
26.2.16) rather than pycountry itself, so results never depend on what is installed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

__all__ = ["to_alpha2"]


@cache
def _table() -> dict[str, str]:
    text = resources.files("providers.gcp.data").joinpath("iso3166_alpha3.json").read_text()
    codes: dict[str, str] = json.loads(text)["codes"]
    return codes


def to_alpha2(code: str | None) -> str | None:
    """``"rus"`` -> ``"RU"``; an alpha-2 input is upper-cased; unknown or empty -> ``None``."""
    if not code:
        return None
    value = code.strip().upper()
    if len(value) == 2 and value.isalpha():
        return value
    return _table().get(value)
