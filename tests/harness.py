"""A real supervisord in a temporary directory, driven the way operators drive it."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

import supervisor_littleboss.example
from supervisor_littleboss.plugin import STATE_FILE_NAME
from supervisor_littleboss.state import ProgramState, parse_program, program_file

# every process the tests start inherits this: the orphan check finds this session's only,
# even while another suite runs beside it (a developer's run beside CI's, say)
SESSION = os.environ.setdefault("LITTLEBOSS_TEST_SESSION", str(os.getpid()))
APPS = Path(__file__).parent / "apps"
EXAMPLE = Path(supervisor_littleboss.example.__file__).parent  # the myblog example, shipped in the package
# as in an activated virtualenv: `python3` (scripts' shebangs) is the Python running the tests
VENV_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
HTTPAPP = f"{sys.executable} {APPS / 'httpapp.py'}"
GUNICORN = f"{sys.executable} -m gunicorn --no-control-socket --workers 2 --chdir {APPS} wsgiapp:app"
NODEAPP = APPS / "nodeapp.js"  # the Node.js recipe's server
GOAPP = APPS / "goapp"  # the Go recipe's server (a module: main.go)
# the test ASGI app's argument for each server littleboss's launcher runs (supervisor_littleboss.serve)
ASGI_APP = {"uvicorn": f"--app-dir {APPS} --no-access-log asgiapp:app", "hypercorn": f"{APPS / 'asgiapp'}:app"}


_HANDED_OUT: set[int] = set()


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, and never one this process handed out before: the
    kernel may offer a port again once its probe socket is closed, and two programs
    given the same "free" port collide."""
    while True:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def socket_inode(pid: int, fd: int = 3) -> str:
    """``socket:[N]`` naming the open socket at ``fd`` of process ``pid``."""
    return os.readlink(f"/proc/{pid}/fd/{fd}")


class Supervisord:
    """One supervisord, its config in ``root``; programs live in ``root/conf.d/*.conf``."""

    def __init__(self, root: Path, inet_http: bool = False, credentials: tuple[str, str] | None = None) -> None:
        self.root = root
        self.confd = root / "conf.d"
        self.confd.mkdir(parents=True, exist_ok=True)
        self.sock = root / "supervisor.sock"
        self.conf = root / "supervisord.conf"
        self.log = root / "supervisord.log"
        self.output = root / "supervisord.out"
        # a second HTTP server makes supervisord call the RPC factory twice
        # (also the web UI: http://127.0.0.1:{http_port}/, behind ``credentials`` if given)
        self.http_port = free_port() if inet_http else 0
        inet = f"port = 127.0.0.1:{self.http_port}" if inet_http else ""
        self.conf.write_text(textwrap.dedent(f"""\
            [unix_http_server]
            file = {self.sock}

            [{'inet_http_server' if inet_http else 'x_unused'}]
            {inet}

            [supervisord]
            logfile = {self.log}
            pidfile = {root / 'supervisord.pid'}
            childlogdir = {root}
            loglevel = debug

            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

            [rpcinterface:littleboss]
            supervisor.rpcinterface_factory = supervisor_littleboss.rpcinterface:make_littleboss_rpcinterface

            [supervisorctl]
            serverurl = unix://{self.sock}

            [ctlplugin:littleboss]
            supervisor.ctl_factory = supervisor_littleboss.controller:make_littleboss_controllerplugin

            [include]
            files = {self.confd}/*.conf
            """))
        if credentials:
            self.conf.write_text(self.conf.read_text().replace(inet, inet + "\nusername = {}\npassword = {}".format(
                *credentials), 1))
        self.proc: subprocess.Popen | None = None

    # configuration -------------------------------------------------------
    def program(self, name: str, body: str = "", command: str = HTTPAPP, **keys: object) -> None:
        """Write ``[program:name]`` with ``keys`` (and free-form ``body``) to conf.d/name.conf; a key
        given overrides the defaults written first (supervisord's parser keeps the last)."""
        lines = [f"[program:{name}]", f"command = {command}", "startsecs = 0", "stopwaitsecs = 10",
                 f"stdout_logfile = {self.root / (name + '.log')}", "redirect_stderr = true"]
        lines += [f"{key} = {value}" for key, value in keys.items()]
        (self.confd / f"{name}.conf").write_text("\n".join(lines) + "\n" + textwrap.dedent(body))

    def littleboss_program(self, name: str, command: str, sockets: int | str, allow: str | None = None,
                           ready: str | None = "notify", **keys: object) -> None:
        """``[program:name]`` as a littleboss program: ``sockets`` (a port: ``http`` on
        127.0.0.1; or a whole ``littleboss_sockets`` value), ``allow`` (``littleboss_allow``,
        often ``Releases.allow``), ready when it says READY=1 (``ready``: ``littleboss_ready``,
        None to leave it unset), and ``keys``, the settings that make the test's program special."""
        littleboss = {"littleboss_sockets": f"http=tcp://127.0.0.1:{sockets}" if isinstance(sockets, int) else sockets}
        if allow is not None:
            littleboss["littleboss_allow"] = allow
        if ready is not None:
            littleboss["littleboss_ready"] = ready
        self.program(name, command=command, **littleboss, **keys)

    def remove_program(self, name: str) -> None:
        (self.confd / f"{name}.conf").unlink()

    # lifecycle -----------------------------------------------------------
    def start(self, wait: bool = True, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start supervisord in the foreground (``env``: more environment variables)."""
        with open(self.output, "w") as output:  # a file, never a pipe nobody reads: it would block supervisord
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.conf)],
                stdout=output, stderr=subprocess.STDOUT, env={**VENV_ENV, **(env or {})},
            )
        if wait:
            wait_for(lambda: self.proc.poll() is not None or self.rpc.supervisor.getState()["statename"] == "RUNNING",
                     what="supervisord to run")
            assert self.proc.poll() is None, self.output.read_text()
        return self.proc

    def exit_output(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for supervisord to exit by itself: its exit status and what it printed."""
        return self.proc.wait(timeout), self.output.read_text()

    def stop(self) -> None:
        """Shut down by pid (SIGTERM), then wait for it and every child it had to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self.child_pids()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            for pid in children:  # what it had not stopped yet: nothing outlives the test
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            raise AssertionError(f"supervisord {self.proc.pid} had not stopped its programs 30 s after SIGTERM: "
                                 f"killed it and its children {children}; its log ends: "
                                 f"{self.log.read_text()[-1500:] if self.log.exists() else ''}") from None
        wait_for(lambda: not any(pid_alive(pid) for pid in children), what=f"supervisord's children {children} to exit")

    def zombie_children(self) -> list[int]:
        """Children of supervisord that exited and were not reaped."""
        return [pid for pid in self.child_pids() if not pid_alive(pid)]

    def child_pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except FileNotFoundError:
            return []

    def hup(self) -> None:
        """``supervisorctl reload`` and wait until supervisord serves again."""
        result = self.ctl("reload")
        assert "Restarted supervisord" in result.stdout, result.stdout
        wait_for(lambda: self.rpc.supervisor.getState()["statename"] == "RUNNING", what="supervisord after reload")

    # clients -------------------------------------------------------------
    @property
    def rpc(self) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.sock}")
        )

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args],
            capture_output=True, text=True, timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def saved_state(self, name: str) -> ProgramState:
        """Program ``name``'s state as littleboss last saved it (the default state file's)."""
        path = program_file(str(self.root / STATE_FILE_NAME), name)
        return parse_program(Path(path).read_text())[1]

    def info(self, name: str) -> dict:
        return self.rpc.supervisor.getProcessInfo(name)

    def wait_running(self, name: str, not_pid: int | None = None) -> int:
        """Wait until ``name`` is RUNNING (with a pid other than ``not_pid``); return its pid."""
        def running():
            info = self.info(name)
            return info["statename"] == "RUNNING" and info["pid"] != not_pid and info["pid"]
        try:
            return wait_for(running, what=f"{name} RUNNING")
        except AssertionError as exc:  # say where it stood, and why
            info = self.info(name)
            raise AssertionError(f"{exc}: it is {info['statename']} (pid {info['pid']}, "
                                 f"{info['spawnerr'] or info['description']!r})") from None

    def wait_state(self, name: str, statename: str) -> dict:
        return wait_for(lambda: (info := self.info(name))["statename"] == statename and info,
                        what=f"{name} {statename}")


def _listening(port: int) -> list[str] | None:
    """The /proc/net/tcp{,6} fields of the socket listening on ``port``, or None."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return fields
    return None


def accept_queue(port: int) -> int:
    """Connections waiting in the accept queue of the socket listening on ``port``."""
    fields = _listening(port)
    assert fields, f"nothing listens on port {port}"
    return int(fields[4].split(":")[1], 16)


def listen_backlog(port: int) -> int:
    """The backlog the socket listening on ``port`` was given (``ss``'s Send-Q of a listener)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


def listening_inode(port: int) -> str | None:
    """``socket:[N]`` of the socket listening on ``port`` (None if nothing listens)."""
    fields = _listening(port)
    return f"socket:[{fields[9]}]" if fields else None


def unix_listening_inode(path: str) -> str | None:
    """``socket:[N]`` of the unix socket listening at ``path`` (None if nothing listens)."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 8 and fields[7] == path and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
            return f"socket:[{fields[6]}]"
    return None


def address_family(address) -> int:
    if isinstance(address, str):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def http_get(address, path: str = "/", timeout: float = 10) -> bytes:
    """One GET over a new connection to a (host, port) or a unix socket path; the body.

    EOFError if the server closed without answering, RuntimeError for a status other than 200.
    """
    with KeepAliveClient(address, timeout) as client:
        return client.get(path)


class KeepAliveClient:
    """HTTP/1.1 GETs over one connection, reopened when the server answers ``Connection: close``."""

    def __init__(self, address, timeout: float = 10) -> None:
        self.address, self.timeout = address, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.connections = 0

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.sock:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def get(self, path: str = "/") -> bytes:
        if self.sock is None:
            self.sock = socket.socket(address_family(self.address))
            self.sock.settimeout(self.timeout)
            self.connections += 1
            try:
                self.sock.connect(self.address)
            except BaseException:
                self.close()
                raise
        try:
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            head = self._read_until(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            body = self._read_exactly(int(headers.get("content-length", 0)))
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        status = lines[0].split(" ", 2)[1]
        if status != "200":
            raise RuntimeError(f"HTTP {status}")
        return body

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed without a (complete) response")
        self.buffer += chunk


def make_executable(releases: Path, name: str, text: str, filename: str = "app") -> str:
    """An executable ``releases/name/filename`` holding ``text``, in directories that pass
    the reload's path checks (0755)."""
    directory = releases / name
    directory.mkdir(parents=True, exist_ok=True)
    for folder in (releases, directory):
        folder.chmod(0o755)
    path = directory / filename
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def make_release(releases: Path, name: str, version: str, *args: str) -> str:
    """An executable ``releases/name/app`` that runs the test server as ``version`` with ``args``."""
    return make_executable(releases, name, f"#!/bin/sh\nAPP_VERSION={version} exec {HTTPAPP} "
                                           f"{' '.join(args)} \"$@\"\n")


class Releases:
    """The binaries a test runs and reloads to, each an executable ``dir/NAME/app`` in
    directories that pass the reload's path checks: ``v1`` and ``v2`` (made by ``make``;
    by default the test server answering its version), and those a test adds with ``add``.
    ``allow`` is the ``littleboss_allow`` pattern that admits every one of them."""

    def __init__(self, root: Path, make: Callable[[Path, str], str] | None = None) -> None:
        self.dir = root / "releases"
        make = make or (lambda directory, version: make_release(directory, version, version))
        self.v1, self.v2 = make(self.dir, "v1"), make(self.dir, "v2")

    @property
    def allow(self) -> str:
        return f"{self.dir}/*/app"

    def add(self, name: str, version: str, *args: str) -> str:
        """``NAME/app``: the test server answering ``version``, run with ``args`` (see apps/httpapp.py)."""
        return make_release(self.dir, name, version, *args)

    def script(self, name: str, text: str) -> str:
        """``NAME/app``: a shell script running ``text``."""
        return make_executable(self.dir, name, f"#!/bin/sh\n{text}\n")


def make_gunicorn_release(releases: Path, version: str) -> str:
    """An executable ``releases/version/app`` that runs gunicorn with the test WSGI app as ``version``."""
    return make_executable(releases, version, f"#!/bin/sh\nAPP_VERSION={version} exec {GUNICORN}\n")


def require(tool: str, package: str,
            needed_by: str = "the Node.js and Go recipes' tests and benchmark scenarios") -> str:
    """The path of ``tool`` on PATH; an AssertionError that says how to install it if it is missing."""
    path = shutil.which(tool)
    if path is None:
        raise AssertionError(f"`{tool}` is not installed, and {needed_by} need it: apt-get install {package} "
                             "(scripts/test installs it)")
    return path


def make_node_release(releases: Path, version: str) -> str:
    """``releases/version/server.js``: a copy of the Node.js recipe's server that answers ``version``
    (run by its ``#!/usr/bin/env node`` line, as the recipe's ``command`` runs it)."""
    text = NODEAPP.read_text().replace("process.env.APP_VERSION || 'v1'", repr(version))
    return make_executable(releases, version, text, "server.js")


def make_go_release(releases: Path, version: str, cache: Path) -> str:
    """``releases/version/goapp``: the Go recipe's server built with ``go build`` as ``version``,
    with the build cache (and GOPATH) in ``cache``, offline."""
    env = {**os.environ, "GOCACHE": str(cache / "build"), "GOPATH": str(cache / "gopath"), "GOFLAGS": "",
           "GOPROXY": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    path = make_executable(releases, version, "", "goapp")
    build = subprocess.run([require("go", "golang-go"), "build", "-o", path, "-ldflags", f"-X main.version={version}",
                            "."], cwd=GOAPP, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    Path(path).chmod(0o755)
    return path


def served(server: str, *options: str) -> str:
    """The command serving the test ASGI app with ``server`` through littleboss's launcher
    (its script in this virtualenv, as README's recipes have it)."""
    launcher = Path(sys.executable).parent / "littleboss-serve"
    return " ".join([str(launcher), *options, server, ASGI_APP[server]])


def bind_options(server: str, port: int | str) -> str:
    """``server``'s own options to bind 127.0.0.1:``port`` (``"{port}"``: a template)."""
    return f"--host 127.0.0.1 --port {port}" if server == "uvicorn" else f"--bind 127.0.0.1:{port}"


def served_alone(server: str, port: int | str) -> str:
    """The command serving the test ASGI app with ``server`` itself, on 127.0.0.1:``port``."""
    return f"{sys.executable} -m {server} {ASGI_APP[server]} {bind_options(server, port)}"


def make_asgi_release(releases: Path, server: str, version: str, command: str = "") -> str:
    """An executable ``releases/SERVER-VERSION/app`` that serves the test ASGI app as ``version``,
    with ``server`` through the launcher (or ``command``)."""
    return make_executable(releases, f"{server}-{version}",
                           f"#!/bin/sh\nAPP_VERSION={version} exec {command or served(server)}\n")


def make_myblog_release(releases: Path, name: str, version: str) -> str:
    """A copy of the example's myblog, as ``version``, at ``releases/name/myblog``."""
    text = (EXAMPLE / "myblog.py").read_text().replace('VERSION = "1"', f'VERSION = "{version}"')
    return make_executable(releases, name, text, "myblog")


def reload_fault(call: Callable[[], object]) -> xmlrpc.client.Fault:
    """The XML-RPC fault ``call`` raises (failing the test if it raises none)."""
    try:
        call()
    except xmlrpc.client.Fault as fault:
        return fault
    raise AssertionError("expected an XML-RPC fault")
