"""The distribution as a PyPI user gets it: build the sdist and the wheel, check them as
PyPI would (twine), install the wheel into a fresh virtualenv and run the example from
the installed package, never from this checkout; and the checkout's example run as
README's Quick start runs it, without the virtualenv on PATH."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_port, http_get, make_myblog_release, pid_alive, wait_for

pytestmark = pytest.mark.e2e  # builds and installs the package, and starts real supervisords

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
    env = clean_environment()
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--disable-pip-version-check", wheel, cwd=tmp_path, env=env)
    where = run(python, "-c", "import supervisor_littleboss; print(supervisor_littleboss.__file__)",
                cwd=tmp_path, env=env).stdout
    assert where.startswith(str(venv)), where

    example = tmp_path / "example"
    run(python, "-m", "supervisor_littleboss.example", example, cwd=tmp_path, env=env)
    port = serve_on_a_free_port(example)
    config = example / "supervisord.conf"
    with running_example(venv / "bin", config, cwd=tmp_path, env=env):
        hello = wait_for(lambda: http_get(("127.0.0.1", port)).decode(), what="myblog to answer")
        assert hello.startswith("Hello from myblog version 1"), hello

        def running() -> str | None:
            out = run(venv / "bin" / "supervisorctl", "-c", config, "littleboss:status", cwd=tmp_path, env=env).stdout
            return out if out.split()[:2] == ["myblog", "RUNNING"] else None

        status = wait_for(running, what="littleboss:status to show myblog RUNNING")  # after startsecs
        assert f"binary {example / 'myblog.py'}" in status, status


def test_the_checkouts_example_serves_and_reloads_without_the_virtualenv_on_path(tmp_path):
    """``.venv/bin/supervisord -c conf.d/supervisord.conf``, the virtualenv not activated: the
    ``python3`` on PATH (``#!/usr/bin/env python3``) lacks the package, and myblog runs
    again with supervisord's Python; so does a release copied from it, as the walk-through does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys._base_executable)  # the Python the virtualenv was made from
    env = {**clean_environment(), "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    assert subprocess.run(["python3", "-c", "import supervisor_littleboss"], cwd=tmp_path, env=env,
                          capture_output=True).returncode != 0  # what the test is about
    example = tmp_path / "example"
    shutil.copytree(ROOT / "conf.d", example, ignore=shutil.ignore_patterns("releases", "*.log", "*.pid", "*.sock",
                                                                              "*.json"))
    port = serve_on_a_free_port(example)
    config = example / "supervisord.conf"
    venv_bin = Path(sys.executable).parent
    with running_example(venv_bin, config, cwd=tmp_path, env=env):
        assert wait_for(lambda: http_get(("127.0.0.1", port)), what="myblog").startswith(b"Hello from myblog version 1")
        v2 = make_myblog_release(example / "releases", "2", "2")
        run(venv_bin / "supervisorctl", "-c", config, "littleboss:reload", "myblog", v2, cwd=tmp_path, env=env)
        assert http_get(("127.0.0.1", port)).startswith(b"Hello from myblog version 2")


def clean_environment() -> dict[str, str]:
    """The environment, without what would point a Python at this checkout or virtualenv."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}


def serve_on_a_free_port(example: Path) -> int:
    """Make the example in ``example`` serve on a free port instead of 8080; the port."""
    port = free_port()
    conf = example / "myblog.conf"
    conf.write_text(conf.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    return port


@contextlib.contextmanager
def running_example(bin_dir: Path, config: Path, **kwargs) -> Iterator[int]:
    """Start ``bin_dir``'s supervisord with ``config`` (it daemonizes); its pid. Afterwards shut
    it down, killing it if it outlives that."""
    run(bin_dir / "supervisord", "-c", config, **kwargs)
    pid = int(wait_for(lambda: (config.parent / "run" / "supervisord.pid").read_text(), what="the pid file"))
    try:
        yield pid
    finally:
        subprocess.run([bin_dir / "supervisorctl", "-c", config, "shutdown"], capture_output=True, timeout=60,
                       **kwargs)
        try:
            wait_for(lambda: not pid_alive(pid), timeout=30, what="the example supervisord to exit")
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # ours: started above
