"""CloudTrail files on disk: every delivery shape, bad records, bad files, windows."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import registry
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError
from agent.models import AccessMethod
from providers.aws.files import CloudTrailFilesConfig, CloudTrailFilesSource

from .conftest import NOW, load_records, make_ctx

SSM = "stratus-red-team__aws.execution.ssm-start-session.json"
EIC = "stratus-red-team__aws.lateral-movement.ec2-instance-connect.json"


def source_for(*patterns: str | Path) -> CloudTrailFilesSource:
    config = CloudTrailFilesConfig(type="cloudtrail-files", paths=[str(p) for p in patterns])
    return CloudTrailFilesSource(name="trail", config=config)


def collect(src: CloudTrailFilesSource, ctx: CollectContext) -> list[SessionBatch]:
    return list(src.sessions(ctx))


def assert_reconciles(ctx: CollectContext, batches: list[SessionBatch]) -> None:
    sessions = sum(len(b.sessions) for b in batches)
    assert ctx.read == sessions + ctx.ignored + ctx.quarantined_total


def test_gzipped_s3_delivery_object_is_detected_by_magic_bytes(
    tmp_path: Path, ctx: CollectContext
) -> None:
    records = load_records(SSM)
    path = tmp_path / "123_CloudTrail_us-east-1_20240801T1220Z_abc.json"  # no .gz suffix
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    (batch,) = collect(source_for(path), ctx)
    assert batch.unit == str(path)
    assert len(batch.sessions) == 3
    assert all(s.method is AccessMethod.SSM_SESSION for s in batch.sessions)
    assert all(s.ended_at is not None and s.ended_at >= s.started_at for s in batch.sessions)
    assert (ctx.read, ctx.ignored) == (len(records), len(records) - 3)
    assert batch.sessions[0].evidence[0].locator == str(path)


def test_bare_list_single_record_and_json_lines_are_all_read(
    tmp_path: Path, ctx: CollectContext
) -> None:
    eic = load_records(EIC)
    (tmp_path / "a_list.json").write_text(json.dumps(eic))
    (tmp_path / "b_single.json").write_text(
        json.dumps(load_records("chipwarden__OpenTunnel.json")[0])
    )
    (tmp_path / "c_lines.jsonl").write_text("\n".join(json.dumps(r) for r in eic) + "\n\n")
    batches = collect(source_for(tmp_path / "*"), ctx)
    assert [Path(b.unit).name for b in batches] == ["a_list.json", "b_single.json", "c_lines.jsonl"]
    assert [len(b.sessions) for b in batches] == [3, 1, 3]
    assert batches[2].sessions[1].evidence[0].position == "line 2"
    assert batches[0].sessions[1].evidence[0].position == "record 1"


def test_cloudwatch_events_wrapper_is_unwrapped(tmp_path: Path, ctx: CollectContext) -> None:
    record = load_records(EIC)[0]
    wrapped = {
        "version": "0",
        "id": "e1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2-instance-connect",
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "detail": record,
    }
    (tmp_path / "eventbridge.json").write_text(json.dumps([wrapped]))
    (batch,) = collect(source_for(tmp_path / "eventbridge.json"), ctx)
    (session,) = batch.sessions
    assert session.key == record["eventID"]
    assert session.instance_id == record["requestParameters"]["instanceId"]


def test_digest_files_are_skipped(tmp_path: Path, ctx: CollectContext) -> None:
    digest = tmp_path / "AWSLogs/1/CloudTrail-Digest/us-east-1/2024/08/01/digest.json.gz"
    digest.parent.mkdir(parents=True)
    digest.write_bytes(b"\x1f\x8b not really gzip")
    logs = tmp_path / "AWSLogs/1/CloudTrail/us-east-1/2024/08/01/log.json"
    logs.parent.mkdir(parents=True)
    logs.write_text(json.dumps({"Records": load_records(EIC)}))
    batches = collect(source_for(tmp_path / "AWSLogs/**/*.json*"), ctx)
    assert [b.unit for b in batches] == [str(logs)]
    assert ctx.scope_errors == []


def test_bad_record_is_quarantined_with_file_and_index_while_the_rest_is_read(
    tmp_path: Path, ctx: CollectContext
) -> None:
    records: list[Any] = load_records(EIC)
    records.insert(1, {"eventName": "SendSSHPublicKey", "eventTime": "not-a-time"})
    records.append("a string, not a record")
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"Records": records}))
    batches = collect(source_for(path), ctx)
    assert len(batches[0].sessions) == 3
    assert [(q.locator, q.position) for q in ctx.quarantined] == [
        (str(path), "record 1"),
        (str(path), "record 4"),
    ]
    assert "eventTime 'not-a-time'" in ctx.quarantined[0].reason
    assert ctx.quarantined[0].source == "trail"
    assert_reconciles(ctx, batches)


def test_bad_json_line_is_quarantined_and_later_lines_are_read(
    tmp_path: Path, ctx: CollectContext
) -> None:
    eic = load_records(EIC)
    lines = [json.dumps(eic[0]), '{"eventName": "SendSSHPublicKey", ', json.dumps(eic[1])]
    path = tmp_path / "trail.jsonl"
    path.write_text("\n".join(lines))
    batches = collect(source_for(path), ctx)
    assert len(batches[0].sessions) == 2
    assert [q.position for q in ctx.quarantined] == ["line 2"]
    assert ctx.quarantined[0].reason.startswith("invalid JSON")
    assert_reconciles(ctx, batches)


def test_corrupt_gzip_is_a_scope_error_and_the_next_file_is_still_read(
    tmp_path: Path, ctx: CollectContext
) -> None:
    good = gzip.compress(json.dumps({"Records": load_records(EIC)}).encode())
    (tmp_path / "a_broken.json.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "b_good.json.gz").write_bytes(good)
    batches = collect(source_for(tmp_path / "*.json.gz"), ctx)
    assert [Path(b.unit).name for b in batches] == ["b_good.json.gz"]
    (error,) = ctx.scope_errors
    assert (error.code, error.scope, error.source) == (
        "corrupt_gzip",
        str(tmp_path / "a_broken.json.gz"),
        "trail",
    )
    assert error.remediation


def test_invalid_json_file_is_a_scope_error_naming_line_and_column(
    tmp_path: Path, ctx: CollectContext
) -> None:
    path = tmp_path / "truncated.json"
    path.write_text(json.dumps({"Records": load_records(EIC)}, indent=2)[:300])
    assert collect(source_for(path), ctx) == []
    (error,) = ctx.scope_errors
    assert error.code == "invalid_json"
    assert "line" in error.message and "column" in error.message
    assert ctx.read == 0


def test_non_utf8_and_scalar_documents_are_scope_errors(
    tmp_path: Path, ctx: CollectContext
) -> None:
    (tmp_path / "a.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "b.json").write_text("42")
    (tmp_path / "c.json").write_text('{"Records": {"eventName": "x"}}')
    collect(source_for(tmp_path / "*.json"), ctx)
    assert [e.code for e in ctx.scope_errors] == [
        "bad_encoding",
        "unsupported_shape",
        "unsupported_shape",
    ]


def test_glob_matching_nothing_is_a_scope_error_not_a_clean_audit(
    tmp_path: Path, ctx: CollectContext
) -> None:
    (tmp_path / "real.json").write_text(json.dumps(load_records(EIC)))
    batches = collect(source_for(tmp_path / "missing/*.json", tmp_path / "real.json"), ctx)
    assert len(batches) == 1
    (error,) = ctx.scope_errors
    assert (error.code, error.scope) == ("no_files", str(tmp_path / "missing/*.json"))


def test_a_folder_path_reads_log_files_below_it(tmp_path: Path, ctx: CollectContext) -> None:
    nested = tmp_path / "2024/08/01"
    nested.mkdir(parents=True)
    (nested / "x.json").write_text(json.dumps(load_records(EIC)))
    (nested / "notes.txt").write_text("not a log")
    batches = collect(source_for(tmp_path), ctx)
    assert [Path(b.unit).name for b in batches] == ["x.json"]


def test_explicit_window_ignores_records_outside_it(tmp_path: Path) -> None:
    records = load_records(SSM)  # 2024-08-01 12:18:5x .. 12:19:18
    path = tmp_path / "ssm.json"
    path.write_text(json.dumps(records))
    since = datetime(2024, 8, 1, 12, 19, 17, tzinfo=UTC)
    ctx = make_ctx(since=since, until=NOW, explicit=True)
    (batch,) = collect(source_for(path), ctx)
    inside = [r for r in records if datetime.fromisoformat(r["eventTime"]) >= since]
    assert {s.key for s in batch.sessions} == {
        r["eventID"] for r in inside if r["eventName"] == "StartSession"
    }
    assert 0 < len(batch.sessions) < 3
    assert_reconciles(ctx, [batch])


def test_without_explicit_window_whole_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "ssm.json"
    path.write_text(json.dumps(load_records(SSM)))
    ctx = make_ctx(since=NOW, until=NOW, explicit=False)
    (batch,) = collect(source_for(path), ctx)
    assert len(batch.sessions) == 3


def test_progress_is_reported_per_file(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    ctx = make_ctx()
    ctx.on_progress = lambda unit, n: seen.append((unit, n))
    (tmp_path / "a.json").write_text(json.dumps(load_records(EIC)))
    (tmp_path / "b.json").write_text("{")
    collect(source_for(tmp_path / "*.json"), ctx)
    assert seen == [(str(tmp_path / "a.json"), 3), (str(tmp_path / "b.json"), 0)]


def test_from_config_resolves_relative_globs_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/t.json").write_text(json.dumps(load_records(EIC)))
    env = SourceEnv(name="trail", base_dir=tmp_path, clock=lambda: NOW)
    cls = registry.sources.load("cloudtrail-files")
    src = cls.from_config({"type": "cloudtrail-files", "paths": ["logs/**/*.json"]}, env=env)
    assert src.name == "trail"
    assert [Path(b.unit) for b in src.sessions(make_ctx())] == [tmp_path / "logs/t.json"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "cloudtrail-files", "paths": []}, "paths"),
        ({"type": "cloudtrail-files", "paths": ["x"], "bucket": "b"}, "bucket: unknown key"),
        ({"type": "aws", "paths": ["x"]}, "type"),
    ],
)
def test_invalid_config_is_a_config_error_naming_the_key(raw: dict[str, Any], message: str) -> None:
    env = SourceEnv(name="trail", base_dir=Path("/"), clock=lambda: NOW)
    with pytest.raises(ConfigError, match=message):
        CloudTrailFilesSource.from_config(raw, env=env)


def test_a_file_over_the_size_limit_is_a_scope_error_not_read(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import providers.aws.fastscan as fastscan
    from agent.contracts import AuditWindow, CollectContext, SourceEnv
    from providers.aws.files import CloudTrailFilesSource

    monkeypatch.setattr(fastscan, "MAX_FILE_BYTES", 1024)
    (tmp_path / "big.json").write_text('{"Records": []}' + " " * 4096)
    (tmp_path / "ok.json").write_text('{"Records": []}')
    source = CloudTrailFilesSource.from_config(
        {"type": "cloudtrail-files", "paths": [str(tmp_path / "*.json")]},
        env=SourceEnv(name="ct", base_dir=tmp_path, clock=lambda: None),  # type: ignore[arg-type,return-value]
    )
    ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: None)  # type: ignore[arg-type,return-value]

    batches = list(source.sessions(ctx))

    assert [e.scope for e in ctx.scope_errors] == [str(tmp_path / "big.json")]
    assert "over the 1024-byte limit" in ctx.scope_errors[0].message
    assert [b.unit for b in batches] == [str(tmp_path / "ok.json")]
