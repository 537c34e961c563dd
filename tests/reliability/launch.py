"""Run one ``chipwarden audit`` process and SIGKILL it at a chosen point (no chipwarden imports).

Shared by the harness (console-script processes) and ``zygote.py`` (forked processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MARKER = b'"event": "audit_started"'
COMMIT = b'"event": "store_batch_committed"'
TIMEOUT = 120.0


def audit_argv(config: Path, url: str) -> list[str]:
    """Arguments after ``chipwarden``: JSON logs at info so ``audit_started`` is visible."""
    return [
        "audit",
        "-c",
        str(config),
        "--store",
        url,
        "-f",
        "jsonl",
        "-o",
        os.devnull,
        "--no-progress",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]


@dataclass
class Outcome:
    """One audit process: exit code, whether it was killed, and when (seconds since spawn)."""

    exit_code: int
    killed: bool
    started_after: float | None
    ran_for: float
    commits: int = 0  # batch commits the process logged


class Child(Protocol):
    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def wait(self) -> int: ...


class PopenChild:
    """A child started with ``subprocess.Popen``."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)


class PidChild:
    """A child this process forked (only its parent may reap it, so its pid stays valid)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        if self.code is None:
            self.code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.code


Kill = tuple[str, int, float]
"""``("startup", 0, delay)``: SIGKILL ``delay`` s after spawn. ``("work", n, delay)``: after the
``audit_started`` event and ``n`` batch commits, wait ``delay`` s more, then SIGKILL."""


class LogWatch:
    """Follows a JSON log file for the start marker and committed-batch events."""

    def __init__(self, log: Path) -> None:
        self._tail = log.open("rb")
        self._seen = b""
        self.started = False
        self.commits = 0

    def poll(self) -> None:
        data = self._seen + self._tail.read()
        lines = data.split(b"\n")
        self._seen = lines.pop()  # an unfinished last line waits for the next poll
        for line in lines:
            self.started = self.started or MARKER in line
            self.commits += COMMIT in line

    def close(self) -> None:
        self._tail.close()


def wait_for(child: Child, watch: LogWatch, spawned: float, commits: int) -> float | None:
    """Seconds until ``audit_started`` and ``commits`` commits were logged; None if it exited."""
    while time.monotonic() - spawned < TIMEOUT:
        watch.poll()
        if watch.started and watch.commits >= commits:
            return time.monotonic() - spawned
        if child.poll() is not None:
            return None
        time.sleep(0.001)
    return None


def supervise(child: Child, *, log: Path, spawned: float, kill: Kill | None) -> Outcome:
    """Wait for ``child``, SIGKILLing it at the point ``kill`` names (see ``Kill``)."""
    phase, commits, delay = kill or ("work", 0, 0.0)
    watch = LogWatch(log)
    try:
        reached = None if phase == "startup" else wait_for(child, watch, spawned, commits)
        killed = False
        if kill is not None:
            origin = spawned if phase == "startup" else spawned + (reached or 0.0)
            time.sleep(max(0.0, origin + delay - time.monotonic()))
            if child.poll() is None:
                child.kill()
                killed = True
        code = child.wait()
        watch.poll()
        started = reached if phase != "startup" and not commits else None
        return Outcome(code, killed, started, time.monotonic() - spawned, watch.commits)
    finally:
        watch.close()


def log_tail(log: Path, lines: int = 6) -> str:
    """The last non-JSON lines of a run's stderr (errors and tracebacks), for messages."""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    plain = [line for line in text if not line.startswith("{")]
    return " | ".join(plain[-lines:])
