"""Config file contract: strict keys with paths and lines, relative paths, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.assembly import build_plugins
from agent.config import load_config
from agent.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chipwarden.yaml"
    path.write_text(text)
    return path


def test_unknown_top_level_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "store: sqlite:///x.db\npolicys: [builtin:export-controls]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert f"{path}:2: policys: unknown key" in str(info.value)


def test_unknown_key_inside_a_source_names_the_source_path_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "sources:\n"
        "  - type: cloudtrail-files\n"
        "    paths: ['logs/*.json']\n"
        "    bucket: nope\n",
    )
    config, doc = load_config(path, environ={})
    with pytest.raises(ConfigError) as info:
        build_plugins(config, doc=doc, clock=lambda: None)  # type: ignore[arg-type,return-value]
    assert f"{path}:4: sources[0].bucket: unknown key" in str(info.value)


def test_unknown_source_type_lists_the_installed_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources:\n  - type: cloudtrial-files\n    paths: [x]\n")
    config, doc = load_config(path, environ={})
    with pytest.raises(ConfigError) as info:
        build_plugins(config, doc=doc, clock=lambda: None)  # type: ignore[arg-type,return-value]
    message = str(info.value)
    assert "sources[0].type" in message and "cloudtrail-files" in message


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "store: sqlite:///state/cw.db\n"
        "geo: {city_db: geo/city.mmdb}\n",
    )
    config, _ = load_config(path, environ={})
    assert config.store == f"sqlite:///{tmp_path}/state/cw.db"
    assert config.geo.city_db == tmp_path / "geo" / "city.mmdb"


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    path = _write(tmp_path, "store: sqlite:///file.db\n")
    env = {"CHIPWARDEN_STORE": "sqlite:////tmp/env.db", "CHIPWARDEN_GEO__ASN_DB": "/x/asn.mmdb"}
    config, _ = load_config(path, environ=env)
    assert config.store == "sqlite:////tmp/env.db"
    assert config.geo.asn_db == Path("/x/asn.mmdb")
    config, _ = load_config(path, environ=env, overrides={"store": "sqlite:////tmp/flag.db"})
    assert config.store == "sqlite:////tmp/flag.db"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "store: sqlite:///x.db\nsources: [\n")
    with pytest.raises(Exception) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value) and "invalid YAML" in str(info.value)
