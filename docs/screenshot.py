#!/usr/bin/env python3
"""Make docs/littleboss-page.png: the littleboss page of supervisord's web UI, in the same
headless Chromium the tests drive.

    python docs/screenshot.py [OUTPUT.png]

It starts a supervisord in a temporary directory (127.0.0.1 ports chosen free) with two
littleboss programs, reloads one and fails a reload of the other so the page has a
history to show, takes the screenshot, and stops everything it started.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import launch  # noqa: E402
from harness import Supervisord, free_port, make_release  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "littleboss-page.png")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        releases = root / "srv" / "releases"
        v41, v42 = make_release(releases, "41", "v41"), make_release(releases, "42", "v42")
        broken = make_release(releases, "43", "v43", "--mode", "crash")
        sv = Supervisord(root, inet_http=True)
        for name, numprocs in (("myblog", 1), ("api", 2)):
            sv.program(name, command=v41, numprocs=numprocs, process_name="%(program_name)s_%(process_num)s",
                       littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}", littleboss_ready="notify",
                       littleboss_allow=f"{releases}/*/app")
        sv.start()
        try:
            sv.rpc.littleboss.reload("myblog", v42)
            sv.rpc.littleboss.reload("api", v42)
            try:
                sv.rpc.littleboss.reload("api", broken)
            except Exception:  # noqa: BLE001 - the failed reload is part of the picture
                pass
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(f"http://127.0.0.1:{sv.http_port}/littleboss.html")
                page.screenshot(path=str(output), full_page=True)
                browser.close()
        finally:
            sv.stop()
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
