"""supervisor event types for reloads, registered when the plugin is imported.

supervisord imports RPC interface factories before it parses ``[eventlistener:x]``
sections, so ``events = LITTLEBOSS_RELOAD_SUCCEEDED`` (or ``LITTLEBOSS_RELOAD`` for
all four) is accepted there.
"""
from __future__ import annotations

from urllib.parse import quote

from supervisor import events


class LittlebossReloadEvent(events.Event):
    """Base of the reload events; its payload is ``key:value`` pairs like supervisord's,
    each value percent-encoded (RFC 3986; ``urllib.parse.unquote`` decodes it), so that no
    value holds a space, a colon or a newline and ``supervisor.childutils.get_headers``
    splits every payload right, whatever a path or a reason contains."""

    def __init__(self, program: str, **values) -> None:
        self.program = program
        self.values = values

    def payload(self) -> str:
        pairs = [("processname", self.program), ("groupname", self.program), *self.values.items()]
        return " ".join(f"{key}:{quote(str(value), safe='/')}" for key, value in pairs)


class ReloadStartedEvent(LittlebossReloadEvent):
    pass


class ReloadSucceededEvent(LittlebossReloadEvent):
    pass


class ReloadFailedEvent(LittlebossReloadEvent):
    pass


class ReloadRolledBackEvent(LittlebossReloadEvent):
    """The new binary exited soon after promotion and the previous one was started again."""


class WatchdogEvent(LittlebossReloadEvent):
    """A process missed its littleboss_watchdog deadline: it was killed (and is restarted, or
    the program falls back within its fallback window)."""


EVENT_TYPES = {
    "LITTLEBOSS_RELOAD": LittlebossReloadEvent,
    "LITTLEBOSS_RELOAD_STARTED": ReloadStartedEvent,
    "LITTLEBOSS_RELOAD_SUCCEEDED": ReloadSucceededEvent,
    "LITTLEBOSS_RELOAD_FAILED": ReloadFailedEvent,
    "LITTLEBOSS_RELOAD_ROLLED_BACK": ReloadRolledBackEvent,
    "LITTLEBOSS_WATCHDOG": WatchdogEvent,
}

for _name, _event in EVENT_TYPES.items():
    events.register(_name, _event)
