"""The program-side helper (supervisor_littleboss.program) and the example, myblog."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import (
    EXAMPLE,
    VENV_ENV,
    Supervisord,
    free_port,
    http_get,
    make_myblog_release,
    make_release,
    pid_alive,
    wait_for,
)
from load import Load

from supervisor_littleboss.program import Littleboss

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # each test starts a real supervisord (or a program)

MYBLOG = str(EXAMPLE / "myblog.py")
CONF_D = Path(__file__).parent.parent / "conf.d"  # the example as a checkout has it


def release(root: Path, version: str) -> str:
    """A copy of myblog, as version ``version``, at root/releases/VERSION/myblog."""
    return make_myblog_release(root / "releases", version, version)


def hello(port: int) -> str:
    return http_get(("127.0.0.1", port)).decode()


def serve_then_sigterm(argv: list[str], port: int, what: str) -> bytes:
    """Run ``argv`` outside supervisord; return what it answers on ``port``, then check
    that SIGTERM stops it with status 0."""
    server = subprocess.Popen(argv, env=VENV_ENV)
    try:
        answer = wait_for(lambda: http_get(("127.0.0.1", port)), what=what)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        return answer
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.fixture
def myblog(supervisord: Supervisord):
    ports = {"admin": free_port(), "http": free_port()}
    supervisord.littleboss_program("myblog", MYBLOG,
                                   f"admin=tcp://127.0.0.1:{ports['admin']}, http=tcp://127.0.0.1:{ports['http']}",
                                   f"{supervisord.root}/releases/*/myblog")
    supervisord.start()
    supervisord.ports = ports
    return supervisord


def test_under_supervisord_it_takes_its_socket_by_name_and_says_ready(myblog):
    pid = myblog.wait_running("myblog")
    port = myblog.ports["http"]  # the second socket: found by its name, not its position
    assert hello(port) == f"Hello from myblog version 1, pid {pid}\n"
    assert myblog.rpc.littleboss.getProgramInfo("myblog")["notify_status"] == "myblog version 1 serving"
    with Load(("127.0.0.1", port), keepalive=True) as load:
        load.wait_for_requests(100)
        result = myblog.rpc.littleboss.reload("myblog", "")  # promoted on its READY=1
        load.wait_for_requests(100)
    assert load.result.failed == 0, load.result
    assert hello(port).endswith(f"pid {result['new_pid']}\n")
    myblog.ctl("stop", "myblog", check=True)  # a stopped program has no status of its own
    assert myblog.rpc.littleboss.getProgramInfo("myblog")["notify_status"] == ""
    assert "status" not in myblog.ctl("littleboss:status", "myblog", check=True).stdout


def test_littleboss_reload_flag_swaps_in_this_executable(myblog):
    myblog.wait_running("myblog")
    v2 = release(myblog.root, "2")
    with Load(("127.0.0.1", myblog.ports["http"])) as load:
        swap = subprocess.run([v2, "--littleboss=reload", "-c", str(myblog.conf)],
                              capture_output=True, text=True, env=VENV_ENV, timeout=60)
        load.wait_for_requests(50)
    assert swap.returncode == 0, swap.stderr
    assert swap.stdout.startswith(f"myblog: reloaded {MYBLOG} \u2192 {v2} (pid ")
    assert hello(myblog.ports["http"]).startswith("Hello from myblog version 2")
    assert load.result.failed == 0, load.result
    status = subprocess.run([v2, "--littleboss=status", "-s", f"unix://{myblog.sock}"],
                            capture_output=True, text=True, env=VENV_ENV, timeout=60)
    assert status.stdout.startswith(f"myblog: RUNNING pid {myblog.info('myblog')['pid']} binary {v2}")


def test_littleboss_reload_flag_failure_is_one_line_and_non_zero(myblog, tmp_path_factory):
    myblog.wait_running("myblog")
    stray = release(tmp_path_factory.mktemp("elsewhere"), "9")
    swap = subprocess.run([stray, "--littleboss=reload", "-c", str(myblog.conf)],
                          capture_output=True, text=True, env=VENV_ENV, timeout=60)
    assert swap.returncode == 1
    assert swap.stderr.startswith(f"myblog: ERROR: NOT_ALLOWED: myblog: cannot reload to {stray}")
    assert len(swap.stderr.splitlines()) == 1


def test_run_directly_it_binds_its_own_address_and_stops_on_sigterm():
    port = free_port()
    answer = serve_then_sigterm([sys.executable, MYBLOG, f"--http=127.0.0.1:{port}"], port, "myblog in bypass mode")
    assert answer.startswith(b"Hello from myblog version 1")


def test_inherited_sockets_by_name_and_the_variables_are_cleared():
    script = textwrap.dedent("""
        import json, os, socket
        from supervisor_littleboss.program import Littleboss
        admin, http = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
        os.dup2(admin.fileno(), 3); os.dup2(http.fileno(), 4)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="admin:http",
                          NOTIFY_SOCKET="@nowhere")
        lb = Littleboss("svc")
        listener = lb.listener("http", "tcp", "127.0.0.1:1", "address")
        lb.open_listeners()
        print(json.dumps({"got": listener.socket().getsockname()[1], "want": http.getsockname()[1],
                          "env": sorted(k for k in os.environ if k.startswith(("LISTEN_", "NOTIFY_"))),
                          "supervised": lb.supervised}))
        lb.listener("https", "tcp", "127.0.0.1:1", "address")
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="admin:http")
        lb.open_listeners()
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    seen = json.loads(run.stdout)
    assert seen["got"] == seen["want"] and seen["supervised"] and seen["env"] == []
    assert run.returncode == 1
    assert run.stderr.strip() == ("svc: supervisord passed no socket named 'https' (LISTEN_FDNAMES=admin:http); "
                                  "add https=URL to littleboss_sockets in [program:svc]")


def test_ready_is_a_no_op_without_supervisord(mocker):
    from supervisor_littleboss.program import Littleboss

    send = mocker.patch("socket.socket.sendto")
    Littleboss("svc").ready()
    assert not send.called


@pytest.mark.parametrize("flavour", ["conf.d", "copied"])
def test_the_example_starts_as_documented_and_reloads_under_load(tmp_path, flavour):
    """As a checkout has it (conf.d/, its files linking to the package's), and as
    ``python -m supervisor_littleboss.example`` copies it out of an installed package."""
    example = tmp_path / "example"
    if flavour == "conf.d":  # as checked out: run/ holds only its .gitignore
        shutil.copytree(CONF_D, example, ignore=shutil.ignore_patterns("releases", "*.log", "*.pid", "*.sock",
                                                                       "*.json"))
    else:
        subprocess.run([sys.executable, "-m", "supervisor_littleboss.example", str(example)], check=True,
                       capture_output=True, timeout=60)
    port = free_port()
    conf = example / "myblog.conf"
    conf.write_text(conf.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(example / "supervisord.conf")]
    started = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(example / "supervisord.conf")],
                             env=VENV_ENV, timeout=60)
    assert started.returncode == 0  # it daemonized
    pid = int(wait_for(lambda: (example / "run" / "supervisord.pid").read_text(), what="the pid file"))
    try:
        assert wait_for(lambda: hello(port), what="myblog").startswith("Hello from myblog version 1")
        v2 = release(example, "2")
        with Load(("127.0.0.1", port), keepalive=True) as load:
            load.wait_for_requests(100)
            swap = subprocess.run([*ctl, "littleboss:reload", "myblog", v2], capture_output=True, text=True,
                                  timeout=60)
            load.wait_for_requests(100)
        assert swap.returncode == 0, swap.stdout
        assert hello(port).startswith("Hello from myblog version 2")
        assert load.result.failed == 0, load.result
        assert subprocess.run([*ctl, "littleboss:rollback", "myblog"], capture_output=True, timeout=60).returncode == 0
        assert hello(port).startswith("Hello from myblog version 1")
    finally:
        subprocess.run([*ctl, "shutdown"], capture_output=True, timeout=60)
        try:
            wait_for(lambda: not pid_alive(pid), timeout=30, what="the example supervisord to exit")
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # ours: started above
    assert not os.path.exists(example / "run" / "supervisor.sock")


def test_a_listener_name_with_a_dash_is_an_option():
    from supervisor_littleboss.program import Littleboss

    lb = Littleboss("svc")
    admin = lb.listener("http-admin", "tcp", "127.0.0.1:1", "admin address")
    lb.parse_args(["--http-admin=127.0.0.1:2", "--own-flag"])
    assert admin.address == "127.0.0.1:2"


def test_run_async_serves_until_sigterm():
    port = free_port()
    script = textwrap.dedent(f"""
        import asyncio
        from supervisor_littleboss.program import Littleboss

        lb = Littleboss("svc")
        http = lb.listener("http", "tcp", "127.0.0.1:{port}", "address")

        async def main(stop):
            async def answer(reader, writer):
                await reader.readuntil(b"\\r\\n\\r\\n")
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\nConnection: close\\r\\n\\r\\nasync\\n")
                await writer.drain()
                writer.close()
            server = await asyncio.start_server(answer, sock=http.socket())
            await stop.wait()
            server.close()
            await server.wait_closed()

        lb.run_async(main)
    """)
    assert serve_then_sigterm([sys.executable, "-c", script], port, "the asyncio server") == b"async\n"


def test_littleboss_start_and_stop_flags_say_what_happened_as_supervisorctl_does(myblog):
    myblog.wait_running("myblog")

    def flag(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([MYBLOG, f"--littleboss={mode}", "-c", str(myblog.conf)],
                              capture_output=True, text=True, env=VENV_ENV, timeout=60)

    outcomes = [flag(mode) for mode in ("start", "stop", "stop", "start")]
    assert [o.returncode for o in outcomes] == [0, 0, 0, 0], [o.stderr for o in outcomes]
    assert [o.stdout for o in outcomes] == ["myblog: already started\n", "myblog: stopped\n",
                                            "myblog: already stopped\n", "myblog: started\n"]
    assert myblog.info("myblog")["statename"] == "RUNNING"


def test_littleboss_start_flag_of_a_program_that_cannot_start_exits_7(supervisord: Supervisord):
    crash = make_release(supervisord.root / "releases", "crash", "v9", "--mode", "crash")
    supervisord.program("myblog", command=crash, autostart="false", startsecs=1, startretries=0,
                        littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}")
    supervisord.start()
    started = subprocess.run([MYBLOG, "--littleboss=start", "-c", str(supervisord.conf)],
                             capture_output=True, text=True, env=VENV_ENV, timeout=60)
    assert started.returncode == 7, (started.stdout, started.stderr)
    assert started.stderr.startswith("myblog: ERROR: myblog: ")


def test_the_watchdog_is_read_from_the_environment_and_pinged_over_the_notify_socket():
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(f"\0littleboss-test-watchdog-{os.getpid()}")
    receiver.settimeout(5)
    lb = Littleboss("svc")
    pid = str(os.getpid())
    lb.inherited({"LISTEN_PID": pid, "LISTEN_FDS": "0", "NOTIFY_SOCKET": f"@littleboss-test-watchdog-{pid}",
                  "WATCHDOG_USEC": "1500000", "WATCHDOG_PID": pid})
    assert lb.watchdog_seconds == 1.5
    lb.watchdog()
    assert receiver.recv(100) == b"WATCHDOG=1"
    other = Littleboss("svc")  # a watchdog meant for another pid (a parent's) is not ours
    other.inherited({"LISTEN_PID": pid, "LISTEN_FDS": "0", "WATCHDOG_USEC": "1500000", "WATCHDOG_PID": "1"})
    assert other.watchdog_seconds == 0
    receiver.close()
