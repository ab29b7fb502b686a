"""The distribution as a PyPI user gets it: build the sdist and the wheel, check them as
PyPI would (twine), install the wheel into a fresh virtualenv and run the example from
the installed package, never from this checkout."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from harness import free_port, http_get, pid_alive, wait_for

ROOT = Path(__file__).parent.parent
EXAMPLE_FILES = ("__init__.py", "__main__.py", "supervisord.conf", "myblog.conf", "myblog.py")


def run(*argv: str | Path, **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv``, failing the test with its output if it fails."""
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} exited {result.returncode}:\n" \
                                   f"{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_installs_in_a_fresh_virtualenv_and_runs_the_example(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)  # the sdist, then the wheel built from it
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"supervisor_littleboss/example/{name}" for name in EXAMPLE_FILES} <= names
    assert "supervisor_littleboss/templates/littleboss.html" in names  # the web page's template
    assert not any(name.startswith("tests/") for name in names)
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[-1] for name in archive.getnames()}
    assert {"LICENSE", "CHANGES.rst", "README.rst", "tests/test_packaging.py", "bench/README.rst"} <= names

    # a clean environment, outside the checkout: nothing can be imported from it
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--disable-pip-version-check", wheel, cwd=tmp_path, env=env)
    where = run(python, "-c", "import supervisor_littleboss; print(supervisor_littleboss.__file__)",
                cwd=tmp_path, env=env).stdout
    assert where.startswith(str(venv)), where

    example = tmp_path / "example"
    run(python, "-m", "supervisor_littleboss.example", example, cwd=tmp_path, env=env)
    port = free_port()
    conf = example / "myblog.conf"
    conf.write_text(conf.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    config = example / "supervisord.conf"
    run(venv / "bin" / "supervisord", "-c", config, cwd=tmp_path, env=env)  # it daemonizes
    pid = int(wait_for(lambda: (example / "run" / "supervisord.pid").read_text(), what="the pid file"))
    try:
        hello = wait_for(lambda: http_get(("127.0.0.1", port)).decode(), what="myblog to answer")
        assert hello.startswith("Hello from myblog version 1"), hello

        def running() -> str | None:
            out = run(venv / "bin" / "supervisorctl", "-c", config, "littleboss:status", cwd=tmp_path, env=env).stdout
            return out if out.split()[:2] == ["myblog", "RUNNING"] else None

        status = wait_for(running, what="littleboss:status to show myblog RUNNING")  # after startsecs
        assert f"binary {example / 'myblog.py'}" in status, status
    finally:
        subprocess.run([venv / "bin" / "supervisorctl", "-c", config, "shutdown"], capture_output=True, timeout=60,
                       cwd=tmp_path, env=env)
        try:
            wait_for(lambda: not pid_alive(pid), timeout=30, what="the example supervisord to exit")
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # ours: started above
