"""Fork server for the crash harness: import chipwarden once, fork one audit per request.

Each request (a JSON line on stdin: argv, cwd, log, kill) forks a child that runs exactly what
the console script runs (``agent.cli.run(argv)``) with stdout to /dev/null and stderr to
``log``; this process supervises it (SIGKILL at the requested point) and answers one JSON
line with the Outcome. Forking skips ~1 s of imports per run, so trials stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.reliability.launch import PidChild, supervise


def _preload() -> None:
    import agent.cli  # noqa: F401  - the whole CLI, as the console script imports it
    from agent import registry

    for name in (
        "cloudtrail-files",
        "sshd-log",
        "tests.reliability.ckpt_source:CheckpointedCloudTrailFiles",
    ):
        registry.sources.load(name)
    registry.inventories.load("csv")
    registry.policy_engines.load("yaml")
    registry.classifiers.load("catalog")


def _child(req: dict[str, Any]) -> None:
    code = 70
    try:
        os.chdir(req["cwd"])
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(req["log"], os.O_WRONLY | os.O_APPEND)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from agent.cli import run

        code = run(req["argv"])
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # nothing left to report to
                stream.flush()
        os._exit(code)


def main() -> None:
    _preload()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        Path(req["log"]).write_bytes(b"")
        sys.stdout.flush()
        spawned = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(req)
        kill = tuple(req["kill"]) if req.get("kill") else None
        out = supervise(PidChild(pid), log=Path(req["log"]), spawned=spawned, kill=kill)  # type: ignore[arg-type]
        sys.stdout.write(json.dumps(asdict(out)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
