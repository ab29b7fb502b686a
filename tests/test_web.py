"""The littleboss page in supervisord's web UI, driven in a real headless Chromium against a
real supervisord with two littleboss programs, with clients under load."""
from __future__ import annotations

import re

import pytest
from browser import launch
from harness import HTTPAPP, Releases, Supervisord, free_port, http_get, pid_alive, wait_for
from load import Load
from playwright.sync_api import Locator, Page, expect, sync_playwright

pytestmark = pytest.mark.e2e

PORTS: dict[str, int] = {}
MARKUP = '<b id="injected">x</b>&"'  # a version (and so a STATUS= line) full of markup
MARKUP_DIR = "<i id=injected-path>&amp;"  # a release directory, and so paths, with markup


def littleboss_program(sv: Supervisord, name: str, releases: Releases) -> None:
    PORTS[name] = free_port()
    sv.littleboss_program(name, releases.v1, PORTS[name], releases.allow, littleboss_settle=0.5,
                          littleboss_fallback_window=0)


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    releases = Releases(tmp_path_factory.mktemp("releases"))
    releases.markup = releases.script(MARKUP_DIR, f"APP_VERSION='{MARKUP}' exec {HTTPAPP}")
    return releases


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Supervisord:
    """One supervisord for the module: every test that reloads web or api puts it back on v1
    (the release each test starts from); "fresh" is never reloaded, so it has no previous
    binary whatever ran before. The tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("web"), inet_http=True)
    for name in ("web", "api", "fresh"):
        littleboss_program(sv, name, releases)
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


def lines(cell: Locator) -> int:
    """How many lines the text of ``cell`` takes on screen."""
    return cell.evaluate("""cell => { const range = document.createRange(); range.selectNodeContents(cell);
        return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size; }""")


def overflows(element: Locator) -> bool:
    """Whether ``element``'s content is wider than its box."""
    return element.evaluate("element => element.scrollWidth > element.clientWidth")


def test_the_page_lists_every_program_with_its_binary_and_pid(sv, releases, page):
    pids = {name: sv.wait_running(name) for name in ("web", "api", "fresh")}
    response = page.goto(url(sv))
    assert response.status == 200
    for name, pid in pids.items():
        section = page.locator(f"#program-{name}")
        expect(section.locator("h2")).to_have_text(name)
        expect(section).to_contain_text(f"{name} RUNNING pid {pid}")
        expect(section).to_contain_text(releases.v1)
        expect(section).to_contain_text(f"http=tcp://127.0.0.1:{PORTS[name]} on fd 3")
        tail = section.get_by_role("link", name=name)
        assert tail.get_attribute("href") == f"tail.html?processname={name}%3A{name}"
    # no test reloads fresh: no previous binary yet (web's and api's depend on the tests run before)
    expect(page.locator("#program-fresh").get_by_role("button", name="Roll back")).to_be_disabled()
    page.get_by_role("link", name="Status").click()
    expect(page).to_have_title("Supervisor Status")  # back to supervisord's own page


def test_supervisords_status_page_links_to_the_page(sv, page):
    """Once, though supervisord called the factory for each of its two HTTP servers."""
    page.goto(f"http://127.0.0.1:{sv.http_port}/index.html")
    expect(page.get_by_role("link", name="Restart All")).to_be_visible()  # its own buttons are still there
    for name in ("web", "api"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    link = page.get_by_role("link", name="Littleboss", exact=True)
    expect(link).to_have_count(1)
    link.click()
    expect(page).to_have_title("Supervisor littleboss")
    expect(page.locator("#program-web h2")).to_have_text("web")


def test_roll_back_from_the_page_asks_first_then_rolls_back_under_load(sv, releases, page):
    sv.wait_running("web")
    reloaded = sv.rpc.littleboss.reload("web", releases.v2)
    with Load(("127.0.0.1", PORTS["web"])) as load:
        page.goto(url(sv))
        section, confirm = page.locator("#program-web"), page.locator("#confirm")
        expect(confirm).to_have_count(0)
        section.get_by_role("button", name="Roll back").click()
        expect(confirm).to_contain_text(f"Roll back web from {releases.v2} to its previous binary {releases.v1}?")
        assert serving("web") == ("v2", reloaded["new_pid"])  # asking acts on nothing
        confirm.get_by_role("link", name="Cancel").click()
        expect(confirm).to_have_count(0)
        section.get_by_role("button", name="Roll back").click()
        confirm.get_by_role("button", name="Roll back web").click()
        message = page.locator(".status_msg")
        expect(message).to_contain_text(f"web: rolled back {releases.v2} \u2192 {releases.v1}", timeout=15_000)
        load.wait_for_requests(50)
    new_pid = int(re.search(r"\u2192 (\d+)\)", message.text_content()).group(1))
    assert serving("web") == ("v1", new_pid) and new_pid != reloaded["new_pid"]
    wait_for(lambda: not pid_alive(reloaded["new_pid"]), what="the replaced process to exit")
    expect(page.locator("#program-web")).to_contain_text(f"web RUNNING pid {new_pid}")
    assert load.result.failed == 0, load.result


def test_a_roll_back_not_confirmed_for_the_previous_binary_it_would_run_is_refused(sv, releases, page):
    sv.wait_running("web")
    sv.rpc.littleboss.reload("web", releases.v2)
    page.goto(url(sv))
    page.locator("#program-web").get_by_role("button", name="Roll back").click()
    expect(page.locator("#confirm")).to_contain_text(f"to its previous binary {releases.v1}?")
    pid = sv.rpc.littleboss.reload("web", releases.v1)["new_pid"]  # meanwhile: the previous binary is v2
    page.get_by_role("button", name="Roll back web").click()
    expect(page.locator(".status_msg.error")).to_have_text(
        f"web: not rolled back: its previous binary is {releases.v2}, not {releases.v1} as confirmed; "
        "press Roll back again to confirm the roll back to it")
    token = page.locator("#program-web input[name=token]").get_attribute("value")
    unconfirmed = page.request.post(url(sv), form={"program": "web", "action": "rollback", "token": token})
    assert f"web: not rolled back: its previous binary is {releases.v2}, not none" in unconfirmed.text()
    assert serving("web") == ("v1", pid) and sv.info("web")["pid"] == pid


def test_a_disallowed_path_shows_the_fault_and_the_old_process_keeps_serving(sv, page):
    pid = sv.wait_running("api")
    with Load(("127.0.0.1", PORTS["api"])) as load:
        page.goto(url(sv))
        section = page.locator("#program-api")
        section.locator("input[name=path]").fill("/bin/sh")
        section.get_by_role("button", name="Reload").click()
        expect(page.locator(".status_msg")).to_contain_text("NOT_ALLOWED: api: cannot reload to /bin/sh")
        expect(section.locator("input[name=path]")).to_have_value("/bin/sh")  # what was typed, to correct
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
    expect(page.locator("#program-api table.info")).to_contain_text(releases.markup)  # its path, as text
    expect(page.locator("#program-api table.history")).to_contain_text(releases.markup)
    expect(section.locator("input[name=path]")).to_have_value(releases.markup)  # as typed, "&amp;" and all
    assert page.locator("#injected, #injected-path").count() == 0
    sv.rpc.littleboss.reload("api", releases.v1)


def test_long_paths_wrap_inside_the_page_and_short_fields_stay_on_one_line(sv, releases, page):
    long = releases.add("build-4712-" + "0123456789abcdef" * 8, "long")
    sv.wait_running("api")
    sv.rpc.littleboss.reload("api", long)
    sv.rpc.littleboss.reload("api", releases.v1)
    page.goto(url(sv))
    section = page.locator("#program-api")
    for table in section.locator("table").all():
        assert table.evaluate("table => table.scrollWidth <= table.parentElement.clientWidth")
    latest = section.locator("table.history tbody tr").first
    expect(latest).to_contain_text(long)
    for cell in ("td:nth-child(1)", "td:nth-child(2)", "td:nth-child(5)", "td:nth-child(6)"):  # time .. seconds
        assert lines(latest.locator(cell)) == 1, latest.locator(cell).text_content()
    assert not overflows(section.locator("input[name=path]"))  # the binary in use, whole
    refused = f"/opt/{'elsewhere' * 30}/app"
    section.locator("input[name=path]").fill(refused)
    section.get_by_role("button", name="Reload").click()
    expect(page.locator(".status_msg")).to_contain_text(f"api: cannot reload to {refused}")
    assert not overflows(page.locator(".status_msg"))
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


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


def test_a_holding_canary_is_promoted_or_aborted_from_the_page(tmp_path, releases, page):
    sv = Supervisord(tmp_path, inet_http=True)
    port = free_port()
    sv.littleboss_program("pool", releases.v1, port, releases.allow, numprocs=2,
                          process_name="%(program_name)s_%(process_num)s")
    sv.start()
    try:
        wait_for(lambda: all(p["pid"] for p in sv.rpc.littleboss.getProgramInfo("pool")["processes"]),
                 what="the pool")
        # Promote a canary to v2 (the other process follows), then Abort one back to v1 (swapped back)
        for button, target, outcome in (("Promote", releases.v2, "done"), ("Abort", releases.v1, "failed")):
            sv.rpc.littleboss.reloadCanary("pool", target, 1, -1, False)
            wait_for(lambda: sv.rpc.littleboss.getProgramInfo("pool")["phase"] == "holding", what="the hold")
            page.goto(url(sv))
            section = page.locator("#program-pool")
            expect(section).to_contain_text("holding")
            section.get_by_role("button", name=button).click()
            last = wait_for(lambda: (last := sv.rpc.littleboss.getProgramInfo("pool")["last_reload"])["phase"]
                            in ("done", "failed") and last, timeout=30, what=f"{button} to take effect")
            assert last["phase"] == outcome, last
            assert sv.rpc.littleboss.getProgramInfo("pool")["path"] == releases.v2
            page.goto(url(sv))
            expect(page.locator("#program-pool").get_by_role("button", name="Promote")).to_have_count(0)
    finally:
        sv.stop()
