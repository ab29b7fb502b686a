#!/usr/bin/python
"""Ansible module: reload or roll back a supervisord program through supervisor-littleboss's XML-RPC
interface, with zero downtime. Runs on the target host, on the standard library only."""
from __future__ import annotations

import base64
import http.client
import os
import socket
import xmlrpc.client

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: littleboss
short_description: Swap a supervisord program's binary with zero downtime (supervisor-littleboss)
version_added: 0.1.0
description:
  - Reloads a program of supervisord to a new binary (or rolls it back to its previous one)
    through the C(littleboss) XML-RPC interface of L(supervisor-littleboss,https://github.com/supervisor-littleboss/supervisor-littleboss).
    The new binary starts beside the old process on the same sockets and is promoted once it is
    ready; if it fails, it is stopped and the old process keeps serving, and the task fails with
    the fault's text.
  - Runs on the host where supervisord runs and talks to it directly (a unix socket or HTTP),
    with the Python standard library only.
  - Idempotent. With I(state=reloaded) nothing happens when the program already runs I(path)
    (compared as the file it resolves to on the host), unless I(force) is set. Without I(path)
    the task re-executes the program's current binary, which is always a change.
  - "I(state=rolled_back) with I(path): nothing happens when the program already runs I(path);
    if I(path) is its previous binary, it is rolled back to it; otherwise the task fails.
    Without I(path) every run rolls back (a second run returns to the binary the first one left),
    and the task fails with C(NO_PREVIOUS) when there is nothing to roll back to."
options:
  name:
    description:
      - The program, as in supervisord's C([program:NAME]) section.
    type: str
    required: true
  path:
    description:
      - The absolute path of the new binary. It replaces the first word of the program's C(command);
        supervisord checks it (C(littleboss_allow), permissions) as the file it resolves to.
      - Omitted or empty with I(state=reloaded), the current binary is re-executed.
      - With I(state=rolled_back), the binary the program must run once rolled back.
    type: str
  state:
    description:
      - C(reloaded) swaps in I(path); C(rolled_back) returns to the previous binary.
    type: str
    choices: [reloaded, rolled_back]
    default: reloaded
  server_url:
    description:
      - supervisord's RPC server, C(unix:///path/to/supervisor.sock) or C(http://host:port).
      - When omitted, the first of C(unix:///var/run/supervisor.sock), C(unix:///tmp/supervisor.sock)
        and C(http://localhost:9001) that answers (the sockets of Debian's and supervisor's sample
        configurations, and supervisorctl's own default).
    type: str
  username:
    description:
      - The C(username) of supervisord's C([unix_http_server]) or C([inet_http_server]) section.
    type: str
  password:
    description:
      - Its C(password).
    type: str
  wait:
    description:
      - Return once the new binary is promoted and the old processes have exited. When false, the
        task returns as soon as the reload has started (C(supervisorctl littleboss:status) follows it).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for supervisord's answer to each call. A reload with I(wait) lasts until the
        new binary is ready and the old one has drained (for each process of a C(numprocs) program),
        so keep this above that. When it expires the task fails, and the reload may still be running
        in supervisord.
    type: float
    default: 300
  force:
    description:
      - With I(state=reloaded), reload even when the program already runs I(path) (a re-exec).
    type: bool
    default: false
attributes:
  check_mode:
    description: Reports what would change without reloading.
    support: full
  diff_mode:
    description: No diff.
    support: none
notes:
  - supervisord must load supervisor-littleboss's RPC interface (C([rpcinterface:littleboss])).
  - The module runs on the target host; I(path) is resolved there.
  - The playbooks C(supervisor_littleboss.fleet.rolling_reload) and C(supervisor_littleboss.fleet.rollback)
    run it across a fleet, one host at a time.
author:
  - the supervisor-littleboss authors
"""

EXAMPLES = r"""
- name: Swap in release 42 of myblog
  supervisor_littleboss.fleet.littleboss:
    name: myblog
    path: /srv/myblog/releases/42/myblog

- name: Re-execute the current binary (e.g. after a `current` symlink was flipped)
  supervisor_littleboss.fleet.littleboss:
    name: myblog

- name: Make sure myblog runs release 41 again, by rolling back
  supervisor_littleboss.fleet.littleboss:
    name: myblog
    state: rolled_back
    path: /srv/myblog/releases/41/myblog

- name: Reload through an HTTP server with credentials, allowing 10 minutes
  supervisor_littleboss.fleet.littleboss:
    name: pool
    path: /srv/pool/releases/43/app
    server_url: http://127.0.0.1:9001
    username: deploy
    password: "{{ vault_supervisor_password }}"
    timeout: 600
"""

RETURN = r"""
name:
  description: The program.
  returned: always
  type: str
  sample: myblog
server_url:
  description: The supervisord RPC server the module talked to.
  returned: when supervisord answered
  type: str
  sample: unix:///var/run/supervisor.sock
old_path:
  description: The binary the program ran before the task (on a failure, the one still serving).
  returned: when supervisord answered
  type: str
  sample: /srv/myblog/releases/41/myblog
new_path:
  description: The binary it runs after the task (in check mode, would run).
  returned: success
  type: str
  sample: /srv/myblog/releases/42/myblog
old_pid:
  description: The pid of its (first) process before the task.
  returned: when supervisord answered
  type: int
  sample: 1234
new_pid:
  description: The pid of its (first) process after the task (in check mode, the old one).
  returned: success
  type: int
  sample: 1301
seconds:
  description: Seconds from the start of the reload to the last promotion (0 when nothing changed).
  returned: success
  type: float
  sample: 1.42
drain_seconds:
  description: Seconds the replaced processes took to exit after the last promotion.
  returned: when reloaded
  type: float
  sample: 0.21
phase:
  description:
    - C(done) after a reload with I(wait); C(starting) or C(settling) without it.
    - C(started) for a program that had failed (it was started on the binary),
      C(recorded) for a stopped one (its next start runs the binary).
  returned: when reloaded
  type: str
  sample: done
kind:
  description: C(reload) or C(rollback).
  returned: when reloaded
  type: str
  sample: reload
message:
  description: What happened to a program that was not running, or why nothing changed.
  returned: when there is one
  type: str
  sample: "myblog: was FATAL; started /srv/myblog/releases/42/myblog (pid 1301)"
slots_done:
  description: Processes switched to the new binary (a C(numprocs) program has several).
  returned: when reloaded
  type: int
  sample: 4
slots_total:
  description: Processes the reload replaces.
  returned: when reloaded
  type: int
  sample: 4
slots:
  description: One entry per process (slot, process, phase, old_pid, candidate_pid, error).
  returned: when reloaded
  type: list
  elements: dict
fault_code:
  description:
    - The XML-RPC fault code when supervisord refused or the new binary failed (the task's C(msg)
      is the fault's text), e.g. 1401 C(UNKNOWN_PROGRAM), 1405 C(NO_PREVIOUS), 1410-1416 a refused
      path, 1420-1425 a new binary that failed while the old one kept serving.
  returned: failure
  type: int
  sample: 1420
"""

# where supervisorctl and the common configurations put supervisord's RPC server
DEFAULT_URLS = ("unix:///var/run/supervisor.sock", "unix:///tmp/supervisor.sock", "http://localhost:9001")
# what the reload result passes through to the task's result
RESULT_KEYS = ("old_pid", "new_pid", "old_path", "new_path", "seconds", "drain_seconds", "phase", "kind", "message",
               "slots_done", "slots_total", "slots")
UNKNOWN_METHOD = 1  # supervisord's Faults.UNKNOWN_METHOD
NO_PREVIOUS = 1405
SET_SERVER_URL = ("set server_url (littleboss_server_url in the playbooks' inventory) to its [unix_http_server] file "
                  "or [inet_http_server] port")
BECOME = "run the task as a user allowed to use it (become: true, or ansible-playbook -b)"


class TaskFailure(Exception):
    """Fails the task with ``msg`` and the other fields."""

    def __init__(self, msg: str, **fields) -> None:
        super().__init__(msg)
        self.fields = dict(fields, msg=msg)


class UnreachableError(TaskFailure):
    """supervisord did not answer at ``url`` (another default URL may)."""

    def __init__(self, url: str, error: OSError) -> None:
        self.denied = isinstance(error, PermissionError)
        hint = BECOME if self.denied else f"is supervisord running? If so, {SET_SERVER_URL}"
        super().__init__(f"cannot reach supervisord at {url}: {error}; {hint}")
        self.reason = f"{url} ({error})"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over supervisord's unix socket."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Transport(xmlrpc.client.Transport):
    """XML-RPC to ``url`` (``unix://`` or ``http(s)://``) with basic auth and a socket timeout."""

    def __init__(self, url: str, username: str | None, password: str | None, timeout: float) -> None:
        super().__init__()
        self.url, self.timeout = url, timeout
        self.auth = []
        if username is not None or password is not None:
            token = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode("ascii")
            self.auth.append(("Authorization", f"Basic {token}"))

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        chost, extra_headers, _ = self.get_host_info(host)
        self._extra_headers = [*(extra_headers or []), *self.auth]  # Transport(headers=) needs Python 3.8
        if self.url.startswith("unix://"):
            connection = UnixHTTPConnection(self.url[len("unix://"):], self.timeout)
        elif self.url.startswith("https://"):
            connection = http.client.HTTPSConnection(chost, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(chost, timeout=self.timeout)
        self._connection = host, connection
        return connection


class Supervisord:
    """The ``littleboss`` namespace of one supervisord; every error becomes a ``TaskFailure``."""

    def __init__(self, url: str, username: str | None, password: str | None, timeout: float) -> None:
        if url.startswith("unix://"):
            if not url[len("unix://"):].startswith("/"):
                raise TaskFailure(f"server_url {url!r}: a unix socket URL needs an absolute path (unix:///path)")
            proxy_url = "http://localhost/RPC2"
        elif url.startswith(("http://", "https://")):
            proxy_url = url.rstrip("/") + "/RPC2"
        else:
            raise TaskFailure(f"server_url {url!r} must be unix:///path/to/supervisor.sock or http://host:port")
        self.url, self.timeout = url, timeout
        self.proxy = xmlrpc.client.ServerProxy(proxy_url, Transport(url, username, password, timeout))

    def call(self, method: str, *args):
        """``littleboss.method(*args)``."""
        try:
            return getattr(self.proxy.littleboss, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise TaskFailure(self._fault_text(fault), fault_code=fault.faultCode) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                raise TaskFailure(f"supervisord at {self.url} refused the credentials (HTTP 401 Unauthorized): "
                                  "check username and password") from None
            raise TaskFailure(f"supervisord at {self.url} answered HTTP {exc.errcode} {exc.errmsg}") from None
        except socket.timeout:  # noqa: UP041 - TimeoutError only from Python 3.10 (the target may be older)
            text = f"no answer from supervisord at {self.url} within {self.timeout:g}s (timeout)"
            if method in ("reload", "rollback"):
                text += (f"; the {method} may still be running in supervisord (supervisorctl littleboss:status "
                         f"{args[0]} shows it)")
            raise TaskFailure(text) from None
        except OSError as exc:
            raise UnreachableError(self.url, exc) from None
        except (http.client.HTTPException, xmlrpc.client.ResponseError) as exc:
            raise TaskFailure(f"supervisord at {self.url} gave a bad answer: {exc!r}") from None
        finally:
            self.proxy("close")()

    def _fault_text(self, fault: xmlrpc.client.Fault) -> str:
        if fault.faultCode == UNKNOWN_METHOD:
            return (f"supervisord at {self.url} has no littleboss RPC interface ({fault.faultString}): add "
                    "[rpcinterface:littleboss] to its configuration (supervisor-littleboss's README, "
                    "Enabling the plugin)")
        return fault.faultString


def connect(params: dict) -> tuple[Supervisord, dict]:
    """The supervisord at ``server_url`` (or the first default URL that answers) and the program's info."""
    urls = [params["server_url"]] if params["server_url"] else list(DEFAULT_URLS)
    unreachable: list[UnreachableError] = []
    for url in urls:
        server = Supervisord(url, params["username"], params["password"], params["timeout"])
        try:
            return server, server.call("getProgramInfo", params["name"])
        except UnreachableError as exc:
            if len(urls) == 1:
                raise
            unreachable.append(exc)
    hint = BECOME if any(exc.denied for exc in unreachable) else SET_SERVER_URL
    raise TaskFailure(f"cannot reach supervisord at any default server_url: "
                      f"{', '.join(exc.reason for exc in unreachable)}; {hint}")


def plan(params: dict, info: dict) -> tuple[str, tuple, str] | None:
    """What to call (method, arguments, the binary it leads to), or None when nothing needs doing."""
    name, path, current, previous = params["name"], params["path"], info["path"], info["previous_path"]
    target = os.path.realpath(path) if path else ""
    if params["state"] == "reloaded":
        if target == current and not params["force"]:
            return None
        return "reload", (name, path or "", params["wait"]), target or current
    if target == current:
        return None
    if target and target != previous:
        raise TaskFailure(f"{name}: cannot roll back to {target}: it runs {current}, and its previous binary is "
                          f"{previous or '(none)'}; use state=reloaded to swap it in")
    if not previous:
        raise TaskFailure(f"NO_PREVIOUS: {name}: no previous binary to roll back to", fault_code=NO_PREVIOUS)
    return "rollback", (name, params["wait"]), previous


def act(module: AnsibleModule, server: Supervisord, info: dict) -> dict:
    """Reload or roll back as ``plan`` says (in check mode, say what would change)."""
    params = module.params
    action = plan(params, info)
    if action is None:
        return {"changed": False, "new_pid": info["pid"], "new_path": info["path"], "seconds": 0,
                "message": f"{params['name']} already runs {info['path']}"}
    method, args, new_path = action
    if module.check_mode:
        return {"changed": True, "new_pid": info["pid"], "new_path": new_path, "seconds": 0,
                "message": f"check mode: would {method} {params['name']} to {new_path}"}
    result = server.call(method, *args)
    return {"changed": True, **{key: result[key] for key in RESULT_KEYS if key in result}}


def run(module: AnsibleModule) -> dict:
    """The task's result; raises ``TaskFailure`` (with what ran before, once supervisord answered)."""
    params = module.params
    if params["path"] and not os.path.isabs(params["path"]):
        raise TaskFailure(f"{params['name']}: path must be absolute (the binary's path on the host): "
                          f"{params['path']!r}")
    server, info = connect(params)
    before = {"name": params["name"], "server_url": server.url, "old_pid": info["pid"], "old_path": info["path"]}
    try:
        return {**before, **act(module, server, info)}
    except TaskFailure as failure:
        failure.fields = {**before, **failure.fields}
        raise


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "path": {"type": "str"},
            "state": {"type": "str", "choices": ["reloaded", "rolled_back"], "default": "reloaded"},
            "server_url": {"type": "str"},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 300},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except TaskFailure as failure:
        module.fail_json(**failure.fields)


if __name__ == "__main__":
    main()
