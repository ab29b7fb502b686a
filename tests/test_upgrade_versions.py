"""An in-place upgrade across supervisor versions: a supervisord on the oldest supervisor
littleboss supports, the newest installed into its virtualenv, then ``littleboss:upgrade``.
Builds a virtualenv (the package registry must be reachable); README's test command runs it,
.ci/run's version runs leave it out."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import VENV_ENV, Supervisord, free_port, http_get, wait_for
from test_packaging import run
from test_upgrade import POOL, pids

pytestmark = pytest.mark.e2e  # a real supervisord in a virtualenv of its own

ROOT = Path(__file__).resolve().parent.parent
FLOOR = re.search(r'"supervisor>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def test_an_upgrade_from_the_oldest_supervisor_to_the_newest_keeps_the_programs_running(tmp_path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "venv", venv)
    # supervisor 4.2.x imports pkg_resources: gone from setuptools 82, a warning on import from 80.9
    run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", f"supervisor=={FLOOR}",
        "setuptools<80.9", ROOT, cwd=tmp_path)
    sv = Supervisord(tmp_path / "sv")
    sv.web_port, sv.pool_port = free_port(), free_port()
    sv.program("web", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.web_port}", littleboss_ready="notify")
    sv.program("pool", littleboss_sockets=f"http=tcp://127.0.0.1:{sv.pool_port}", **POOL)
    with open(sv.output, "w") as output:
        sv.proc = subprocess.Popen([python, "-m", "supervisor.supervisord", "-n", "-c", str(sv.conf)], cwd=tmp_path,
                                   stdout=output, stderr=subprocess.STDOUT, env=VENV_ENV)
    try:
        wait_for(lambda: sv.info("web")["statename"] == "RUNNING" and all(pids(sv, "pool")), what="the programs")
        assert sv.rpc.supervisor.getSupervisorVersion() == FLOOR
        before = {name: pids(sv, name) for name in ("web", "pool")}
        run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-U", "supervisor", cwd=tmp_path)
        newest = run(python, "-c", "import importlib.metadata as m; print(m.version('supervisor'))").stdout.strip()
        assert newest != FLOOR
        ctl = [python, "-m", "supervisor.supervisorctl", "-c", sv.conf]
        upgraded = run(*ctl, "littleboss:upgrade", cwd=tmp_path)
        assert f"supervisor {FLOOR} -> {newest}" in upgraded.stdout, upgraded.stdout
        assert run(*ctl, "version", cwd=tmp_path).stdout.strip() == newest
        assert {name: pids(sv, name) for name in before} == before
        assert http_get(("127.0.0.1", sv.web_port)).startswith(b"v1 ")
        assert sv.proc.poll() is None
    finally:
        sv.stop()
