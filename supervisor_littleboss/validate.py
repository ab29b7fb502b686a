"""The rules a new binary must pass before a reload starts anything.

A path is checked as the file it resolves to (normalized, symlinks resolved), and that
file is held open from the check to the exec, so replacing the path afterwards changes
nothing: a binary is executed from the checked file itself (``fexecve``); a script,
whose interpreter opens it by path, runs only if the path still names the checked file
just before the exec. Each broken rule is a distinct fault whose text names the program,
the path (and what it resolves to) and the rule.
"""
from __future__ import annotations

import glob
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath

from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class CheckedBinary:
    """A binary that passed the rules, open until its candidate has been spawned."""

    path: str  # what it resolved to: what runs, and what the state records
    fd: int
    script: bool  # starts with ``#!``: its interpreter opens it by ``path``
    identity: tuple[int, int]  # (st_dev, st_ino) of the checked file

    def still_at_path(self) -> bool:
        """Does ``path`` still name the checked file?"""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def allowed_patterns(configured_path: str, allow: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns a resolved path must match: the configured binary (resolved) and ``allow``."""
    return (glob.escape(os.path.realpath(configured_path)), *allow)


def check_binary(program: str, path: str, uid: int | None, allowed: tuple[str, ...]) -> CheckedBinary:
    """Return ``path``'s file, open, if it may replace ``program``'s executable; else raise
    LittlebossRPCError.

    ``uid`` is the program's ``user=`` (None: supervisord's own user); ``allowed`` the glob
    patterns the resolved path must match.
    """
    resolved = os.path.realpath(path) if os.path.isabs(path) else path
    shown = path if resolved == path else f"{path} (which resolves to {resolved})"

    def refuse(code: int, rule: str):
        raise LittlebossRPCError(code, f"{program}: cannot reload to {shown}: {rule}")

    if not os.path.isabs(path):
        refuse(F.PATH_NOT_ABSOLUTE, "the path must be absolute")
    if os.path.isdir(resolved):  # a release folder for the executable in it: say so, whatever the allow-list
        refuse(F.NOT_A_FILE, _directory_rule(resolved, allowed))
    if not any(PurePosixPath(resolved).match(pattern) for pattern in allowed):
        refuse(F.NOT_ALLOWED, f"it matches none of the allowed paths ({' '.join(allowed)}); "
                              f"add a pattern to littleboss_allow in [program:{program}]")
    try:
        st = os.stat(resolved)  # before opening: never open a device or a FIFO
    except FileNotFoundError:
        refuse(F.NO_FILE, "no such file")
    except OSError as exc:
        refuse(F.NO_FILE, f"cannot stat it: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        refuse(F.NOT_A_FILE, "it is not a regular file")
    fd = _open(resolved, refuse)
    try:
        if _opened_path(fd) != resolved:
            refuse(F.NOT_ALLOWED, "it changed while it was being checked; try again")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            refuse(F.NOT_A_FILE, "it is not a regular file")
        if not _executable_by(st, uid if uid is not None else os.geteuid()):
            who = pwd.getpwuid(uid).pw_name if uid is not None else "supervisord's user"
            refuse(F.NOT_EXECUTABLE, f"it is not executable by {who}")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            refuse(F.WRITABLE_FILE, f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")
        _check_directories(resolved, refuse)
        return CheckedBinary(resolved, fd, _is_script(fd), (st.st_dev, st.st_ino))
    except BaseException:
        os.close(fd)
        raise


def _directory_rule(directory: str, allowed: tuple[str, ...]) -> str:
    """The rule a directory breaks, with the executable meant if one allowed file is under it."""
    under = {path for pattern in allowed for path in glob.glob(pattern)
             if path.startswith(directory.rstrip("/") + "/") and os.path.isfile(path)}
    example = f", e.g. {under.pop()}" if len(under) == 1 else ""
    return f"it is a directory: give the executable in it{example}"


def _open(path: str, refuse) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except PermissionError:  # executable but not readable by supervisord's user: exec it all the same
        try:
            return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            refuse(F.NO_FILE, f"cannot open it: {exc.strerror}")
    except OSError as exc:
        refuse(F.NO_FILE, f"cannot open it: {exc.strerror}")


def _opened_path(fd: int) -> str:
    """The path of the file open at ``fd``, as the kernel knows it."""
    return os.readlink(f"/proc/self/fd/{fd}")


def _is_script(fd: int) -> bool:
    try:
        return os.pread(fd, 2, 0) == b"#!"
    except OSError:  # opened O_PATH: unreadable, so no interpreter could read it either
        return False


def _check_directories(path: str, refuse) -> None:
    """Others may replace the file in a writable directory; in a writable ancestor they
    may replace a whole subtree, unless the sticky bit forbids it."""
    directory, parent_of_file = os.path.dirname(path), True
    while True:
        mode = os.stat(directory).st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and (parent_of_file or not mode & stat.S_ISVTX):
            refuse(F.WRITABLE_DIRECTORY, f"it sits in {directory}, which is writable by group or others "
                                         f"(mode {stat.S_IMODE(mode):04o})")
        if directory == "/":
            return
        directory, parent_of_file = os.path.dirname(directory), False


def _executable_by(st: os.stat_result, uid: int) -> bool:
    if uid == 0:
        return bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    user = pwd.getpwuid(uid)
    if st.st_gid == user.pw_gid or st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)
