"""Chip catalog: canonical accelerator ids -> computed ECCN 3A090 classification.

The inputs (formats, dense TOPS, bits, die area, datacenter flag) and the rule's thresholds
live in ``policies/data/chips.yaml``; this module only applies the Oct 2023 rule to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import format_validation_error
from agent.errors import PolicyError, UsageError
from agent.models import ExportClassification
from agent.yamlio import load_yaml

__all__ = ["DEFAULT_CHIPS_PATH", "ChipCatalog", "ChipEntry", "ChipFormat", "Rule3A090"]

log = structlog.get_logger(__name__)

DEFAULT_CHIPS_PATH = Path(__file__).parent / "data" / "chips.yaml"

ExportClass = Literal["3A090.a", "3A090.b", "not-controlled", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChipFormat(_Strict):
    """One number format a chip supports, with its dense (non-sparse) throughput."""

    format: str
    dense_tops: float = Field(gt=0)
    bits: int = Field(gt=0, le=64)

    @property
    def tpp(self) -> float:
        return self.dense_tops * self.bits


class ChipEntry(_Strict):
    """A chip model's classification inputs, with sources and how sure we are of them."""

    vendor: str
    name: str
    datacenter: bool
    formats: tuple[ChipFormat, ...] = ()
    die_area_mm2: float | None = Field(default=None, gt=0)
    sources: tuple[str, ...] = Field(min_length=1)
    verified: bool
    confidence: Literal["V", "S", "C", "E", "U"]
    reference_class: ExportClass | None = None
    notes: tuple[str, ...] = ()

    @property
    def tpp(self) -> float | None:
        """Total processing performance: max over formats of dense TOPS x bits."""
        return max((f.tpp for f in self.formats), default=None)


class Rule3A090(_Strict):
    """Thresholds of the Oct 2023 3A090 rule (data, so a rule change is a data change)."""

    name: str
    citation: str
    confidence: str
    a_tpp: float
    a_min_tpp: float
    a_pd: float
    b_tpp: float
    b_pd: float
    b_alt_pd: float
    note2_tpp: float


class _ChipFile(_Strict):
    schema_version: Literal[1]
    rule: Rule3A090
    chips: dict[str, ChipEntry]


def _num(value: float) -> str:
    """15832.0 -> "15832"; 1042.08 -> "1042.1"."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


class ChipCatalog:
    """The bundled (or a given) chip catalog; implements ``AcceleratorClassifier``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or DEFAULT_CHIPS_PATH
        try:
            doc = load_yaml(self.path)
        except UsageError as exc:
            raise PolicyError([exc.message], hint="fix the chip catalog YAML") from exc
        try:
            data = _ChipFile.model_validate(doc.data)
        except ValidationError as exc:
            problems = format_validation_error(exc, name=str(self.path), lines=doc.lines)
            raise PolicyError(problems, hint="fix the chip catalog YAML") from exc
        bad = [k for k in data.chips if k != k.strip().lower() or " " in k]
        if bad:
            raise PolicyError(
                [f"{doc.where(('chips', k))}: chips.{k}: ids must be lowercase slugs" for k in bad]
            )
        self.rule = data.rule
        self._chips = data.chips
        self._cache: dict[str, ExportClassification] = {}
        log.debug("chip_catalog_loaded", path=str(self.path), chips=len(self._chips))

    def models(self) -> Sequence[str]:
        """Every canonical chip id in the catalog, in file order."""
        return tuple(self._chips)

    def entry(self, model: str) -> ChipEntry | None:
        """The inputs recorded for ``model`` (``None`` if not in the catalog)."""
        return self._chips.get(model.strip().lower())

    def classify(self, model: str) -> ExportClassification:
        """Computed 3A090 class of ``model``; unknown ids give ``unknown`` with a note."""
        cached = self._cache.get(model)
        if cached is None:
            cached = self._classify(model)
            self._cache[model] = cached
        return cached

    def _classify(self, model: str) -> ExportClassification:
        entry = self.entry(model)
        if entry is None:
            return ExportClassification(
                model=model,
                export_class="unknown",
                basis=f"model {model!r} is not in the chip catalog",
                notes=(
                    f"add {model!r} to policies/data/chips.yaml (or fix the provider's mapping)",
                ),
            )
        export_class, basis, pd = self._apply_rule(entry)
        notes = list(entry.notes)
        if not entry.verified:
            notes.append(f"inputs not verified (confidence {entry.confidence}); check the sources")
        return ExportClassification(
            model=model.strip().lower(),
            export_class=export_class,
            tpp=entry.tpp,
            performance_density=pd,
            basis=basis,
            notes=tuple(notes),
            sources=(*entry.sources, f"rule: {self.rule.name}, {self.rule.citation}"),
        )

    def _apply_rule(self, entry: ChipEntry) -> tuple[ExportClass, str, float | None]:
        """(class, human basis with the numbers, performance density or None)."""
        r = self.rule
        tpp = entry.tpp
        if tpp is None:
            return "unknown", "no dense performance figures recorded", None
        t = _num(tpp)
        die = entry.die_area_mm2
        pd = tpp / die if die else None
        if tpp >= r.a_tpp:
            return "3A090.a", f"TPP {t} >= {_num(r.a_tpp)}", pd
        if not entry.datacenter and tpp < r.note2_tpp:
            basis = f"not designed for datacenters and TPP {t} < {_num(r.note2_tpp)} (Note 2)"
            return "not-controlled", basis, pd
        if tpp < r.a_min_tpp:
            return "not-controlled", f"TPP {t} < {_num(r.a_min_tpp)}", pd
        if pd is None:
            return self._unknown_die(tpp)
        p = f"{pd:.2f}"
        if pd >= r.a_pd:
            return "3A090.a", f"TPP {t} >= {_num(r.a_min_tpp)} and PD {p} >= {r.a_pd}", pd
        if tpp >= r.b_tpp and pd >= r.b_pd:
            basis = (
                f"{_num(r.b_tpp)} <= TPP {t} < {_num(r.a_tpp)} and {r.b_pd} <= PD {p} < {r.a_pd}"
            )
            return "3A090.b", basis, pd
        if pd >= r.b_alt_pd:
            basis = f"TPP {t} >= {_num(r.a_min_tpp)} and {r.b_alt_pd} <= PD {p} < {r.a_pd}"
            return "3A090.b", basis, pd
        if tpp < r.b_tpp:
            basis = f"TPP {t} < {_num(r.b_tpp)} and PD {p} < {r.b_alt_pd}"
        else:
            basis = f"TPP {t} >= {_num(r.b_tpp)} but PD {p} < {r.b_pd}"
        return "not-controlled", basis, pd

    def _unknown_die(self, tpp: float) -> tuple[ExportClass, str, None]:
        r = self.rule
        t = _num(tpp)
        if tpp >= r.b_tpp:
            limit = tpp / r.a_pd
            basis = (
                f"{_num(r.b_tpp)} <= TPP {t} < {_num(r.a_tpp)}, die area unknown: at least "
                f"3A090.b for a datacenter part; 3A090.a if die <= {limit:.0f} mm2"
            )
            return "3A090.b", basis, None
        basis = (
            f"{_num(r.a_min_tpp)} <= TPP {t} < {_num(r.b_tpp)} and die area unknown: "
            f"3A090.a if die <= {tpp / r.a_pd:.0f} mm2, 3A090.b if die <= "
            f"{tpp / r.b_alt_pd:.0f} mm2, else not controlled"
        )
        return "unknown", basis, None
