"""The chat demo in a real browser: two headless Chromium users in one room.

Each user has a separate Chromium (its own driver and empty profile); both
join the same room through the page's form, each sends a message, and each
must see the other's in the page. Runs once per backend (test ids ``c`` and
``py``); the server is ``demo/chat.py`` itself (see conftest.py). A
screenshot of the second user's page goes to ``browser/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Callable

from selenium.common.exceptions import TimeoutException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from conftest import ARTIFACTS, ChatServer

# Bound on every wait for the page to change (a WebSocket round trip on
# loopback takes milliseconds; the margin is for a loaded 2-core machine).
TIMEOUT = 10.0

Entry = tuple[str, str, bool]  # (class of the <li>, its text without the time, has a <time>)

READ_LOG = """
return Array.from(document.querySelectorAll("#log li"), (li) => [
  li.className,
  li.lastChild ? li.lastChild.textContent : "",
  li.querySelector("time") !== null,
]);
"""


def log_entries(driver: Chrome) -> list[Entry]:
    return [(kind, text, has_time) for kind, text, has_time in driver.execute_script(READ_LOG)]


def status(driver: Chrome) -> str:
    text: str = driver.find_element(By.ID, "status").text
    return text


def wait_for(driver: Chrome, condition: Callable[[Chrome], object], what: str) -> None:
    """Wait (bounded) for ``condition``; on timeout, fail with what the page shows."""
    try:
        WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"after {TIMEOUT} s, still waiting for {what}\nstatus: {status(driver)!r}\nlog: {log_entries(driver)!r}"
        ) from None


def wait_for_log(driver: Chrome, expected: list[Entry]) -> None:
    # The whole log, in order: a missing, extra or reordered entry fails too.
    wait_for(driver, lambda d: log_entries(d) == expected, f"the log to be {expected!r}")


def join(driver: Chrome, name: str, room: str) -> None:
    for field, value in (("name", name), ("room", room)):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "join-button").click()
    wait_for(driver, lambda d: status(d) == f"In room “{room}” as {name}.", f"{name} to be in {room}")


def say(driver: Chrome, text: str) -> None:
    box = WebDriverWait(driver, TIMEOUT).until(expected_conditions.element_to_be_clickable((By.ID, "text")))
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()
    # The page empties the box once the frame is handed to the WebSocket.
    wait_for(driver, lambda d: d.find_element(By.ID, "text").get_attribute("value") == "", "the send")


def notice(text: str) -> Entry:
    return ("notice", text, False)


def message(name: str, text: str) -> Entry:
    return ("", f"{name}: {text}", True)


def console_errors(driver: Chrome) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_two_users_see_each_others_messages(open_browser: Callable[[str], Chrome], chat_server: ChatServer) -> None:
    room = f"browser-{chat_server.backend}"
    ana, bob = open_browser("ana"), open_browser("bob")
    for driver in (ana, bob):
        driver.get(chat_server.url)
        assert driver.title == "bocadillo_ws chat"
        assert status(driver) == "Not connected."

    join(ana, "ana", room)
    wait_for_log(ana, [notice("ana joined")])  # ana is in: now bob comes
    join(bob, "bob", room)
    wait_for_log(bob, [notice("bob joined")])  # the page clears the log on joining
    wait_for_log(ana, [notice("ana joined"), notice("bob joined")])

    hello = "hello bob, this is ana"
    say(ana, hello)
    wait_for_log(bob, [notice("bob joined"), message("ana", hello)])
    wait_for_log(ana, [notice("ana joined"), notice("bob joined"), message("ana", hello)])

    # Markup and non-ASCII in a message are shown as text, never parsed as HTML.
    reply = 'hi ana! <b>bold?</b> & "quotes" ☕ é'
    say(bob, reply)
    wait_for_log(ana, [notice("ana joined"), notice("bob joined"), message("ana", hello), message("bob", reply)])
    wait_for_log(bob, [notice("bob joined"), message("ana", hello), message("bob", reply)])
    assert bob.find_elements(By.CSS_SELECTOR, "#log b") == []

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"chat-{chat_server.backend}.png"
    assert bob.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    for driver in (ana, bob):
        assert console_errors(driver) == []

    # bob closes his browser: the server sees the disconnect and tells the room.
    bob.quit()
    wait_for_log(
        ana,
        [notice("ana joined"), notice("bob joined"), message("ana", hello), message("bob", reply), notice("bob left")],
    )
    assert status(ana) == f"In room “{room}” as ana."
