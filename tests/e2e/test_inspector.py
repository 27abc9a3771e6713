"""The web inspector in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
by selenium; nothing is downloaded), against the embedded stack and a reference worker.

One flow, as a user goes: a running task group (graph and table) whose tasks change state without
a reload; a task's live log growing while it runs, then its final log; an artifact downloaded from
the task page; a rerun made with temporary credentials typed into the page's form. Screenshots are
kept in the test's tmp dir (`group-mid-run.png`, `task-live-log.png`, ...). The tasks wait for gate
files the test creates, so every state is seen for sure; waits are bounded polls.

Without a browser the test is skipped, with the reason, except in CI (CI=true), where it fails:
`.ci/run` installs the packages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import taskcluster

from tests.harness import (
    ROOT_TOKEN,
    WORKER_ENV,
    WORKER_PROVISIONER,
    Served,
    WorkerProc,
    create_for_worker,
    eventually,
    serving,
    worker_starter,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30.0  # bound on any one wait in the page


def _browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser saves downloads."""
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"the browser tests must run in CI: {missing}")
        pytest.skip(f"no headless browser: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def no_manager(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Selenium Manager ran: it would download a driver")

    # The driver and browser are given: selenium must never look for (or fetch) others.
    original = selenium_manager.SeleniumManager.binary_paths
    selenium_manager.SeleniumManager.binary_paths = no_manager  # type: ignore[method-assign]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        selenium_manager.SeleniumManager.binary_paths = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(WORKER_ENV) as s:
        yield s


@pytest.fixture(scope="module")
def worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProc]:
    with worker_starter(served, tmp_path_factory) as start:
        w: Callable[..., WorkerProc] = start
        proc = w("inspector", "--capacity", "2")
        yield proc
        proc.stop()


def wait_until(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # the views redraw what changed: an element found a moment ago may be gone
        wait = WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
        return wait.until(check)
    except TimeoutException:
        pytest.fail(f"the page did not show {what} within {WAIT:.0f}s; it shows:\n{text_of(driver)}")


def text_of(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def log_text(driver: Any) -> str:
    log = css(driver, "#log")
    return str(log.text) if log is not None else ""


def state_in_table(driver: Any, task_id: str) -> str | None:
    cell = css(driver, f'[data-task-state="{task_id}"]')
    return cell.text if cell is not None else None


def test_a_user_follows_a_running_group_reads_the_live_log_downloads_an_artifact_and_reruns(
    browser: Any, served: Served, worker: WorkerProc, downloads: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    shots = tmp_path
    gate1, gate2 = tmp_path / "gate1", tmp_path / "gate2"
    wait_for = " ".join(f"while [ ! -e {g} ]; do sleep 0.05; done;" for g in [gate1])
    # The log shows the command line too: the lines looked for are made by the shell ($n), not in it.
    script = (
        f"n=one; echo step-$n of the build; {wait_for} n=two; echo step-$n of the build; "
        f"while [ ! -e {gate2} ]; do sleep 0.05; done; echo build done"
    )
    group = taskcluster.slugId()
    build = create_for_worker(served, "inspector", {"command": [["sh", "-c", script]], "maxRunTime": 120},
                              taskGroupId=group, metadata=meta("build"))  # fmt: skip
    after = create_for_worker(
        served,
        "inspector",
        {
            "command": [["sh", "-c", "mkdir -p out; echo hello from after > out/hello.txt; echo sh > out/secret.txt; "
                                     "w=ran; echo after $w"]],
            "maxRunTime": 60,
            "artifacts": [
                {"type": "file", "path": "out/hello.txt", "name": "public/hello.txt"},
                {"type": "file", "path": "out/secret.txt", "name": "private/secret.txt"},
            ],
        },
        taskGroupId=group,
        dependencies=[build],
        metadata=meta("after"),
    )
    base = f"{served.root_url}/inspector"

    # The group, as a deep link: the build runs, `after` waits for it.
    browser.get(f"{base}/#/group/{group}")
    wait_until(browser, lambda d: state_in_table(d, build) == "running", "the build running")
    assert state_in_table(browser, after) == "unscheduled"
    graph_nodes = browser.find_elements(By.CSS_SELECTOR, "svg.graph a.node")
    assert {n.get_attribute("data-task-id") for n in graph_nodes} == {build, after}
    assert "state-running" in (css(browser, f'svg.graph a[data-task-id="{build}"]').get_attribute("class") or "")
    chips = browser.find_elements(By.CSS_SELECTOR, ".counts li")
    counts = {li.get_attribute("data-state"): li.text.split()[-1] for li in chips}
    assert (counts["running"], counts["unscheduled"], counts["completed"]) == ("1", "1", "0")
    browser.save_screenshot(str(shots / "group-mid-run.png"))

    # The build's page, from the graph: its live log grows while it runs.
    css(browser, f'svg.graph a[data-task-id="{build}"]').click()
    wait_until(browser, lambda d: "step-one of the build" in log_text(d), "the live log")
    assert css(browser, "#log-state").get_attribute("data-live") == "yes"
    browser.execute_script("window.notReloaded = true")
    gate1.touch()
    wait_until(browser, lambda d: "step-two of the build" in log_text(d), "the log growing")
    browser.execute_script("document.getElementById('log').scrollIntoView({block: 'end'})")
    browser.save_screenshot(str(shots / "task-live-log.png"))
    assert "Live log of run 0" in css(browser, "#log-state").text

    # Back to the group (the browser's history, no reload): tasks change state as they run.
    browser.back()
    wait_until(browser, lambda d: state_in_table(d, build) == "running", "the group again")
    gate2.touch()
    wait_until(browser, lambda d: state_in_table(d, build) == "completed", "the build completed")
    wait_until(browser, lambda d: state_in_table(d, after) == "completed", "`after` completed")
    assert browser.execute_script("return window.notReloaded") is True
    browser.save_screenshot(str(shots / "group-done.png"))

    # The artifact's link opens it: the API redirects to storage.
    browser.find_element(By.LINK_TEXT, "after").click()
    wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "public/hello.txt"), "the artifact's link")
    browser.find_element(By.LINK_TEXT, "public/hello.txt").click()
    wait_until(browser, lambda d: text_of(d) == "hello from after", "the artifact opened")
    browser.back()

    # `after`'s page: its final log, and its artifact saved as a file.
    wait_until(browser, lambda d: "after ran" in log_text(d), "the final log")
    assert "Final log of run 0 (completed)" in css(browser, "#log-state").text
    wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "public/hello.txt"), "the artifact")
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Download public/hello.txt"]').click()
    downloaded = downloads / "hello.txt"
    wait_until(browser, lambda d: downloaded.is_file() and downloaded.read_text() == "hello from after\n",
               "the artifact downloaded")  # fmt: skip

    # A rerun needs credentials: temporary ones, with only that scope, typed into the form.
    browser.find_element(By.XPATH, "//button[text()='Rerun']").click()
    wait_until(browser, lambda d: "Rerun failed" in css(d, "#status").text, "the refused rerun")
    assert "InsufficientScopes" in css(browser, "#status").text
    sign_in(browser, ["queue:rerun-task:*", "queue:get-artifact:private/*"])
    browser.find_element(By.XPATH, "//button[text()='Rerun']").click()
    wait_until(browser, lambda d: "Rerun requested" in css(d, "#status").text, "the rerun accepted")
    wait_until(browser, lambda d: "Final log of run 1 (completed)" in css(d, "#log-state").text, "run 1 completed")
    status = served.queue().status(after)["status"]
    assert [(r["runId"], r["reasonCreated"], r["state"]) for r in status["runs"]] == [
        (0, "scheduled", "completed"),
        (1, "rerun", "completed"),
    ]
    browser.save_screenshot(str(shots / "task-rerun.png"))
    # A private artifact's link carries a bewit made from those credentials.
    private = browser.find_element(By.LINK_TEXT, "private/secret.txt")
    assert "bewit=" in (private.get_attribute("href") or "")
    private.click()
    wait_until(browser, lambda d: text_of(d) == "sh", "the private artifact")
    browser.back()
    print(f"\nscreenshots: {shots}")


def test_the_inspector_fits_a_phone_and_its_search_finds_a_task(
    browser: Any, served: Served, worker: WorkerProc, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    task_id = create_for_worker(served, "inspector", {"command": [["true"]], "maxRunTime": 30}, metadata=meta("lonely"))
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{served.root_url}/inspector")  # no slash: redirected to inspector/
        assert browser.current_url == f"{served.root_url}/inspector/"
        box = browser.find_element(By.ID, "q")
        assert css(browser, 'label[for="q"]') is not None
        box.send_keys(f"{served.root_url}/inspector/#/task/{task_id}", Keys.ENTER)  # a pasted link
        wait_until(browser, lambda d: css(d, "#task-state") is not None, "the task")
        assert browser.current_url.endswith(f"#/task/{task_id}")
        assert "lonely" in css(browser, "h1").text
        # A bare id that is a task and its own group: both are offered.
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(task_id, Keys.ENTER)
        wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "Task group of the same id"), "both choices")
        browser.find_element(By.LINK_TEXT, "Task lonely").click()
        wait_until(browser, lambda d: css(d, "#task-state") is not None, "the task again")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        browser.save_screenshot(str(tmp_path / "task-phone.png"))
        # Keyboard: on a fresh page, Tab reaches the skip link, then the search box (labelled).
        browser.get(f"{served.root_url}/inspector/#/queue/{WORKER_PROVISIONER}/inspector")
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Skip to content"
        browser.switch_to.active_element.send_keys(Keys.TAB, Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "q"
        wait_until(browser, lambda d: "pending" in (css(d, "#queue-counts").text if css(d, "#queue-counts") else ""),
                   "the queue's counts")  # fmt: skip
    finally:
        browser.set_window_size(1100, 1000)


def test_actions_change_priority_cancel_retrigger_seal_and_quarantine(
    browser: Any, served: Served, worker: WorkerProc
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    group = taskcluster.slugId()
    waiting = create_for_worker(served, "nobody", {"command": [["true"]], "maxRunTime": 30}, taskGroupId=group,
                                metadata=meta("waiting"))  # fmt: skip  (no worker serves e2e-worker/nobody)
    browser.get(f"{served.root_url}/inspector/#/task/{waiting}")
    sign_in(browser, ["queue:change-task-priority:*", "queue:cancel-task:*", "queue:create-task:*",
                      "queue:scheduler-id:*", "queue:seal-task-group:*", "queue:quarantine-worker:*"])  # fmt: skip
    wait_until(browser, lambda d: css(d, "#task-state") and css(d, "#task-state").text == "pending", "the task")
    Select(browser.find_element(By.ID, "priority")).select_by_value("high")
    browser.find_element(By.XPATH, "//button[text()='Change priority']").click()
    wait_until(browser, lambda d: "Priority is now high" in css(d, "#status").text, "the new priority")
    assert served.queue().task(waiting)["priority"] == "high"

    browser.find_element(By.XPATH, "//button[text()='Retrigger']").click()
    wait_until(browser, lambda d: "Retriggered as" in css(d, "#status").text, "the retrigger")
    copy = css(browser, "#status").text.split()[-1].rstrip(".")
    assert browser.current_url.endswith(f"#/task/{copy}") and copy != waiting
    copied = served.queue().task(copy)
    assert (copied["metadata"]["name"], copied["taskGroupId"], copied["dependencies"]) == ("waiting", group, [])

    browser.back()
    wait_until(browser, lambda d: css(d, "#task-state") and css(d, "#task-state").text == "pending", "the task again")
    browser.find_element(By.XPATH, "//button[text()='Cancel']").click()
    wait_until(browser, lambda d: css(d, "#task-state").text == "exception", "the task cancelled")
    assert served.queue().status(waiting)["status"]["runs"][-1]["reasonResolved"] == "canceled"

    browser.get(f"{served.root_url}/inspector/#/group/{group}")
    browser.find_element(By.XPATH, "//button[text()='Seal group']").click()
    wait_until(browser, lambda d: "Task group sealed" in css(d, "#status").text, "the group sealed")
    assert served.queue().getTaskGroup(group).get("sealed")

    # The worker of the other tests (this test's own task makes sure it is known, whatever ran before):
    # quarantined until tomorrow, then let go again.
    known = create_for_worker(served, "inspector", {"command": [["true"]], "maxRunTime": 30}, metadata=meta("known"))

    def seen() -> bool | None:
        if served.queue().status(known)["status"]["state"] != "completed":
            return None
        try:
            return bool(served.queue().getWorker(WORKER_PROVISIONER, "inspector", "local", "inspector"))
        except taskcluster.TaskclusterRestFailure:
            return None

    eventually(seen, WAIT, "the worker known to the queue")
    browser.get(f"{served.root_url}/inspector/#/worker/{WORKER_PROVISIONER}/inspector/local/inspector")
    wait_until(browser, lambda d: "not quarantined" in text_of(d), "the worker")
    until = browser.find_element(By.ID, "quarantine-until")
    tomorrow = datetime.now() + timedelta(days=1)  # the field takes the browser's local time
    # Set as the date picker would (typing into it depends on the browser's locale).
    browser.execute_script("arguments[0].value = arguments[1]", until, tomorrow.strftime("%Y-%m-%dT%H:%M"))
    browser.find_element(By.ID, "quarantine-info").send_keys("looks broken")
    browser.find_element(By.XPATH, "//button[text()='Quarantine']").click()
    wait_until(browser, lambda d: "Worker quarantined until" in css(d, "#status").text, "the quarantine")
    info = served.queue().getWorker(WORKER_PROVISIONER, "inspector", "local", "inspector")
    assert info["quarantineDetails"][-1]["quarantineInfo"] == "looks broken"
    browser.find_element(By.XPATH, "//button[text()='Lift quarantine']").click()
    wait_until(browser, lambda d: "Quarantine lifted" in css(d, "#status").text, "the quarantine lifted")

    # Signed reads with a query (?limit=50) verify; refused for scopes, they are read anonymously.
    browser.get(f"{served.root_url}/inspector/#/queue/{WORKER_PROVISIONER}/nobody")
    wait_until(browser, lambda d: "1 pending" in (css(d, "#queue-counts").text or ""), "the retriggered copy pending")
    assert browser.find_elements(By.LINK_TEXT, "waiting")  # the copy, in the pending list
    assert css(browser, "#status").text == ""


def sign_in(browser: Any, scopes: list[str]) -> None:
    """Temporary credentials with `scopes`, made from the root client, typed into the page's form."""
    from selenium.webdriver.common.by import By

    now = datetime.now(UTC)
    temp = taskcluster.createTemporaryCredentials(
        "root", ROOT_TOKEN, now - timedelta(minutes=5), now + timedelta(hours=1), scopes
    )
    browser.find_element(By.ID, "sign-in").click()
    browser.find_element(By.ID, "clientId").send_keys(temp["clientId"])
    browser.find_element(By.ID, "accessToken").send_keys(temp["accessToken"].decode())
    browser.find_element(By.ID, "certificate").send_keys(temp["certificate"])
    browser.find_element(By.XPATH, "//button[text()='Use these']").click()
    assert css(browser, "#who").text == "signed in as root"


def meta(name: str) -> dict[str, str]:
    return {"name": name, "description": "", "owner": "me@example.com", "source": "https://example.com/inspector"}

