"""How the harness starts ``chipwarden audit``: the console script, or forked from a server.

``ScriptLauncher`` runs the installed console script (a fresh interpreter per run).
``ZygoteLauncher`` sends each run to ``zygote.py``, which imported chipwarden once and forks a
child that calls the same ``agent.cli.run(argv)``: ~1 s of imports saved per run.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tests.reliability.launch import Kill, Outcome, PopenChild, audit_argv, supervise
from tests.reliability.workload import Workload

REPO = Path(__file__).resolve().parents[2]
CHIPWARDEN = Path(sys.executable).with_name("chipwarden")


def env_with_repo() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH (the harness source lives in tests/)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_probe(module: str, *args: str) -> dict[str, object]:
    """Run a memory probe (``python -m tests.reliability.<module> ARGS``) in a fresh process
    and return the JSON it prints (peak RSS before/after, what the source reported)."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own probe module and files
        [sys.executable, "-m", f"tests.reliability.{module}", *args],
        capture_output=True,
        env=env_with_repo(),
        cwd=REPO,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


class Launcher(Protocol):
    """Runs one ``chipwarden audit`` (optionally SIGKILLed) and reports its Outcome."""

    def run(
        self, workload: Workload, url: str, *, log: Path, kill: Kill | None = None
    ) -> Outcome: ...


class ScriptLauncher:
    """The installed ``chipwarden`` console script, one fresh interpreter per run."""

    def run(self, workload: Workload, url: str, *, log: Path, kill: Kill | None = None) -> Outcome:
        with log.open("wb") as err:
            spawned = time.monotonic()
            proc = subprocess.Popen(  # noqa: S603
                [str(CHIPWARDEN), *audit_argv(workload.config, url)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env_with_repo(),
                cwd=workload.root,
            )
            return supervise(PopenChild(proc), log=log, spawned=spawned, kill=kill)


class ZygoteLauncher:
    """Forks each run from a process that imported chipwarden once (see zygote.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env_with_repo(),
            cwd=REPO,
        )
        assert json.loads(self._read()) == {"ready": True}

    def _read(self) -> bytes:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died")
        return line

    def run(self, workload: Workload, url: str, *, log: Path, kill: Kill | None = None) -> Outcome:
        req = {
            "argv": audit_argv(workload.config, url),
            "cwd": str(workload.root),
            "log": str(log),
            "kill": list(kill) if kill else None,
        }
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(req).encode() + b"\n")
            self._proc.stdin.flush()
            return Outcome(**json.loads(self._read()))

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


class LauncherPool:
    """``workers`` fork servers; a trial borrows one for its whole duration."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._free: queue.Queue[ZygoteLauncher] = queue.Queue()
        self._all: list[ZygoteLauncher] = []

    def __enter__(self) -> LauncherPool:
        for _ in range(self.workers):
            launcher = ZygoteLauncher()
            self._all.append(launcher)
            self._free.put(launcher)
        return self

    def __exit__(self, *_exc: object) -> None:
        for launcher in self._all:
            launcher.close()

    @contextmanager
    def borrow(self) -> Iterator[ZygoteLauncher]:
        launcher = self._free.get()
        try:
            yield launcher
        finally:
            self._free.put(launcher)
