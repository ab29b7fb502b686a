"""littleboss's XML-RPC faults: a private range of codes that never clashes with supervisord's (1-92)."""
from __future__ import annotations

from supervisor.xmlrpc import RPCError


class LittlebossFaults:
    """Fault codes of the ``littleboss`` namespace."""

    UNKNOWN_PROGRAM = 1401
    NOT_LITTLEBOSS = 1402

    @classmethod
    def name_of(cls, code: int) -> str:
        return next(name for name, value in vars(cls).items() if value == code)


class LittlebossRPCError(RPCError):
    """An RPCError whose text is ``NAME: message``, like supervisord's own faults."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.text = f"{LittlebossFaults.name_of(code)}: {message}"
