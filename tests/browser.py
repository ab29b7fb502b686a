"""Headless Chromium from the distribution (``/usr/bin/chromium``), driven by Playwright for
Python: what the web page's tests and the documented screenshot command use."""
from __future__ import annotations

import shutil

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
# a machine without a network: no background connections, no updates, no first-run work
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch(playwright: Playwright) -> Browser:
    """The distribution's Chromium; a missing one is an error (scripts/test, README.rst's test
    command, installs it), never a skip."""
    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
