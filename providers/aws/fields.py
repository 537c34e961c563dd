"""Typed accessors for JSON-like API records: wrong types raise ``RecordError`` naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.errors import RecordError

__all__ = ["mapping_field", "scalar", "text_field"]


def mapping_field(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``parent[key]`` as an object (``{}`` when absent or null); ``RecordError`` otherwise."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{key} must be an object, got {type(value).__name__}")
    return value


def text_field(parent: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """``parent[key]`` as text (``None`` when absent or empty); ``RecordError`` otherwise."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{where}{key} must be a string, got {type(value).__name__}")
    return value


def scalar(value: Any) -> str | None:
    """Attribute value as text (CloudTrail mixes "22" and 22); None for absent/compound."""
    if value is None or isinstance(value, Mapping | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
