"""``python -m supervisor_littleboss.example DIR``: copy the myblog example to ``DIR``.

``DIR`` (created if missing) gets ``supervisord.conf``, ``myblog.conf``, ``myblog.py`` and
``run/``, which will hold the control socket, the pid file, the logs and littleboss's state
file. ``myblog.py`` runs with the Python that copied it (its ``#!`` line names it, unless
that path cannot stand in a ``#!`` line), so supervisord may be started with or without
the virtualenv active. Existing files are never overwritten.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
FILES = ("supervisord.conf", "myblog.conf", "myblog.py")


def copy_example(target: Path, python: str = sys.executable) -> None:
    """Copy the example into ``target``; FileExistsError if one of its files is there already."""
    existing = [str(target / name) for name in FILES if (target / name).exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); choose an empty directory")
    (target / "run").mkdir(parents=True, exist_ok=True)
    for name in FILES[:2]:
        shutil.copyfile(HERE / name, target / name)
    shebang, program = (HERE / "myblog.py").read_text().split("\n", 1)
    if " " not in python and len(python) < 127:  # what a #! line can hold on every Linux
        shebang = f"#!{python}"
    (target / "myblog.py").write_text(f"{shebang}\n{program}")
    (target / "myblog.py").chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supervisor_littleboss.example",
                                     description="Copy the littleboss example (myblog) to DIRECTORY.")
    parser.add_argument("directory", type=Path)
    target = parser.parse_args(argv).directory.absolute()
    try:
        copy_example(target)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Copied the example to {target}. Start it, and ask it:\n\n"
          f"    supervisord -c {target / 'supervisord.conf'}\n"
          f"    curl http://127.0.0.1:8080/\n"
          f"    supervisorctl -c {target / 'supervisord.conf'} littleboss:status\n\n"
          f"If curl waits instead of answering, myblog is not serving (supervisord holds its socket):\n"
          f"littleboss:status says why, and myblog's output is in {target / 'run' / 'myblog.log'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
