"""Fixtures shared by the end-to-end tests."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Supervisord

# no client call may wait forever, whatever goes wrong on the server's side
socket.setdefaulttimeout(120)


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Supervisord]:
    """A fresh, not yet started supervisord of the test's own; stopped (by pid) afterwards."""
    sv = Supervisord(tmp_path)
    yield sv
    sv.stop()
