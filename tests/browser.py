"""What the browser tests share: Debian's headless Chromium driven by Selenium, an app served by uvicorn
on a free port, screenshots and the page checks.

Never downloads a browser: Selenium Manager is kept offline, and without Debian's ``chromium`` and
``chromium-driver`` a test fails with the install command (:func:`installed`). Screenshots go to
``tests/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(__file__).parent / "screenshots"
WAIT = 30  # seconds for a page (or the server) to settle on a busy 2-core machine
MISSING = "install Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"


def installed(path: str) -> str:
    """Debian's path, else the same program on PATH; a test failure naming the packages if neither."""
    found = path if os.path.exists(path) else shutil.which(Path(path).name)
    if not found:
        pytest.fail(f"{path} not found: {MISSING}", pytrace=False)
    return found


@contextmanager
def chromium(width: int, height: int) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a ``width`` x ``height`` window, its console log kept (:func:`js_errors`);
    quit on exit."""
    binary, chromedriver = installed(CHROMIUM), installed(CHROMEDRIVER)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a daemon thread on a free port; yields its base URL, stops it on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + WAIT
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True


def save_shot(driver: webdriver.Chrome, name: str) -> None:
    """Save a screenshot of the window as ``tests/screenshots/<name>``."""
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))


def js_errors(driver: webdriver.Chrome) -> list[str]:
    """The browser console's errors since the last call (the log is read and emptied)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
