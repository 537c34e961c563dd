"""``chipwarden watch``: exit codes, and SIGTERM drains the batch in flight and saves offsets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.cli import run
from agent.models import RunStatus
from agent.watch import stop_on_signals
from tests.agent.watch.watchbed import CN_IP, WatchBed, accepted, append

GUARD_SECONDS = 60
REPO = Path(__file__).resolve().parents[3]


def test_once_reads_what_is_there_and_exits_zero(bed: WatchBed) -> None:
    append(bed.log, accepted("ann", CN_IP, pid=7))
    assert run(["watch", "--config", str(bed.write_config()), "--once"]) == 0
    assert [s.principal for s in bed.sessions()] == ["ann"]


def test_once_exits_4_when_records_were_quarantined(bed: WatchBed) -> None:
    append(bed.log, "garbage")
    assert run(["watch", "--config", str(bed.write_config()), "--once"]) == 4


def test_a_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    assert run(["watch", "--config", str(tmp_path / "nope.yaml"), "--once"]) == 2


def test_an_invalid_poll_interval_is_rejected(bed: WatchBed) -> None:
    code = run(["watch", "--config", str(bed.write_config()), "--poll-interval", "0"])
    assert code == 2


def test_stop_on_signals_turns_sigint_into_the_stop_event() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(threading.Event()) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(GUARD_SECONDS)
    assert signal.getsignal(signal.SIGINT) is before


def _checkpoint(bed: WatchBed) -> dict[str, int] | None:
    if not (bed.root / "watch.db").exists():
        return None
    try:
        return bed.checkpoint()["position"]  # type: ignore[no-any-return]
    except AssertionError:
        return None


def _wait_for_line(bed: WatchBed, proc: subprocess.Popen[bytes], line: int) -> None:
    pause = threading.Event()
    for _ in range(GUARD_SECONDS * 20):
        position = _checkpoint(bed)
        if position is not None and position["line"] >= line:
            return
        assert proc.poll() is None, "chipwarden watch exited early"
        pause.wait(0.05)
    raise AssertionError(f"the watch never committed line {line}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_drains_the_batch_in_flight_saves_offsets_and_exits_zero(bed: WatchBed) -> None:
    burst = [accepted(f"u{i}", CN_IP, pid=1000 + i, port=2000 + i) for i in range(1_000)]
    append(bed.log, *burst)
    config = bed.write_config()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-c",
            "from agent.cli import main; main()",
            "watch",
            "--config",
            str(config),
            "--batch-bytes",
            "4096",
            "--log-format",
            "json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_line(bed, proc, 2)  # a first batch is committed: the watch is mid-file
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=GUARD_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    events = [json.loads(line)["event"] for line in err.decode().splitlines() if line[:1] == "{"]
    assert "watch_stopped" in events
    position = _checkpoint(bed)
    assert position is not None
    committed = position["line"] - 1  # lines covered by the saved offset
    assert len(bed.sessions()) == committed  # the saved offset and the stored sessions agree
    with bed.store() as db:
        (stopped,) = [r for r in db.list_runs() if r.id.startswith("watch-")]
    assert stopped.status is RunStatus.COMPLETE and stopped.finished_at is not None
    assert stopped.counts.read == committed
    resumed = bed.run()  # a new process picks up exactly after the last committed line
    assert resumed.counts.read == len(burst) - committed
    assert len(bed.sessions()) == len(burst)
