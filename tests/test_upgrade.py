"""supervisord upgraded in place (``littleboss.upgrade``): the same pid re-executes itself and
takes its littleboss programs' processes up (same pids, sockets, logs); a failed preflight
changes nothing; a supervisord killed right after the exec is recovered as after kill -9.
Real supervisords, real clients under load."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest
from harness import VENV_ENV, Supervisord, free_port, http_get, pid_alive, wait_for
from load import Load
from test_sighup import POOL, fd_count, pids, web

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisords, programs and clients

UPGRADE_WAIT = 60  # seconds for supervisord to answer again after an upgrade
RATE = 100  # requests a second per client, at most, in the upgrades under load


def rss_kb(pid: int) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS"))


def run_info(sv: Supervisord) -> dict | None:
    """getRunInfo, or None while supervisord does not answer (it re-executes itself)."""
    try:
        return sv.rpc.littleboss.getRunInfo()
    except (OSError, xmlrpc.client.Fault):
        return None


def upgrade(sv: Supervisord) -> dict:
    """littleboss.upgrade, then wait until the new code answers; its getRunInfo."""
    answer = sv.rpc.littleboss.upgrade()
    info = wait_for(lambda: (info := run_info(sv)) and info["upgrades"] == answer["upgrade"] and info,
                    timeout=UPGRADE_WAIT, what=f"supervisord to answer after upgrade {answer['upgrade']}")
    wait_for(lambda: sv.rpc.supervisor.getState()["statename"] == "RUNNING", what="supervisord RUNNING")
    return info


@pytest.fixture
def sv(tmp_path: Path):
    """A supervisord of the test's own with a littleboss program, a littleboss pool of 4 and a
    plain program."""
    sv = Supervisord(tmp_path)
    sv.web_port, sv.pool_port = free_port(), free_port()
    web(sv, sv.web_port)
    sv.program("pool", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.pool_port}", **POOL)
    sv.program("plain", command="sleep 3600", stopsignal="KILL")
    sv.start()
    sv.wait_running("web")
    wait_for(lambda: all(pids(sv, "pool")), what="the pool running")
    yield sv
    sv.stop()


@pytest.mark.parametrize("keepalive, upgrades", [
    pytest.param(False, 20, id="new-connections", marks=pytest.mark.soak),
    pytest.param(True, 20, id="keep-alive", marks=pytest.mark.soak),
    pytest.param(False, 2, id="two-new-connections"),  # the same steps, where soak tests are left out
])
def test_upgrades_in_a_row_keep_every_littleboss_process_serving(sv, keepalive, upgrades):
    before = {name: pids(sv, name) for name in ("web", "pool")}
    history, uptime = sv.rpc.littleboss.getProgramInfo("web")["history"], sv.info("web:web")["start"]
    # clients at a bounded rate: unbounded, the eight of them starve supervisord's new code of the CPU
    # (5 s an upgrade, not 1.5), and a refusal would still fail several of their requests
    with Load(("127.0.0.1", sv.web_port), keepalive=keepalive, duration=240, rate=RATE) as load, \
            Load(("127.0.0.1", sv.pool_port), keepalive=keepalive, duration=240, rate=RATE) as pool_load:
        for n in range(1, upgrades + 1):
            load.wait_for_requests(20)
            pool_load.wait_for_requests(20)
            info = upgrade(sv)
            assert info["pid"] == sv.proc.pid and sv.proc.poll() is None, f"upgrade {n}"
            assert {name: pids(sv, name) for name in before} == before, f"upgrade {n}"
            line = f"said-after-upgrade-{n}"
            http_get(("127.0.0.1", sv.web_port), f"/print?{line}")
            wait_for(lambda line=line: line in (sv.root / "web.log").read_text(), what=f"{line!r} in web.log")
            if n == 1:
                fds, rss = fd_count(sv.proc.pid), rss_kb(sv.proc.pid)
        load.wait_for_requests(20)
        pool_load.wait_for_requests(20)
    for result in (load.result, pool_load.result):
        assert result.failed == 0 and result.broken == 0, result
    assert sv.info("web:web")["statename"] == "RUNNING" and sv.info("web:web")["start"] == uptime
    assert sv.rpc.littleboss.getProgramInfo("web")["history"] == history
    # nothing leaks from one upgrade to the next (a client's connection may linger a moment)
    wait_for(lambda: fd_count(sv.proc.pid) <= fds, what=f"supervisord's fds back to {fds}")
    assert rss_kb(sv.proc.pid) < rss + 2048, (rss, rss_kb(sv.proc.pid))
    log = sv.log.read_text()
    assert log.count("upgraded in place") == upgrades and "reaped unknown pid" not in log
    assert sv.info("plain")["statename"] == "RUNNING"  # restarted, as on supervisord's reload


def test_a_failed_preflight_changes_nothing(sv):
    before = {name: pids(sv, name) for name in ("web", "pool")}
    with Load(("127.0.0.1", sv.web_port)) as load:
        load.wait_for_requests(20)
        with open(sv.confd / "web.conf", "a") as conf:
            conf.write("littleboss_bogus = 1\n")
        with pytest.raises(xmlrpc.client.Fault) as fault:
            sv.rpc.littleboss.upgrade()
        load.wait_for_requests(20)
    assert fault.value.faultCode == LittlebossFaults.PREFLIGHT_FAILED
    assert "littleboss_bogus" in fault.value.faultString and "nothing was changed" in fault.value.faultString
    assert load.result.failed == 0, load.result
    assert {name: pids(sv, name) for name in before} == before
    assert sv.rpc.littleboss.getRunInfo()["upgrades"] == 0 and sv.proc.poll() is None


def test_a_plugin_that_no_longer_imports_fails_the_preflight(tmp_path):
    """Another plugin of supervisord's, upgraded to a release that cannot be imported."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "extraplugin.py").write_text("def make(supervisord, **config):\n    return object()\n")
    sv = Supervisord(tmp_path)
    sv.conf.write_text(sv.conf.read_text() + "\n[rpcinterface:extra]\nsupervisor.rpcinterface_factory = "
                                              "extraplugin:make\n")
    port = free_port()
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}", littleboss_ready="notify")
    sv.start(env={"PYTHONPATH": str(plugins)})
    try:
        pid = sv.wait_running("web")
        (plugins / "extraplugin.py").write_text("def make(supervisord, **config)\n")  # a syntax error
        with pytest.raises(xmlrpc.client.Fault) as fault:
            sv.rpc.littleboss.upgrade()
        assert fault.value.faultCode == LittlebossFaults.PREFLIGHT_FAILED
        assert "extraplugin" in fault.value.faultString, fault.value.faultString
        assert sv.info("web")["pid"] == pid and http_get(("127.0.0.1", port)).startswith(b"v1 ")
    finally:
        sv.stop()


def test_a_second_upgrade_or_one_during_a_reload_is_refused(sv):
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.web_port}", littleboss_ready="notify",
               littleboss_settle=60, environment="APP_VERSION=v2")
    sv.hup()  # a config swap whose candidate settles for 60 s
    wait_for(lambda: sv.rpc.littleboss.getProgramInfo("web")["phase"] == "settling", what="the swap to settle")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        sv.rpc.littleboss.upgrade()
    assert fault.value.faultCode == LittlebossFaults.RELOAD_IN_PROGRESS
    assert "web: a reload is in progress" in fault.value.faultString
    assert sv.rpc.littleboss.getRunInfo()["upgrades"] == 0


def test_killed_right_after_the_exec_the_next_supervisord_recovers_with_nothing_refused(sv):
    web, pool = pids(sv, "web"), pids(sv, "pool")
    with Load(("127.0.0.1", sv.web_port)) as load:
        load.wait_for_requests(50)
        sv.rpc.littleboss.upgrade()
        # the new code has read the handover record (and removed it): kill it there
        record = sv.root / "supervisord-littleboss.handover.json"
        wait_for(lambda: "upgrading supervisord" in sv.log.read_text() and not record.exists()
                 and sv.log.read_text().count("supervisord started with pid") == 2, what="the exec")
        sv.proc.kill()
        sv.proc.wait()
        load.wait_for_requests(50)  # the processes left serve on
        assert all(pid_alive(pid) for pid in web + pool)
        sv.start()
        new = sv.wait_running("web")
        wait_for(lambda: not any(pid_alive(pid) for pid in web + pool), timeout=30, what="the orphans to stop")
        load.wait_for_requests(50)
    assert load.result.failures["refused"] == 0, load.result
    assert new not in web and all(pids(sv, "pool"))


def test_a_daemonized_supervisord_keeps_its_pid_pidfile_and_dev_null_through_upgrades(tmp_path):
    sv = Supervisord(tmp_path)
    port = free_port()
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{port}", littleboss_ready="notify")
    pidfile = tmp_path / "supervisord.pid"
    subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(sv.conf)], env=VENV_ENV,
                   check=True, timeout=30)  # forks: returns once the daemon runs
    daemon = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pidfile"))
    try:
        web = wait_for(lambda: run_info(sv) and sv.info("web")["statename"] == "RUNNING"
                       and sv.info("web")["pid"], what="web RUNNING")
        for _ in range(2):  # the second runs in a process the first re-executed
            upgrade = sv.rpc.littleboss.upgrade()["upgrade"]
            info = wait_for(lambda n=upgrade: (info := run_info(sv)) and info["upgrades"] == n and info,
                            timeout=UPGRADE_WAIT, what="supervisord to answer after its upgrade")
            assert info["pid"] == daemon and pid_alive(daemon)
            assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()) == str(daemon)
            assert sv.info("web")["pid"] == web and http_get(("127.0.0.1", port)).startswith(b"v1 ")
            # its standard fds stay the daemon's /dev/null (closed by the exec, the next files opened took them)
            assert [os.readlink(f"/proc/{daemon}/fd/{fd}") for fd in (0, 1, 2)] == ["/dev/null"] * 3
        assert sv.log.read_text().count("daemonizing the supervisord process") == 1
    finally:
        os.kill(daemon, signal.SIGTERM)
        wait_for(lambda: not pid_alive(daemon), timeout=30, what="the daemon to exit")
