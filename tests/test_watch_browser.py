"""The watch dashboard in a real browser: Debian's headless Chromium driven by Selenium.

The app runs under uvicorn on a free port over a SQLite WatchStore filled directly (see
``test_watch_web.populate``: 48 hours of news with a negative surge on ICBC and its alert). The test
opens the dashboard, checks every chart was drawn, opens the alert, corrects a headline's
sentiment and accepts a new baseline. Screenshots go to ``tests/screenshots/`` (git-ignored).
Never downloads a browser: without Debian's ``chromium`` and ``chromium-driver`` the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_watch_web import SCRIPT_TITLE, T0, FakeScorer, populate, watch_config

from fieldtune.apps.watch.web import create_watch_app
from fieldtune.store.watch_store import WatchStore

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(__file__).parent / "screenshots"
WAIT = 30  # seconds for the page to settle on a busy 2-core machine
SPIKE = 44  # the hour of the posted surge (after a full 24-bucket baseline)
MISSING = "install Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"


def _installed(path: str) -> str:
    """Debian's path, else the same program on PATH; a test failure naming the packages if neither."""
    found = path if os.path.exists(path) else shutil.which(Path(path).name)
    if not found:
        pytest.fail(f"{path} not found: {MISSING}", pytrace=False)
    return found


def _browser():
    chromium, chromedriver = _installed(CHROMIUM), _installed(CHROMEDRIVER)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app):
    """Run ``app`` under uvicorn in a daemon thread; returns (base URL, server)."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + WAIT
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return f"http://127.0.0.1:{port}", server


@pytest.fixture()
def served(tmp_path):
    """(base URL, store, populated ids): the app over a store filled directly (see ``populate``)."""
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    made = populate(store)
    base, server = _serve(create_watch_app(cfg, store, scorer_factory=lambda c: FakeScorer()))
    yield base, store, made
    server.should_exit = True
    store.close()


@pytest.fixture()
def empty(tmp_path):
    """(base URL, store): the app over an empty store; items arrive through POST /v1/watch/items."""
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    base, server = _serve(create_watch_app(cfg, store, scorer_factory=lambda c: FakeScorer()))
    yield base, store
    server.should_exit = True
    store.close()


@pytest.fixture()
def driver():
    browser = _browser()
    yield browser
    browser.quit()


def _shot(driver, name: str, height: int | None = None) -> None:
    """Save a screenshot of the whole page (the window is grown to the page's height first)."""
    SHOTS.mkdir(exist_ok=True)
    full = height or driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(1440, min(max(full + 150, 800), 4000))  # + the window frame headless still counts
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)  # charts resize to the new window (ResizeObserver)
    driver.save_screenshot(str(SHOTS / name))


def _js_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_dashboard_alert_drilldown_and_correction(served, driver):
    base, store, made = served
    wait = WebDriverWait(driver, WAIT)
    driver.get(base + "/")
    cards = driver.find_elements(By.CSS_SELECTOR, ".chart-card")
    assert [c.get_attribute("data-key") for c in cards] == ["ICBC", "earnings"]
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart-card .uplot canvas")) == len(cards))
    for canvas in driver.find_elements(By.CSS_SELECTOR, ".chart-card .uplot canvas"):
        assert canvas.size["width"] > 200 and canvas.size["height"] > 100, canvas.size
    legend = driver.find_element(By.CSS_SELECTOR, ".chart-card .u-legend").text
    assert "stories" in legend and "negative share" in legend and "net sentiment" in legend
    rows = driver.find_elements(By.CSS_SELECTOR, ".alert-list .alert-row")
    assert len(rows) == 1 and "ICBC" in rows[0].text and "6.43" in rows[0].text and "2024-05-02 16:00" in rows[0].text
    _shot(driver, "watch-dashboard.png")
    assert _js_errors(driver) == []

    rows[0].find_element(By.CSS_SELECTOR, "a.alert-link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.headlines")))
    assert driver.current_url == f"{base}/alerts/{made['alert']['id']}"
    heads = driver.find_elements(By.CSS_SELECTOR, "tr.headline")
    assert [h.get_attribute("data-item-id") for h in heads] == made["negatives"]
    assert heads[0].find_element(By.CSS_SELECTOR, ".title-cell a").text == SCRIPT_TITLE  # shown, not run
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".chart-card .uplot canvas").size["width"] > 200)

    form = heads[0].find_element(By.CSS_SELECTOR, "form.correction")
    Select(form.find_element(By.NAME, "sentiment")).select_by_value("neutral")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait.until(lambda d: form.find_element(By.CSS_SELECTOR, ".status").text == "saved")
    [row] = store.store.feedback()
    assert (row.label, row.source, row.text) == ("neutral", "watch", SCRIPT_TITLE)

    driver.find_element(By.CSS_SELECTOR, ".baseline-button").click()
    status = driver.find_element(By.CSS_SELECTOR, ".baseline .status")
    wait.until(lambda d: status.text.startswith("baseline accepted from 2024-05-02 16:00"))
    assert ("entity", "ICBC") in store.baselines()
    _shot(driver, "watch-alert.png")
    assert _js_errors(driver) == []


def _spike_items() -> list[dict]:
    """48 hours of ICBC news, one negative story in six, then an hour where ten of twelve are negative."""
    items = []
    for hour in range(48):
        n_items = 12 if hour == SPIKE else 6
        for n in range(n_items):
            negative = n < 10 if hour == SPIKE else n == 0
            title = f"ICBC {'fined by regulator' if negative else 'opens branch'} ({hour}.{n})"
            time_ = (T0 + timedelta(hours=hour, minutes=4 * n)).isoformat()
            items.append({"id": f"s-{hour}-{n}", "time": time_, "source": "wire", "title": title})
    return items


def test_posted_spike_raises_an_alert_seen_in_the_browser(empty, driver):
    base, store = empty
    request = urllib.request.Request(
        base + "/v1/watch/items",
        data=json.dumps({"items": _spike_items()}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as r:
        report = json.load(r)
    assert report["stored"] == 48 * 6 + 6 and report["rejected"] == []
    assert {a["bucket_start"] for a in report["alerts"]} == {(T0 + timedelta(hours=SPIKE)).isoformat()}

    wait = WebDriverWait(driver, WAIT)
    driver.get(base + "/")
    rows = driver.find_elements(By.CSS_SELECTOR, ".alert-list .alert-row")
    assert len(rows) == len(report["alerts"]) >= 1
    assert all("ICBC" in r.text and "2024-05-02 20:00" in r.text for r in rows)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".chart-card .uplot canvas").size["width"] > 200)
    _shot(driver, "watch-spike-dashboard.png")
    rows[0].find_element(By.CSS_SELECTOR, "a.alert-link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.headlines")))
    titles = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "tr.headline .title-cell")]
    assert len(titles) == 10 and all("fined by regulator" in t for t in titles)
    _shot(driver, "watch-spike-alert.png")
    assert _js_errors(driver) == []


def test_missing_browser_fails_with_the_install_command():
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium chromium-driver"):
        _installed("/nonexistent/chromium-for-fieldtune-tests")
