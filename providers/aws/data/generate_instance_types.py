"""Regenerate ``instance_types.json`` from moto's bundled DescribeInstanceTypes snapshot.

moto (Apache-2.0) generates ``moto/ec2/resources/instance_types.json.gz`` from the real EC2
``DescribeInstanceTypes`` API. We keep only the accelerator fields of GPU / Neuron /
InferenceAccelerator types, plus the names of every known type (so ``t3.micro`` is known to
have no GPU). Run after upgrading moto and commit the result::

    python -m providers.aws.data.generate_instance_types            # writes the default file
    python -m providers.aws.data.generate_instance_types --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT", "build_table", "main", "moto_source", "render"]

OUTPUT = Path(__file__).with_name("instance_types.json")
_DEVICE_FIELDS = (
    "Name",
    "Manufacturer",
    "Count",
    "LogicalGpuCount",
    "GpuPartitionSize",
    "MemoryInfo",
    "CoreInfo",
)
_SECTIONS = {
    "GpuInfo": "Gpus",
    "NeuronInfo": "NeuronDevices",
    "InferenceAcceleratorInfo": "Accelerators",
}


def moto_source() -> Path:
    """Path of the installed moto's ``instance_types.json.gz`` (moto is not imported)."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("moto is not installed: pip install 'moto[server]'")
    return (
        Path(next(iter(spec.submodule_search_locations))) / "ec2/resources/instance_types.json.gz"
    )


def _trim(info: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, key in _SECTIONS.items():
        devices = (info.get(section) or {}).get(key) or []
        if devices:
            out[section] = {key: [{f: d[f] for f in _DEVICE_FIELDS if f in d} for d in devices]}
    return out


def build_table(raw: Mapping[str, Mapping[str, Any]], *, source: str) -> dict[str, Any]:
    """The committed table: provenance, accelerated types (trimmed), all known type names."""
    accelerated = {name: t for name in sorted(raw) if (t := _trim(raw[name]))}
    families: dict[str, list[str]] = {}
    for name in sorted(raw):
        family, _, size = name.partition(".")
        families.setdefault(family, []).append(size)
    return {
        "provenance": {
            "source": source,
            "licence": "Apache-2.0 (getmoto/moto); moto generates it from the real EC2 "
            "DescribeInstanceTypes API",
            "generator": "providers/aws/data/generate_instance_types.py",
            "fields": "GpuInfo.Gpus[], NeuronInfo.NeuronDevices[], "
            "InferenceAcceleratorInfo.Accelerators[] (accelerator fields only)",
            "types_total": len(raw),
            "types_accelerated": len(accelerated),
        },
        "accelerated": accelerated,
        "known_types": families,
    }


def render(table: Mapping[str, Any]) -> str:
    """Stable JSON text (provenance first, types sorted) so diffs stay reviewable."""
    return json.dumps(table, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: write (or ``--check``) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="instance_types.json[.gz]")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    path: Path = args.source or moto_source()
    data = path.read_bytes()
    raw = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    try:
        label = f"moto {importlib.metadata.version('moto')}: moto/ec2/resources/{path.name}"
    except importlib.metadata.PackageNotFoundError:
        label = str(path.name)
    text = render(build_table(raw, source=label if args.source is None else path.name))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale; re-run without --check", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
