"""The watch dashboard in a real browser: Debian's headless Chromium driven by Selenium.

The app runs under uvicorn on a free port over a SQLite WatchStore filled directly (see
``test_watch_web.populate``: 48 hours of news with a negative surge on ICBC and its alert). The test
opens the dashboard, checks every chart was drawn, opens the alert, corrects a headline's
sentiment and accepts a new baseline. Browser, server and screenshots (``tests/screenshots/``,
git-ignored): :mod:`browser`, which never downloads a browser.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import timedelta

import pytest
from browser import WAIT, chromium, js_errors, save_shot, serve
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_watch_web import SCRIPT_TITLE, T0, FakeScorer, populate, watch_config

from fieldtune.apps.watch.web import create_watch_app
from fieldtune.store.watch_store import WatchStore

SPIKE = 44  # the hour of the posted surge (after a full 24-bucket baseline)
WIDTH = 1440


@pytest.fixture()
def served(tmp_path):
    """(base URL, store, populated ids): the app over a store filled directly (see ``populate``)."""
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    made = populate(store)
    with serve(create_watch_app(cfg, store, scorer_factory=lambda c: FakeScorer())) as base:
        yield base, store, made
    store.close()


@pytest.fixture()
def empty(tmp_path):
    """(base URL, store): the app over an empty store; items arrive through POST /v1/watch/items."""
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    with serve(create_watch_app(cfg, store, scorer_factory=lambda c: FakeScorer())) as base:
        yield base, store
    store.close()


@pytest.fixture()
def driver():
    with chromium(WIDTH, 1000) as browser:
        yield browser


def _shot(driver, name: str, height: int | None = None) -> None:
    """Save a screenshot of the whole page (the window is grown to the page's height first)."""
    full = height or driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(WIDTH, min(max(full + 150, 800), 4000))  # + the window frame headless still counts
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)  # charts resize to the new window (ResizeObserver)
    save_shot(driver, name)


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
    assert js_errors(driver) == []

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
    assert js_errors(driver) == []


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
    assert js_errors(driver) == []
