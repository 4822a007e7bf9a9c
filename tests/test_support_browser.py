"""The support pages in a real browser: Debian's headless Chromium driven by Selenium.

A customer asks and gets an answer; asks something unknown and is handed off; an agent opens the
queue, claims the handoff, sees the conversation, the model's guesses and suggested templates, and
answers (a typed answer with its intent, by keyboard only; then a second handoff with one click on a
suggested template); the customer's page shows both answers. Screenshots at desktop width and at a
390 px phone width go to ``tests/screenshots/support_*.png`` (git-ignored).

The real assistant is served (:func:`build_assistant`: a copy of the one built from the shipped
banking sample). Browser, server and screenshots: :mod:`browser` (never downloads a browser: without
Debian's ``chromium`` and ``chromium-driver`` the test fails with the install command).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from browser import WAIT, chromium, installed, js_errors, save_shot, serve
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from test_support_web import KNOWN, UNKNOWN

from fieldtune.apps.support.assistant import Assistant
from fieldtune.apps.support.web import create_app
from fieldtune.store.support_store import SupportStore

DESKTOP, PHONE = 1280, 390
HUMAN = "I want to talk to a human, my PIN is blocked"
TYPED_ANSWER = "We can't forecast the weather, sorry. For anything about your account, just ask here."
# every form control has a label (or aria-label); every button says what it does
UNLABELLED = """
return Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.offsetParent !== null)
  .filter(el => el.tagName === 'BUTTON' ? !el.textContent.trim() && !el.getAttribute('aria-label')
                                        : el.labels.length === 0 && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML.slice(0, 80));
"""


def build_assistant(folder: Path, built: Path) -> Assistant:
    """The real assistant the pages serve: a copy of the session's built one (conftest ``support_built``:
    4 BANKING77 intents, our own templates), so this test's conversations and agent answers go to
    its own database."""
    shutil.copytree(built, folder)
    return Assistant(folder)


@pytest.fixture()
def served(tmp_path, support_built):
    """(base URL, store): the app under uvicorn in a daemon thread, agents' answers polled every 0.3 s."""
    assistant = build_assistant(tmp_path / "assistant", support_built[0])
    store = getattr(assistant, "store", None) or SupportStore(f"sqlite:///{tmp_path / 'support.db'}")
    with serve(create_app(assistant, store, poll_seconds=0.3)) as base:
        yield base, store
    store.close()


@pytest.fixture()
def driver():
    with chromium(DESKTOP, 900) as browser:
        yield browser


def _shots(driver, name: str) -> None:
    """Full-page screenshots at desktop and phone width; the phone page must not scroll sideways."""
    for label, width in (("desktop", DESKTOP), ("phone", PHONE)):
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width == PHONE}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(max(height, 600), 3000)})
        time.sleep(0.1)
        overflow = driver.execute_script("return document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} at {width} px is {overflow} px wide"
        save_shot(driver, f"support_{name}_{label}.png")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _checked(driver) -> None:
    """No unlabelled control and no JavaScript error on the current page."""
    assert driver.execute_script(UNLABELLED) == []
    assert js_errors(driver) == []


def _ask(driver, wait, text: str, submit_with_enter: bool) -> str:
    """Type a customer message, send it, and return the assistant's reply text."""
    before = len(driver.find_elements(By.CSS_SELECTOR, "#chat-log .msg-assistant"))
    box = driver.find_element(By.ID, "message")
    box.send_keys(text)
    if submit_with_enter:
        box.send_keys(Keys.ENTER)
    else:
        driver.find_element(By.ID, "send").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chat-log .msg-assistant")) > before)
    return driver.find_elements(By.CSS_SELECTOR, "#chat-log .msg-assistant")[-1]


def _open_first_handoff(driver, wait, base: str, question: str) -> None:
    driver.get(base + "/agent")
    link = driver.find_element(By.CSS_SELECTOR, ".queue-item .open-handoff")
    assert link.text == question
    link.click()
    wait.until(lambda d: d.find_elements(By.ID, "answer-form"))
    conversation = driver.find_element(By.CSS_SELECTOR, ".conversation .log").text
    assert question in conversation and "agent will reply" in conversation.lower()
    assert driver.find_elements(By.CSS_SELECTOR, ".guesses li") and driver.find_elements(By.CSS_SELECTOR, ".suggestion")


def test_customer_handoff_and_agent_answers(served, driver):
    base, store = served
    wait = WebDriverWait(driver, WAIT)
    driver.get(base + "/")
    assert driver.find_element(By.ID, "chat-log").get_attribute("aria-live") == "polite"
    answer = _ask(driver, wait, KNOWN, submit_with_enter=True)  # the keyboard alone sends
    assert "handoff" not in answer.get_attribute("class") and answer.find_element(By.TAG_NAME, "p").text.strip()
    handed = _ask(driver, wait, UNKNOWN, submit_with_enter=False)
    assert "handoff" in handed.get_attribute("class") and "an agent will reply" in handed.text.lower()
    _checked(driver)
    customer = driver.current_window_handle

    driver.switch_to.new_window("tab")  # the agent, in the same browser
    driver.get(base + "/agent")
    assert "1" == driver.find_element(By.ID, "queue-count").text
    driver.find_element(By.ID, "agent-name").send_keys("maria")
    _shots(driver, "queue")
    _checked(driver)
    _open_first_handoff(driver, wait, base, UNKNOWN)
    assert driver.find_element(By.ID, "agent-name").get_attribute("value") == "maria"  # remembered
    driver.find_element(By.ID, "claim").click()
    wait.until(lambda d: d.find_element(By.ID, "claimed-by").text == "maria")
    _shots(driver, "handoff")
    _checked(driver)
    # a typed answer, by keyboard: answer, Tab, intent, Tab, Enter on "Send answer"
    driver.find_element(By.ID, "answer-text").send_keys(TYPED_ANSWER)
    driver.switch_to.active_element.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys("oos")
    driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Send answer"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "blockquote.final"))
    assert driver.find_element(By.CSS_SELECTOR, "blockquote.final").text == TYPED_ANSWER
    [row] = store.store.feedback()
    assert (row.text, row.label, row.source) == (UNKNOWN, "oos", "support")

    driver.switch_to.window(customer)
    wait.until(lambda d: TYPED_ANSWER in d.find_element(By.ID, "chat-log").text)
    assert "maria" in driver.find_elements(By.CSS_SELECTOR, "#chat-log .msg-agent")[-1].text
    handed = _ask(driver, wait, HUMAN, submit_with_enter=True)
    assert "handoff" in handed.get_attribute("class")

    driver.switch_to.window(driver.window_handles[-1])
    _open_first_handoff(driver, wait, base, HUMAN)
    first = driver.find_element(By.CSS_SELECTOR, ".suggestion")
    template_answer = first.find_element(By.TAG_NAME, "p").text
    first.find_element(By.CSS_SELECTOR, "button.use-template").click()  # one click: answer and label
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "blockquote.final"))
    _checked(driver)

    driver.switch_to.window(customer)
    wait.until(lambda d: template_answer in d.find_element(By.ID, "chat-log").text)
    _shots(driver, "chat")
    _checked(driver)
    assert [h["status"] for h in store.handoffs()] == ["resolved", "resolved"]
    assert [f.source for f in store.store.feedback()] == ["support", "support"]


def test_missing_browser_fails_with_the_install_command():
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium chromium-driver"):
        installed("/nonexistent/chromium-for-fieldtune-tests")
