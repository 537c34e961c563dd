"""Replay the committed hostile-input corpus (tests/data/fuzz) against every parser.

Same property as the fuzzers (``hostile.check``); for the file sources the run's counts must
reconcile and every quarantined record must name its file and position.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.enrich.ipkind import classify_ip
from agent.models import IpKind
from policies.engine import YamlPolicyEngine
from providers.aws.files import CloudTrailFilesSource, Unreadable, parse_document
from providers.aws.normalize import session_from_cloudtrail
from providers.azure.activity import activity_sessions
from providers.gcp.audit import session_from_audit_entry
from providers.gcp.flows import session_from_flow_entry
from providers.kubernetes.audit import KubernetesAuditFilesSource, parse_event_list
from providers.sshd.source import SshdLogSource
from tests.fuzz.hostile import check
from tests.fuzz.test_fuzz_azure import _flows
from tests.fuzz.test_fuzz_gcp import INDEX

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fuzz"
Source = Callable[[SourceEnv, Path], Any]


def _ctx() -> CollectContext:
    return CollectContext(
        window=AuditWindow(since=None, until=None), clock=lambda: datetime.now(UTC)
    )


def _run_source(target: str, make: Source, path: Path, tmp: Path) -> None:
    """One file through its source alone: counts reconcile, quarantine names file+position."""
    copy = tmp / path.name
    shutil.copy(path, copy)
    ctx = _ctx()
    source = make(SourceEnv(name=target, base_dir=tmp, clock=ctx.clock), copy)
    batches = check(target, lambda: list(source.sessions(ctx)))
    if batches is None:
        return
    sessions = sum(len(b.sessions) for b in batches)
    assert ctx.read == sessions + ctx.ignored + ctx.quarantined_total
    for q in ctx.quarantined:
        assert q.locator == str(copy) and q.position and q.reason


def _cloudtrail(env: SourceEnv, path: Path) -> Any:
    return CloudTrailFilesSource.from_config(
        {"type": "cloudtrail-files", "paths": [str(path)]}, env=env
    )


def _sshd(env: SourceEnv, path: Path) -> Any:
    return SshdLogSource.from_config(
        {
            "type": "sshd-log",
            "path": str(path),
            "year": 2026,
            "instance": {"provider": "aws", "account": "1", "instance_id": "i-1"},
        },
        env=env,
    )


def _k8s(env: SourceEnv, path: Path) -> Any:
    return KubernetesAuditFilesSource.from_config(
        {"type": "kubernetes-audit", "cluster": "gpu", "paths": [str(path)]}, env=env
    )


def _files(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if p.is_file())


@pytest.mark.parametrize("path", _files("cloudtrail"), ids=lambda p: p.name)
def test_corpus_cloudtrail_files(path: Path, tmp_path: Path) -> None:
    entries = check(
        "aws.parse_document", lambda: parse_document(path.read_bytes()), allowed=(Unreadable,)
    )
    for position, record, _reason in entries or ():
        check(
            "aws.session",
            lambda r=record, p=position: session_from_cloudtrail(r, locator=str(path), position=p),
        )
    _run_source("aws.files", _cloudtrail, path, tmp_path)


@pytest.mark.parametrize("path", _files("sshd"), ids=lambda p: p.name)
def test_corpus_sshd_logs(path: Path, tmp_path: Path) -> None:
    _run_source("sshd.source", _sshd, path, tmp_path)


@pytest.mark.parametrize("path", _files("k8s"), ids=lambda p: p.name)
def test_corpus_k8s_audit_logs(path: Path, tmp_path: Path) -> None:
    _run_source("k8s.files", _k8s, path, tmp_path)


@pytest.mark.parametrize("path", _files("k8s-webhook"), ids=lambda p: p.name)
def test_corpus_k8s_webhook_bodies(path: Path) -> None:
    check("k8s.webhook", lambda: parse_event_list(path.read_bytes(), cluster="gpu"))


@pytest.mark.parametrize("path", _files("azure-flows"), ids=lambda p: p.name)
def test_corpus_azure_flow_blobs(path: Path) -> None:
    check("azure.flows", lambda: _flows(path.read_bytes()))


@pytest.mark.parametrize("path", _files("azure-activity"), ids=lambda p: p.name)
def test_corpus_azure_activity_events(path: Path) -> None:
    events = [(f"event {i}", e) for i, e in enumerate(json.loads(path.read_text()))]
    result = check(
        "azure.activity", lambda: activity_sessions(events, source="a", subscription_id="s")
    )
    assert result is not None and len(result.quarantined) >= 1


@pytest.mark.parametrize("path", _files("gcp"), ids=lambda p: p.name)
def test_corpus_gcp_entries(path: Path) -> None:
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        check("gcp.audit", lambda e=entry: session_from_audit_entry(e, project="p", index=INDEX))
        check(
            "gcp.flows",
            lambda e=entry: session_from_flow_entry(e, project="p", index=INDEX, admin_ports={22}),
        )


def _ip_cases() -> list[tuple[str, str]]:
    rows = (CORPUS / "ip" / "addresses.tsv").read_text().splitlines()
    cases = []
    for row in rows:
        if row and not row.startswith("#"):
            value, kind = row.split("\t")
            cases.append((value.replace("\\x00", "\x00"), kind))
    return cases


@pytest.mark.parametrize(("value", "kind"), _ip_cases(), ids=repr)
def test_corpus_addresses_classify_as_listed(value: str, kind: str) -> None:
    assert check("ip.classify", lambda: classify_ip(value))[0] is IpKind(kind)


@pytest.mark.parametrize("path", _files("yaml"), ids=lambda p: p.name)
def test_corpus_policy_yaml_is_rejected_with_file_and_line(path: Path) -> None:
    problems = check("policy.validate", lambda: YamlPolicyEngine.validate_files([path]))
    if problems is not None:  # None: a known bug (see KNOWN_BUGS)
        assert problems and all(p.startswith(str(path)) for p in problems)
