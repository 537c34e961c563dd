"""``chipwarden data update --from DIR``: recognise, date, validate and register files."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agent.data_update import update_reputation_data
from agent.enrich.reputation import Reputation
from agent.enrich.reputation_data import read_manifest
from agent.errors import UsageError
from agent.models import IpIntel, IpKind

DATA = Path(__file__).resolve().parents[2] / "data" / "reputation"
TODAY = date(2026, 7, 1)


def _update(src: Path, dest: Path, default: date | None = None):  # type: ignore[no-untyped-def]
    return update_reputation_data(
        source=src, target=dest, default_date=default, today=lambda: TODAY
    )


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    src = tmp_path / "incoming"
    src.mkdir()
    for name in (
        "aws-ip-ranges-sample.json",
        "gcp-cloud-sample.json",
        "exit-addresses-sample.txt",
    ):
        shutil.copy(DATA / name, src / name)
    (src / "torbulkexitlist-2026-06-29.txt").write_text("185.220.101.77\n2a0b:f4c2::77\n")
    (src / "notes.md").write_text("# not data\n")
    return src


def test_each_file_is_recognised_by_content_and_dated(incoming: Path, tmp_path: Path) -> None:
    report = _update(incoming, tmp_path / "data")

    got = {(e.kind, e.date) for e in report.imported}
    assert got == {
        ("aws-ip-ranges", date(2025, 7, 24)),  # createDate
        ("gcp-cloud", date(2025, 7, 25)),  # creationTime
        ("tor-exit-addresses", date(2026, 6, 30)),  # Downloaded
        ("tor-bulk", date(2026, 6, 29)),  # date in the file name
    }
    assert report.skipped == [f"{incoming / 'notes.md'}: not a reputation file"]
    assert {e.kind for e in read_manifest(tmp_path / "data")} == {k for k, _ in got}


def test_the_imported_folder_tags_addresses(incoming: Path, tmp_path: Path) -> None:
    _update(incoming, tmp_path / "data")
    rep = Reputation.load([tmp_path / "data"])
    intel = IpIntel(ip="185.220.101.77", kind=IpKind.PUBLIC, normalized="185.220.101.77")

    [tagged] = rep.tag([intel], [datetime(2026, 7, 1, tzinfo=UTC)])

    assert tagged.tags == ("tor-exit",)
    assert "torbulkexitlist-2026-06-29.txt, imported 2026-07-01" in tagged.sources[-1]


def test_an_undated_bulk_list_is_rejected_unless_a_date_is_given(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "torbulkexitlist").write_text("185.220.101.77\n")

    rejected = _update(src, tmp_path / "a")
    accepted = _update(src, tmp_path / "b", default=date(2026, 6, 1))

    assert rejected.imported == [] and "cannot date this Tor bulk exit list" in rejected.rejected[0]
    assert [e.date for e in accepted.imported] == [date(2026, 6, 1)]


def test_a_malformed_file_is_rejected_with_its_line_and_the_rest_imported(
    incoming: Path, tmp_path: Path
) -> None:
    (incoming / "asn-2026-06-01.csv").write_text(
        "asn,tag,org\nAS4134,cn-cloud:x,ok\nabc,hosting,x\n"
    )

    report = _update(incoming, tmp_path / "data")

    assert report.rejected == [f"{incoming / 'asn-2026-06-01.csv'}:3: asn: not a number: 'abc'"]
    assert len(report.imported) == 4


def test_the_newest_cloud_range_file_replaces_older_ones(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    old = (DATA / "aws-ip-ranges-sample.json").read_text()
    (src / "aws-old.json").write_text(old)
    (src / "aws-new.json").write_text(
        old.replace("2025-07-24-20-23-14", "2026-01-01-00-00-00").replace(
            "18.206.107.24/29", "18.206.108.0/29"
        )
    )
    _update(src, tmp_path / "data")
    rep = Reputation.load([tmp_path / "data"])
    ip = "18.206.107.30"

    [intel] = rep.tag([IpIntel(ip=ip, kind=IpKind.PUBLIC, normalized=ip)])

    assert intel.tags == ()  # only in the older file


def test_a_folder_without_reputation_files_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello\n")

    with pytest.raises(UsageError, match="no reputation files found"):
        _update(tmp_path, tmp_path / "data")
