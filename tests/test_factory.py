"""The RPC interface factory's own failures (unit level)."""
from __future__ import annotations

import pytest

from supervisor_littleboss import rpcinterface


def test_a_failure_of_the_plugins_own_start_is_reported_as_what_it_is(mocker):
    mocker.patch.object(rpcinterface, "install", side_effect=OSError(24, "Too many open files"))
    with pytest.raises(ValueError, match=r"^littleboss cannot start: \[Errno 24\] Too many open files$"):
        rpcinterface.make_littleboss_rpcinterface(mocker.Mock())
