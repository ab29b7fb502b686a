"""The rules a new binary must pass before a reload starts anything.

Each broken rule is a distinct fault whose text names the program, the path and the rule.
"""
from __future__ import annotations

import os
import pwd
import stat
from pathlib import PurePosixPath

from .faults import LittlebossFaults as F
from .faults import LittlebossRPCError


def check_binary(program: str, path: str, uid: int | None, allowed: tuple[str, ...]) -> None:
    """Raise LittlebossRPCError unless ``path`` may replace ``program``'s executable.

    ``uid`` is the program's ``user=`` (None: supervisord's own user); ``allowed`` the glob
    patterns the path must match.
    """
    def refuse(code: int, rule: str):
        raise LittlebossRPCError(code, f"{program}: cannot reload to {path}: {rule}")

    if not os.path.isabs(path):
        refuse(F.PATH_NOT_ABSOLUTE, "the path must be absolute")
    if not any(PurePosixPath(path).match(pattern) for pattern in allowed):
        refuse(F.NOT_ALLOWED, f"it matches none of the allowed paths ({' '.join(allowed)}); "
                              f"add a pattern to littleboss_allow in [program:{program}]")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        refuse(F.NO_FILE, "no such file")
    except OSError as exc:
        refuse(F.NO_FILE, f"cannot stat it: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        refuse(F.NOT_A_FILE, "it is not a regular file")
    if not _executable_by(st, uid if uid is not None else os.geteuid()):
        who = pwd.getpwuid(uid).pw_name if uid is not None else "supervisord's user"
        refuse(F.NOT_EXECUTABLE, f"it is not executable by {who}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        refuse(F.WRITABLE_FILE, f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")
    # the directories of the path as given (a symlink can be replaced) and as resolved
    for file in (os.path.normpath(path), os.path.realpath(path)):
        directory, parent_of_file = os.path.dirname(file), True
        while True:
            mode = os.stat(directory).st_mode
            # others may replace the file in a writable directory; in a writable ancestor
            # they may replace a whole subtree, unless the sticky bit forbids it
            if mode & (stat.S_IWGRP | stat.S_IWOTH) and (parent_of_file or not mode & stat.S_ISVTX):
                refuse(F.WRITABLE_DIRECTORY, f"it sits in {directory}, which is writable by group or others "
                                             f"(mode {stat.S_IMODE(mode):04o})")
            if directory == "/":
                break
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
