"""``/littleboss/metrics`` on a real supervisord's web server: behind its authentication, the
accept queue of a held socket while nothing accepts, counters that survive supervisord's
reload and restart."""
from __future__ import annotations

import base64
import re
import socket
import urllib.error
import urllib.request

import pytest
from harness import Supervisord, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # a real supervisord and its web server

CREDENTIALS = ("ops", "s3cret")


def scrape(sv: Supervisord, credentials: tuple[str, str] | None = CREDENTIALS) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{sv.http_port}/littleboss/metrics")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def value(text: str, sample: str) -> float:
    """The value of ``sample`` (name and labels, as exposed) in ``text``."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert match, f"{sample} not in:\n{text}"
    return float(match.group(1))


@pytest.fixture
def sv(tmp_path):
    sv = Supervisord(tmp_path, inet_http=True, credentials=CREDENTIALS)
    sv.port = free_port()
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.port}", littleboss_ready="notify",
               littleboss_socket_backlog=16)
    sv.start()
    sv.wait_running("web")
    yield sv
    sv.stop()


def test_a_scrape_without_credentials_is_refused(sv):
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(sv, credentials=None)
    assert refused.value.code == 401


def test_connections_queue_on_the_held_socket_while_the_program_is_stopped(sv):
    queue, backlog = 'littleboss_socket_accept_queue{program="web",socket="http"}', \
        'littleboss_socket_backlog{program="web",socket="http"}'
    assert value(scrape(sv), queue) == 0 and value(scrape(sv), backlog) == 16
    sv.ctl("stop", "web", check=True)
    clients = [socket.create_connection(("127.0.0.1", sv.port), timeout=10) for _ in range(3)]
    try:
        assert value(scrape(sv), queue) == 3  # supervisord holds the socket: they wait, none is refused
        sv.ctl("start", "web", check=True)
        wait_for(lambda: value(scrape(sv), queue) == 0, what="the queued connections to be accepted")
    finally:
        for client in clients:
            client.close()


def test_counters_survive_supervisords_reload_and_restart(sv):
    succeeded = 'littleboss_reloads_total{program="web",kind="reload",outcome="succeeded"}'
    sv.rpc.littleboss.reload("web", "")
    sv.rpc.littleboss.reload("web", "")
    text = scrape(sv)
    assert value(text, succeeded) == 2 and value(text, 'littleboss_reload_duration_seconds_count{program="web"}') == 2
    assert value(text, 'littleboss_reload_drain_seconds_count{program="web"}') == 2
    assert value(text, 'littleboss_processes{program="web",role="serving"}') == 1
    sv.hup()
    assert value(scrape(sv), succeeded) == 2 and value(scrape(sv), "littleboss_supervisord_reloads_total") == 1
    sv.stop()
    sv.start()
    text = scrape(sv)
    assert value(text, succeeded) == 2 and value(text, "littleboss_supervisord_starts_total") == 2
