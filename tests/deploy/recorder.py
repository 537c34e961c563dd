"""The provider suites under the traffic recorder, in a background process.

tests/deploy/test_deploy_iam.py needs every API call the provider tests make. Running them
again takes as long as the provider suite itself, so the root conftest starts this process
as soon as collection shows the IAM specs will run; it overlaps the rest of the suite on the
second CPU, and the specs wait for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.iamcheck import load_map

__all__ = ["RECORDING", "Recording", "start_recording"]

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "deploy" / "iam" / "actions_map.yaml"


@dataclass
class Recording:
    """A running (or finished) recorder process and where it writes."""

    proc: subprocess.Popen[str]
    folder: Path

    @property
    def out(self) -> Path:
        return self.folder / "traffic.jsonl"

    def wait(self, timeout: float = 600) -> tuple[int, str, str]:
        """Exit code, stdout and stderr of the provider run."""
        stdout, stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, stdout, stderr

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_recording() -> Recording:
    """Start ``pytest tests/providers`` with the recorder (its own base temp folder)."""
    folder = Path(tempfile.mkdtemp(prefix="cw-traffic-"))
    markers = load_map(MAP).markers
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests/providers",
        "-q",
        "--no-header",
        "-p",
        "no:cacheprovider",
        f"--basetemp={folder / 'tmp'}",
        "-p",
        "tests.support.traffic",
        f"--record-traffic={folder / 'traffic.jsonl'}",
        *[f"--record-traffic-marker={m}" for m in markers],
    ]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and test suite
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Recording(proc=proc, folder=folder)


RECORDING = pytest.StashKey[Recording]()
"""Where the root conftest keeps the recording on ``config.stash``."""
