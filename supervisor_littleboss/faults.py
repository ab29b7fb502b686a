"""littleboss's XML-RPC faults: a private range of codes that never clashes with supervisord's (1-92).

1401-1409: the program cannot be reloaded now; 1410-1419: the new binary (for an
in-place upgrade: the installed code) is refused before anything starts; 1420-1429:
the new binary was started and failed (the old process kept serving).
"""
from __future__ import annotations

from supervisor.xmlrpc import RPCError


class LittlebossFaults:
    """Fault codes of the ``littleboss`` namespace."""

    UNKNOWN_PROGRAM = 1401
    NOT_LITTLEBOSS = 1402
    NOT_RUNNING = 1403
    RELOAD_IN_PROGRESS = 1404
    NO_PREVIOUS = 1405
    UNSUPPORTED = 1406
    NOT_IN_PLACE = 1407
    NOT_HOLDING = 1408

    PATH_NOT_ABSOLUTE = 1410
    NO_FILE = 1411
    NOT_A_FILE = 1412
    NOT_EXECUTABLE = 1413
    WRITABLE_FILE = 1414
    WRITABLE_DIRECTORY = 1415
    NOT_ALLOWED = 1416
    PREFLIGHT_FAILED = 1417

    EXITED_BEFORE_READY = 1420
    READY_TIMEOUT = 1421
    SETTLE_FAILED = 1422
    ABORTED = 1423
    SPAWN_FAILED = 1424
    EXITED_AFTER_PROMOTION = 1425
    CHECK_FAILED = 1426

    @classmethod
    def name_of(cls, code: int) -> str:
        return next(name for name, value in vars(cls).items() if value == code)


class LittlebossRPCError(RPCError):
    """An RPCError whose text is ``NAME: message``, like supervisord's own faults."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.text = f"{LittlebossFaults.name_of(code)}: {message}"


EXIT_REFUSED, EXIT_FAILED = 1, 7  # supervisorctl's GENERIC and NOT_RUNNING (LSBInitExitStatuses)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell says): the outcome is not known to the caller


def exit_status(code: int | None) -> int:
    """The exit status for a fault: 7 when the new binary was started and failed, else 1."""
    failed = code is not None and LittlebossFaults.EXITED_BEFORE_READY <= code <= 1429
    return EXIT_FAILED if failed else EXIT_REFUSED
