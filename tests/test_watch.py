"""The check keeps watching after promotion: a new binary that passes its check, then fails it
inside littleboss_fallback_window, is rolled back with zero downtime; after the window nothing
happens. Real supervisord, real clients under load."""
from __future__ import annotations

import sys

import pytest
from harness import Releases, Supervisord, free_port, http_get, make_executable, wait_for
from load import Load

pytestmark = pytest.mark.e2e  # real supervisords, programs and clients

CHECK = f"""#!/bin/sh
exec {sys.executable} -c '
import os, sys, urllib.error, urllib.request
url = os.environ["LITTLEBOSS_SOCKET_HTTP"].replace("tcp://", "http://") + "/health"
try:
    urllib.request.urlopen(url, timeout=2)
except urllib.error.HTTPError as error:
    sys.exit(f"HTTP {{error.code}}")
'
"""


def serving(sv: Supervisord) -> str:
    return http_get(("127.0.0.1", sv.port)).split()[0].decode()


def setup(tmp_path, window: int) -> tuple[Supervisord, Releases, str]:
    sv, releases = Supervisord(tmp_path), Releases(tmp_path)
    sick = releases.add("sick", "v2", "--unhealthy-after", "2")  # healthy for 2 s after it starts
    check = make_executable(tmp_path / "checks", "health", CHECK, "check")
    sv.port = free_port()
    sv.littleboss_program("web", releases.v1, sv.port, releases.allow, littleboss_check=check,
                          littleboss_check_interval=0.5, littleboss_check_failures=3,
                          littleboss_fallback_window=window)
    sv.start()
    sv.wait_running("web")
    return sv, releases, sick


def test_a_binary_that_fails_its_check_after_promotion_is_rolled_back_within_the_window(tmp_path):
    sv, releases, sick = setup(tmp_path, window=30)
    try:
        with Load(("127.0.0.1", sv.port)) as load:
            load.wait_for_requests(50)
            result = sv.rpc.littleboss.reload("web", sick)
            assert result["phase"] == "done" and serving(sv) == "v2"  # it passed its check, and was promoted
            history = wait_for(lambda: (info := sv.rpc.littleboss.getProgramInfo("web"))["history"][-1]["kind"]
                               == "fallback" and info["history"], timeout=20, what="the fallback")
            wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["path"] == releases.v1,
                     what="the previous binary to be swapped back in")
            load.wait_for_requests(50)
        assert load.result.failed == 0, load.result  # the 503s were the check's, from the app itself
        assert history[-1]["outcome"] == (
            f"rolled back automatically: {sick} failed its check 3 times in a row after its promotion "
            "(last: exit status 1; last output: HTTP 503)"), history[-1]
        assert serving(sv) == "v1"
        assert "check failed after its promotion (1 of 3 in a row)" in sv.log.read_text()
    finally:
        sv.stop()


def test_the_same_failure_after_the_window_changes_nothing(tmp_path):
    sv, releases, sick = setup(tmp_path, window=1)
    try:
        sv.rpc.littleboss.reload("web", sick)
        pid = sv.info("web")["pid"]
        # the window closes (1 s) before the binary turns unhealthy (2 s): the watch, and its checks, end
        wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["last_reload"]["watched_until"] == 0,
                 what="the fallback window to close")
        wait_for(lambda: health(sv) == "unhealthy", what="the new binary to turn unhealthy")
        assert serving(sv) == "v2" and sv.info("web")["pid"] == pid
        assert [entry["kind"] for entry in sv.rpc.littleboss.getProgramInfo("web")["history"]] == ["reload"]
        assert "check failed after its promotion" not in sv.log.read_text()
    finally:
        sv.stop()


def health(sv: Supervisord) -> str:
    try:
        http_get(("127.0.0.1", sv.port), "/health")
        return "healthy"
    except RuntimeError as exc:
        return "unhealthy" if "503" in str(exc) else str(exc)
