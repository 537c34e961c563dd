"""``kubernetes-audit`` reads audit log files: rotation, gzip, wrappers, quarantine, windows."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from agent.contracts import CollectContext, SourceEnv
from agent.models import AccessMethod, Outcome, Session
from agent.registry import sources
from providers.kubernetes.audit import KubernetesAuditFilesConfig, KubernetesAuditFilesSource

NODES = {"ml-team/trainer-0": "ip-10-0-1-23.ec2.internal"}
ROTATED = "audit-2026-11-27T09-59-59.000.log"


def _source(tmp_path: Path, config: dict[str, Any]) -> KubernetesAuditFilesSource:
    env = SourceEnv(name="k8s-audit", base_dir=tmp_path, clock=lambda: datetime.now(UTC))
    validated = KubernetesAuditFilesConfig.model_validate(config, context={"base_dir": tmp_path})
    return KubernetesAuditFilesSource.from_config(validated, env=env)


@pytest.fixture
def logs(tmp_path: Path, data_dir: Path) -> Path:
    """The gpu-lab log directory with the rotated file gzip-compressed, as logrotate leaves it."""
    folder = tmp_path / "logs"
    folder.mkdir()
    shutil.copy(data_dir / "audit" / "gpu-lab" / "audit.log", folder / "audit.log")
    raw = (data_dir / "audit" / "gpu-lab" / ROTATED).read_bytes()
    (folder / f"{ROTATED}.gz").write_bytes(gzip.compress(raw))
    return folder


def _collect(source: KubernetesAuditFilesSource, ctx: CollectContext) -> dict[str, list[Session]]:
    return {batch.unit: list(batch.sessions) for batch in source.sessions(ctx)}


def _by_key(batches: dict[str, list[Session]]) -> dict[str, Session]:
    return {s.key: s for sessions in batches.values() for s in sessions}


def test_the_source_is_registered_under_its_entry_point_name() -> None:
    assert sources.load("kubernetes-audit") is KubernetesAuditFilesSource


def test_gpu_lab_logs_yield_one_session_per_request_and_reconcile_counts(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/audit*"], "nodes": NODES})
    ctx = make_ctx()
    batches = _collect(source, ctx)
    assert list(batches) == [str(logs / f"{ROTATED}.gz"), str(logs / "audit.log")]
    sessions = _by_key(batches)
    assert len(sessions) == 11
    assert ctx.read == 20
    assert ctx.quarantined_total == 2
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total
    assert ctx.scope_errors == []
    assert {s.method for s in sessions.values()} == {
        AccessMethod.KUBERNETES_EXEC,
        AccessMethod.KUBERNETES_ATTACH,
        AccessMethod.KUBERNETES_PORT_FORWARD,
        AccessMethod.KUBERNETES_DEBUG,
    }


def test_exec_into_a_mapped_gpu_pod_names_its_node(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/*"], "nodes": NODES})
    sessions = _by_key(_collect(source, make_ctx()))
    exec_ = sessions["0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10001"]
    assert exec_.instance_id == "ip-10-0-1-23.ec2.internal"
    assert exec_.account == "gpu-lab"
    assert exec_.attributes["node_resolved_by"] == "static-map"
    # ResponseStarted (line 1) and ResponseComplete (line 16) collapse into one session
    assert exec_.started_at == datetime(2026, 11, 27, 10, 0, 0, 120533, tzinfo=UTC)
    assert exec_.ended_at == datetime(2026, 11, 27, 10, 52, 13, 4512, tzinfo=UTC)
    assert exec_.evidence[0].position == "line 16"
    unmapped = sessions["0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10012"]
    assert unmapped.instance_id is None
    assert unmapped.attributes["pod"] == "nginx"


def test_a_stream_opened_in_the_rotated_gzip_and_closed_in_the_live_file_is_one_session(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/*"]})
    batches = _collect(source, make_ctx())
    grace = [s for ss in batches.values() for s in ss if s.principal == "grace@example.com"]
    assert len(grace) == 1
    assert grace[0].started_at == datetime(2026, 11, 27, 9, 59, 30, tzinfo=UTC)
    assert grace[0].ended_at == datetime(2026, 11, 27, 10, 1, 2, tzinfo=UTC)
    assert grace[0] in batches[str(logs / "audit.log")]
    heidi = [s for s in batches[str(logs / f"{ROTATED}.gz")]]
    assert [s.principal for s in heidi] == ["heidi@example.com"]


def test_malformed_lines_are_quarantined_with_file_and_line_while_the_rest_is_read(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/audit.log"]})
    ctx = make_ctx()
    sessions = _by_key(_collect(source, ctx))
    assert [(q.source, q.locator, q.position) for q in ctx.quarantined] == [
        ("k8s-audit", str(logs / "audit.log"), "line 14"),
        ("k8s-audit", str(logs / "audit.log"), "line 15"),
    ]
    assert "not valid JSON" in ctx.quarantined[0].reason
    assert "requestReceivedTimestamp" in ctx.quarantined[1].reason
    assert "0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10012" in sessions  # the line after them still counts


def test_explicit_window_keeps_only_sessions_that_started_inside_it(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/*"]})
    ctx = make_ctx(
        since=datetime(2026, 11, 27, 10, 10, tzinfo=UTC),
        until=datetime(2026, 11, 27, 10, 30, tzinfo=UTC),
    )
    sessions = _by_key(_collect(source, ctx))
    assert sorted(s.principal or "" for s in sessions.values()) == [
        "carol@example.com",
        "dave@example.com",
        "dave@example.com",
        "erin@example.com",
        "frank@example.com",
    ]
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "eks_cloudwatch.jsonl",
            {
                "arn:aws:sts::111122223333:assumed-role/GpuAdmin/ivan",
                "kubernetes-admin",
                "judy@example.com",
            },
        ),
        (
            "gke_cloud_audit.jsonl",
            {
                "dev@example.com",
                "intruder@example.net",
                "svc-ci@gpu-lab-project.iam.gserviceaccount.com",
            },
        ),
        ("aks_diagnostic.jsonl", {"masterclient", "kate@example.com"}),
    ],
)
def test_managed_cluster_exports_are_read_through_their_wrappers(
    tmp_path: Path,
    data_dir: Path,
    make_ctx: Callable[..., CollectContext],
    name: str,
    expected: set[str],
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": [str(data_dir / "audit" / name)]})
    ctx = make_ctx()
    sessions = _by_key(_collect(source, ctx))
    assert {s.principal for s in sessions.values()} == expected
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total


def test_managed_cluster_sessions_keep_the_log_format_and_cluster(
    tmp_path: Path, data_dir: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": [str(data_dir / "audit" / "aks_*")]})
    sessions = _by_key(_collect(source, make_ctx()))
    exec_ = sessions["c9d8e7f6-0000-4000-8000-00000000a001"]
    assert exec_.attributes["log_format"] == "aks-diagnostic"
    assert exec_.attributes["log_cluster"] == "gpu-lab"
    assert exec_.source_ip == "20.43.245.209"
    assert exec_.attributes["command"] == "/bin/bash"
    assert exec_.outcome is Outcome.SUCCESS


def test_a_pretty_printed_event_list_file_is_read_as_one_document(
    tmp_path: Path, data_dir: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(
        tmp_path, {"cluster": "gpu-lab", "paths": [str(data_dir / "webhook" / "*.json")]}
    )
    ctx = make_ctx()
    sessions = _by_key(_collect(source, ctx))
    assert {s.principal for s in sessions.values()} == {"liam@example.com", "mia@example.com"}
    [bad] = ctx.quarantined
    assert bad.position == "document items[4]"


def test_a_glob_matching_nothing_is_a_scope_error_not_a_clean_audit(
    tmp_path: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["missing/*.log"]})
    ctx = make_ctx()
    assert _collect(source, ctx) == {}
    [error] = ctx.scope_errors
    assert (error.code, error.scope) == ("no_files", str(tmp_path / "missing/*.log"))


def test_a_corrupt_gzip_is_a_scope_error_and_other_files_are_still_read(
    tmp_path: Path, logs: Path, make_ctx: Callable[..., CollectContext]
) -> None:
    good = gzip.compress(
        b'{"kind":"Event","verb":"get","objectRef":{"resource":"pods","subresource":"exec"}}\n'
    )
    (logs / "audit-broken.log.gz").write_bytes(good[: len(good) // 2])
    source = _source(tmp_path, {"cluster": "gpu-lab", "paths": ["logs/*"]})
    ctx = make_ctx()
    with capture_logs() as logs_seen:
        sessions = _by_key(_collect(source, ctx))
    [error] = ctx.scope_errors
    assert (error.code, error.scope) == ("file_unreadable", str(logs / "audit-broken.log.gz"))
    assert len(sessions) == 11
    assert any(e["event"] == "k8s_audit_file_unreadable" for e in logs_seen)


def test_config_rejects_unknown_keys_bad_node_keys_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="extra"):
        KubernetesAuditFilesConfig.model_validate({"cluster": "c", "paths": ["x"], "pathz": ["y"]})
    with pytest.raises(ValidationError, match="namespace/pod"):
        KubernetesAuditFilesConfig.model_validate(
            {"cluster": "c", "paths": ["x"], "nodes": {"pod": "n"}}
        )
    with pytest.raises(ValidationError, match="at least 1"):
        KubernetesAuditFilesConfig.model_validate({"cluster": "c", "paths": []})


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = KubernetesAuditFilesConfig.model_validate(
        {"cluster": "c", "paths": ["logs/*.log"]}, context={"base_dir": tmp_path}
    )
    assert config.paths == [str(tmp_path / "logs" / "*.log")]
