"""Unit tests of the path rules: resolution, the open file that is executed, no fd left open."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import make_executable

from supervisor_littleboss.faults import LittlebossFaults, LittlebossRPCError
from supervisor_littleboss.validate import allowed_patterns, check_binary


def open_fds() -> set[tuple[str, str]]:
    """This process's open fds, with what each refers to."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:  # the listing's own fd, closed by now
            continue
    return fds


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    make_executable(tmp_path / "opt", "app", "#!/bin/sh\necho app\n")
    make_executable(tmp_path, "outside", "#!/bin/sh\necho outside\n")
    return tmp_path


def refusal(path: str, allowed: tuple[str, ...]) -> LittlebossRPCError:
    before = open_fds()
    with pytest.raises(LittlebossRPCError) as caught:
        check_binary("web", path, None, allowed)
    # a refusal leaves nothing open (fds of earlier tests' garbage may close meanwhile: CI, Python 3.13)
    assert open_fds() - before == set()
    return caught.value


def test_a_path_is_checked_as_the_file_it_resolves_to(tree: Path):
    (tree / "opt" / "link").symlink_to(tree / "opt" / "app")
    binary = check_binary("web", f"{tree}/opt/link/../app/app", None, (f"{tree}/opt/*/app",))
    try:
        assert binary.path == f"{tree}/opt/app/app" and binary.script
        assert os.readlink(f"/proc/self/fd/{binary.fd}") == binary.path
    finally:
        binary.close()


def test_dot_dot_and_symlinks_cannot_leave_the_allowed_tree(tree: Path):
    (tree / "opt" / "app" / "escape").symlink_to(tree / "outside" / "app")
    allowed = (f"{tree}/opt/*/*",)
    for path in (f"{tree}/opt/../outside/app", f"{tree}/opt/app/escape"):
        fault = refusal(path, allowed)
        assert fault.code == LittlebossFaults.NOT_ALLOWED
        assert f"cannot reload to {path} (which resolves to {tree}/outside/app): it matches none" in fault.text


def test_the_configured_binary_is_allowed_as_the_file_it_resolves_to(tree: Path):
    (tree / "current").symlink_to(tree / "opt" / "app")
    patterns = allowed_patterns(f"{tree}/current/app", ())
    assert patterns == (f"{tree}/opt/app/app",)
    check_binary("web", f"{tree}/current/app", None, patterns).close()


def test_a_refused_file_leaves_no_fd_open(tree: Path):
    (tree / "opt" / "app" / "app").chmod(0o775)
    assert refusal(f"{tree}/opt/app/app", (f"{tree}/opt/*/*",)).code == LittlebossFaults.WRITABLE_FILE


def test_the_checked_binary_runs_even_if_the_path_is_replaced(tree: Path):
    """What a candidate does: exec the open file (fexecve), whatever is at the path now."""
    path = tree / "opt" / "app" / "true"
    shutil.copy(shutil.which("true"), path)
    path.chmod(0o755)
    binary = check_binary("web", str(path), None, (f"{tree}/opt/*/*",))
    try:
        assert not binary.script
        replacement = tree / "opt" / "app" / "false"
        shutil.copy(shutil.which("false"), replacement)
        os.replace(replacement, path)
        assert not binary.still_at_path()
        code = f"import os; os.execve({binary.fd}, ['true'], {{}})"
        assert subprocess.run([sys.executable, "-c", code], pass_fds=[binary.fd]).returncode == 0
        assert subprocess.run([str(path)]).returncode == 1  # the path itself now runs `false`
    finally:
        binary.close()


def test_a_directory_is_not_a_file_whatever_the_allow_list_and_the_executable_in_it_is_named(tree: Path):
    make_executable(tree / "opt", "2", "#!/bin/sh\n", "myblog")
    (tree / "opt" / "2" / "notes.txt").write_text("not allowed")
    for allowed in ((f"{tree}/opt/*/myblog",), (f"{tree}/elsewhere/*",)):
        fault = refusal(f"{tree}/opt/2/", allowed)
        assert fault.code == LittlebossFaults.NOT_A_FILE
        hint = f", e.g. {tree}/opt/2/myblog" if allowed[0].endswith("myblog") else ""
        assert fault.text == (f"NOT_A_FILE: web: cannot reload to {tree}/opt/2/ (which resolves to {tree}/opt/2): "
                              f"it is a directory: give the executable in it{hint}")


def test_a_directory_with_several_allowed_executables_names_none(tree: Path):
    for name in ("a", "b"):
        make_executable(tree / "opt", "3", "#!/bin/sh\n", name)
    fault = refusal(f"{tree}/opt/3", (f"{tree}/opt/*/*",))
    assert fault.text == f"NOT_A_FILE: web: cannot reload to {tree}/opt/3: it is a directory: give the executable in it"
