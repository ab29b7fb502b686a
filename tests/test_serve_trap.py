"""The launcher (``littleboss-serve``) says which file it serves the app from: a reload
replaces only the launcher, so an app found through ``--app-dir`` or ``directory=`` (here a
``current`` symlink to release 1) keeps serving release 1's code under release 2's
launcher. The reload succeeds either way; ``STATUS=`` and the log show the file, and warn
when it is not the launcher's release's own."""
from __future__ import annotations

import sysconfig
import venv
from pathlib import Path

import pytest
from harness import APPS, free_port, http_get, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.python_facing]  # real supervisord, servers and clients

SITE = Path("lib", f"python{sysconfig.get_python_version()}", "site-packages")  # in a virtualenv


@pytest.fixture(params=["uvicorn", "hypercorn"])
def server(request) -> str:
    return request.param


def make_release(releases: Path, version: str, installed: bool) -> Path:
    """``releases/VERSION``: a virtualenv with the launcher as ``bin/littleboss-serve`` (this
    package, reached through a ``.pth``) and the test app answering ``VERSION``, installed in
    its site-packages or, if not ``installed``, at the release's top."""
    release = releases / version
    venv.create(release, symlinks=True)
    (release / SITE / "tests.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    app = (APPS / "asgiapp.py").read_text().replace('os.environ.get("APP_VERSION", "v1")', repr(version))
    (release / SITE if installed else release).joinpath("asgiapp.py").write_text(app)
    launcher = release / "bin" / "littleboss-serve"
    launcher.write_text(f"#!{release}/bin/python\nimport sys\nfrom supervisor_littleboss.serve import main\n"
                        "sys.exit(main())\n")
    for path in (releases, release, launcher.parent, launcher):
        path.chmod(0o755)  # the reload's path checks refuse files others may replace
    return release


def deploy(root: Path, installed: bool) -> tuple[Path, Path, Path]:
    """Releases v1 and v2, and ``root/current`` linking to v1, as a deploy tool leaves them."""
    v1, v2 = (make_release(root / "releases", version, installed) for version in ("v1", "v2"))
    (root / "current").symlink_to(v1)
    return root / "current", v1, v2


def status(supervisord) -> str:
    """The program's last ``STATUS=``, as getProgramInfo and the littleboss page show it."""
    return supervisord.rpc.littleboss.getProgramInfo("app")["notify_status"]


def start(supervisord, root: Path, port: int, command: str, **keys) -> None:
    supervisord.littleboss_program("app", command, port, f"{root}/releases/*/bin/littleboss-serve", **keys)
    supervisord.start()
    wait_for(lambda: status(supervisord), what="the launcher's STATUS=")


def test_an_app_found_through_current_keeps_serving_release_1_and_the_launcher_says_so(supervisord, server, tmp_path):
    current, v1, v2 = deploy(tmp_path, installed=False)
    port = free_port()
    launcher = f"{current}/bin/littleboss-serve"
    if server == "uvicorn":  # the app found through --app-dir
        start(supervisord, tmp_path, port, f"{launcher} uvicorn --app-dir {current} asgiapp:app")
    else:  # through directory= (hypercorn imports from the working directory)
        start(supervisord, tmp_path, port, f"{launcher} hypercorn asgiapp:app", directory=current)
    address = ("127.0.0.1", port)
    assert http_get(address).startswith(b"v1 ")
    assert status(supervisord) == f"serving on 127.0.0.1:{port}, app {v1}/asgiapp.py"

    reload = supervisord.ctl("littleboss:reload", "app", f"{v2}/bin/littleboss-serve", check=True).stdout
    new_pid = supervisord.rpc.littleboss.getProgramInfo("app")["pid"]
    assert http_get(address) == f"v1 {new_pid}\n".encode()  # release 2's launcher, release 1's code
    assert status(supervisord) == (f"serving on 127.0.0.1:{port}, app {v1}/asgiapp.py, "
                                   f"NOT from this launcher's release {v2}")
    assert reload.splitlines()[-2] == f"app: status {status(supervisord)}"  # said at once, by the reload
    [line] = supervisord.ctl("littleboss:status", "app", check=True).stdout.splitlines()  # what an operator reads
    assert line.endswith(f"  status serving on 127.0.0.1:{port}, app {v1}/asgiapp.py, "
                         f"NOT from this launcher's release {v2}"), line
    log = (supervisord.root / "app.log").read_text()
    assert log.count("WARNING") == 1 and (
        f"app: the application was imported from {v1}/asgiapp.py, which is not in this launcher's release "
        f"(its virtualenv {v2}): a littleboss reload replaces only the launcher, so the arguments, directory= "
        "or PYTHONPATH that found it keep serving that code. Install the application into each release's "
        "virtualenv") in log, log


def test_an_app_installed_in_each_release_is_reloaded_with_its_launcher(supervisord, server, tmp_path):
    current, v1, v2 = deploy(tmp_path, installed=True)
    port = free_port()
    start(supervisord, tmp_path, port, f"{current}/bin/littleboss-serve {server} asgiapp:app", directory=tmp_path)
    address = ("127.0.0.1", port)
    assert http_get(address).startswith(b"v1 ")
    assert status(supervisord) == f"serving on 127.0.0.1:{port}, app {v1 / SITE}/asgiapp.py"

    result = supervisord.rpc.littleboss.reload("app", f"{v2}/bin/littleboss-serve")
    assert http_get(address) == f"v2 {result['new_pid']}\n".encode()
    assert status(supervisord) == f"serving on 127.0.0.1:{port}, app {v2 / SITE}/asgiapp.py"
    log = (supervisord.root / "app.log").read_text()
    assert f"Application imported from {v2 / SITE}/asgiapp.py" in log and "WARNING" not in log, log
