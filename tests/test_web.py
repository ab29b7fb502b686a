"""The littleboss page in supervisord's web UI, driven in a real headless Chromium against a
real supervisord with two littleboss programs, with clients under load."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import launch
from harness import HTTPAPP, Supervisord, free_port, http_get, make_executable, make_release, pid_alive, wait_for
from load import Load
from playwright.sync_api import Page, expect, sync_playwright

pytestmark = pytest.mark.e2e

PORTS: dict[str, int] = {}
MARKUP = '<b id="injected">x</b>&"'  # a version (and so a STATUS= line) full of markup


class Releases:
    def __init__(self, root: Path) -> None:
        self.dir = root / "releases"
        self.v1 = make_release(self.dir, "v1", "v1")
        self.v2 = make_release(self.dir, "v2", "v2")
        self.markup = make_executable(self.dir, "markup", f"#!/bin/sh\nAPP_VERSION='{MARKUP}' exec {HTTPAPP}\n")


def littleboss_program(sv: Supervisord, name: str, releases: Releases) -> None:
    PORTS[name] = free_port()
    sv.program(name, command=releases.v1, littleboss_sockets=f"http=tcp://127.0.0.1:{PORTS[name]}",
               littleboss_allow=f"{releases.dir}/*/app", littleboss_ready="notify", littleboss_settle=0.5,
               littleboss_fallback_window=0)


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    return Releases(tmp_path_factory.mktemp("releases"))


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Supervisord:
    sv = Supervisord(tmp_path_factory.mktemp("web"), inet_http=True)
    littleboss_program(sv, "web", releases)
    littleboss_program(sv, "api", releases)
    sv.start()
    yield sv
    sv.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def url(sv: Supervisord, query: str = "") -> str:
    return f"http://127.0.0.1:{sv.http_port}/littleboss.html{query}"


def serving(name: str) -> tuple[str, int]:
    version, pid, *_ = http_get(("127.0.0.1", PORTS[name])).split()
    return version.decode(), int(pid)


def test_the_page_lists_every_program_with_its_binary_and_pid(sv, releases, page):
    pids = {name: sv.wait_running(name) for name in ("web", "api")}
    response = page.goto(url(sv))
    assert response.status == 200
    for name, pid in pids.items():
        section = page.locator(f"#program-{name}")
        expect(section.locator("h2")).to_have_text(name)
        expect(section).to_contain_text(f"{name} RUNNING pid {pid}")
        expect(section).to_contain_text(releases.v1)
        expect(section).to_contain_text(f"http=tcp://127.0.0.1:{PORTS[name]} on fd 3")
        expect(section.get_by_role("button", name="Roll back")).to_be_disabled()  # no previous binary yet
        tail = section.get_by_role("link", name=name)
        assert tail.get_attribute("href") == f"tail.html?processname={name}%3A{name}"
    page.get_by_role("link", name="Status").click()
    expect(page).to_have_title("Supervisor Status")  # back to supervisord's own page


def test_roll_back_from_the_page_under_load(sv, releases, page):
    sv.wait_running("web")
    reloaded = sv.rpc.littleboss.reload("web", releases.v2)
    with Load(("127.0.0.1", PORTS["web"])) as load:
        page.goto(url(sv))
        section = page.locator("#program-web")
        expect(section.get_by_role("button", name="Roll back")).to_be_enabled()
        section.get_by_role("button", name="Roll back").click()
        message = page.locator(".status_msg")
        expect(message).to_contain_text(f"web: rolled back {releases.v2} \u2192 {releases.v1}", timeout=15_000)
        load.wait_for_requests(50)
    new_pid = int(re.search(r"\u2192 (\d+)\)", message.text_content()).group(1))
    assert serving("web") == ("v1", new_pid) and new_pid != reloaded["new_pid"]
    assert not pid_alive(reloaded["new_pid"])
    expect(page.locator("#program-web")).to_contain_text(f"web RUNNING pid {new_pid}")
    assert load.result.failed == 0, load.result


def test_a_disallowed_path_shows_the_fault_and_the_old_process_keeps_serving(sv, page):
    pid = sv.wait_running("api")
    with Load(("127.0.0.1", PORTS["api"])) as load:
        page.goto(url(sv))
        section = page.locator("#program-api")
        section.locator("input[name=path]").fill("/bin/sh")
        section.get_by_role("button", name="Reload").click()
        expect(page.locator(".status_msg")).to_contain_text("NOT_ALLOWED: api: cannot reload to /bin/sh")
        load.wait_for_requests(50)
    assert serving("api") == ("v1", pid) and sv.info("api")["pid"] == pid
    assert load.result.failed == 0, load.result


def test_a_post_without_the_pages_token_is_refused(sv, releases, page):
    pid = sv.wait_running("api")
    page.goto(url(sv))
    token = page.locator("#program-api input[name=token]").first.get_attribute("value")
    for form in ({"program": "api", "action": "reload", "path": releases.v2},  # no token
                 {"program": "api", "action": "reload", "path": releases.v2, "token": "replayed"}):
        response = page.request.post(url(sv), form=form, max_redirects=0)
        assert response.status == 403 and "refused: this form is not from this supervisord" in response.text()
    response = page.request.get(url(sv, f"?program=api&action=reload&path={releases.v2}&token={token}"))
    assert response.status == 200  # a GET never acts, token or not
    assert sv.info("api")["pid"] == pid and serving("api") == ("v1", pid)


def test_reload_from_the_page_shows_progress_then_the_outcome_and_escapes_everything(sv, releases, page):
    sv.wait_running("api")
    page.goto(url(sv))
    section = page.locator("#program-api")
    section.locator("input[name=path]").fill(releases.markup)
    section.get_by_role("button", name="Reload").click()
    message = page.locator(".status_msg")
    expect(message).to_contain_text("api: reload to", timeout=5_000)  # the page follows it: settle is 0.5 s
    expect(message).to_contain_text(f"api: reloaded {releases.v1} \u2192 {releases.markup}", timeout=15_000)
    expect(page.locator("#program-api")).to_contain_text(f"httpapp {MARKUP} serving")  # its STATUS=, as text
    assert page.locator("#injected").count() == 0
    sv.rpc.littleboss.reload("api", releases.v1)


def test_with_credentials_the_page_and_its_actions_need_them(tmp_path, releases, browser):
    sv = Supervisord(tmp_path, inet_http=True, credentials=("admin", "s3cret"))
    littleboss_program(sv, "web", releases)
    sv.start()
    try:
        pid = sv.wait_running("web")
        anonymous = browser.new_context()
        assert anonymous.request.get(url(sv)).status == 401
        assert anonymous.request.post(url(sv), form={"program": "web", "action": "reload",
                                                     "path": releases.v2}).status == 401
        anonymous.close()
        admin = browser.new_context(http_credentials={"username": "admin", "password": "s3cret"})
        page = admin.new_page()
        assert page.goto(url(sv)).status == 200
        expect(page.locator("#program-web")).to_contain_text(f"web RUNNING pid {pid}")
        admin.close()
        wait_for(lambda: sv.info("web")["pid"] == pid, what="the program untouched")
    finally:
        sv.stop()
