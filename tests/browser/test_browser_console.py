"""The console in a real headless Chromium (Debian's /usr/bin/chromium via chromedriver):
log in with a token, open a finding from the queue, resolve it as a false positive, and see
the trail entry. No screenshots are written.

Skipped (with the reason) only when Chromium is missing and ``CI`` is not ``true``; in CI a
missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not Path(CHROMIUM).exists() and os.environ.get("CI") != "true":
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver); "
        "CI=true makes this a failure instead",
        allow_module_level=True,
    )

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from agent.review.models import Role  # noqa: E402
from agent.server.app import create_app  # noqa: E402
from tests.agent.review.reviewkit import FakeClock, build_finding, build_session, seed  # noqa: E402
from tests.agent.server.conftest import make_settings  # noqa: E402

WAIT_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A uvicorn server on loopback with one open finding and a reviewer token."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    app = create_app(make_settings(tmp_path_factory.mktemp("browser")), clock=clock)
    state = app.state.services
    (finding,) = seed(state.store, [build_finding(build_session("browser-1", started_at=clock()))])
    token, _ = state.review.tokens.create(name="browser", role=Role.REVIEWER, created_by="test")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token, finding.id
    server.should_exit = True
    thread.join(timeout=WAIT_SECONDS)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def test_reviewer_logs_in_opens_a_finding_resolves_it_and_sees_the_trail(
    live: tuple[str, str, str], browser: webdriver.Chrome
) -> None:
    base, token, finding_id = live
    wait = WebDriverWait(browser, WAIT_SECONDS)

    browser.get(f"{base}/console/findings")  # not logged in: sent to the login form
    wait.until(ec.presence_of_element_located((By.ID, "token"))).send_keys(token)
    browser.find_element(By.ID, "login").click()
    wait.until(ec.title_contains("Dashboard"))

    browser.get(f"{base}/console/findings")
    link = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a.finding-link")))
    link.click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "finding-id"), finding_id))
    assert browser.find_element(By.ID, "status").text == "open"
    assert browser.find_elements(By.CSS_SELECTOR, "#finding-map circle.bubble")

    reason = browser.find_element(By.ID, "reason")
    assert not reason.is_displayed()  # the enhancement shows the reason only for resolve
    Select(browser.find_element(By.ID, "action")).select_by_value("resolve")
    assert reason.is_displayed()
    Select(reason).select_by_value("false-positive")
    browser.find_element(By.ID, "note").send_keys("corporate VPN exit, verified with the user")
    browser.find_element(By.ID, "submit-review").click()

    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "resolved"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#trail-table tr.trail-entry")
    assert len(rows) == 1
    entry = rows[0].text
    assert "resolve" in entry and "reason=false-positive" in entry
    assert "browser (token" in entry and "corporate VPN exit" in entry
