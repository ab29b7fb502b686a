"""README's test command, ``scripts/test`` (Quick start, command 2; ``.ci/run`` runs it first):
its first step, which makes sure of what the suite needs from the distribution (node, go and
prometheus on PATH, /usr/bin/chromium) before anything is installed. ``scripts/test --tools-only`` stops
after that step, so these tests install nothing and start no suite.

The script runs from a copy in a temporary directory that anyone can read, with a PATH of the
test's own: ``bash``, and whatever stand-ins a test puts there (an empty ``node``, an ``apt-get``
that records its arguments). Without root it runs as it is; as root, the tests that are about a
user who is not root run it as nobody (``setpriv``), and /usr/bin/chromium, which the tests look
for at that fixed path, is hidden by mounting /dev/null over it in a mount namespace of the
test's own (``unshare``); in such a namespace, too, a tmpfs on /run makes the script see systemd
running (/run/systemd/system) or not, whatever this machine runs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM
from test_prometheus import PACKAGE as PROMETHEUS_PACKAGE
from test_prometheus import TOOL as PROMETHEUS

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "test"
ROOT_USER = os.geteuid() == 0
CHROMIUM_HERE = os.access(CHROMIUM, os.X_OK)
ON_PATH = ["node", "go", PROMETHEUS]  # the tools looked for on PATH, in the script's order
ON_PATH_PACKAGES = ["nodejs", "golang-go", PROMETHEUS_PACKAGE]


def needs(tools: list[str], missing: str) -> str:
    """The start of the one line: ``the suite needs node and go, which are missing``."""
    named = tools[0] if len(tools) == 1 else ", ".join(tools[:-1]) + " and " + tools[-1]
    return f"scripts/test: the suite needs {named}, which {'is' if len(tools) == 1 else 'are'} {missing}"


def expected_line(tools: list[str], packages: list[str], *, root: bool) -> str:
    """The one line on stderr for these missing tools (root: without apt-get on PATH)."""
    if root:
        return needs(tools, "missing: ") + f"install Debian's {' '.join(packages)} or their like, then run " \
            "scripts/test again"
    return needs(tools, "missing: ") + f"run `sudo apt-get install -y {' '.join(packages)}`, then scripts/test again"


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory anyone can read, with ``scripts/test`` (a copy) and ``bin/`` holding ``bash``."""
    with tempfile.TemporaryDirectory(prefix="littleboss-scripts-test-") as name:
        place = Path(name)
        place.chmod(0o755)
        (place / "scripts").mkdir()
        shutil.copy2(SCRIPT, place / "scripts" / "test")
        (place / "bin").mkdir()
        (place / "bin" / "bash").symlink_to(shutil.which("bash"))
        yield place


def stand_in(place: Path, name: str, text: str = "") -> Path:
    path = place / "bin" / name
    path.write_text(f"#!/bin/sh\n{text}")
    path.chmod(0o755)
    return path


def run(place: Path, *, as_nobody: bool = False, hide_chromium: bool = False,
        systemd: bool | None = None) -> subprocess.CompletedProcess:
    """``scripts/test --tools-only`` with PATH=place/bin (as nobody when asked and root); with
    ``systemd`` True or False, systemd seems to run or not (a tmpfs on /run, with or without
    /run/systemd/system)."""
    command = [str(place / "scripts" / "test"), "--tools-only"]
    if as_nobody and ROOT_USER:
        command = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    mounts = []
    if hide_chromium:
        mounts.append(f"/bin/mount --bind /dev/null {CHROMIUM}")
    if systemd is not None:
        mounts.append("/bin/mount -t tmpfs tmpfs /run" + (" && /bin/mkdir -p /run/systemd/system" if systemd else ""))
    if mounts:
        mount = " && ".join([*mounts, 'exec "$@"'])
        command = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", mount, "sh", *command]
    env = {"PATH": str(place / "bin"), "HOME": str(place), "LANG": "C.UTF-8"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_not_root_without_node_go_and_prometheus_one_line_and_exit_1(place):
    result = run(place, as_nobody=True)
    tools, packages = ON_PATH, ON_PATH_PACKAGES
    if not CHROMIUM_HERE:
        tools, packages = [*tools, CHROMIUM], [*packages, "chromium"]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == expected_line(tools, packages, root=False) + "\n"


@pytest.mark.skipif(not ROOT_USER or not CHROMIUM_HERE, reason="hides /usr/bin/chromium in a mount namespace: root")
def test_not_root_without_node_go_prometheus_and_chromium_one_line_and_exit_1(place):
    result = run(place, as_nobody=True, hide_chromium=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == expected_line([*ON_PATH, CHROMIUM], [*ON_PATH_PACKAGES, "chromium"], root=False) + "\n"


def test_not_root_with_them_goes_on(place):
    for tool in ON_PATH:
        stand_in(place, tool)
    result = run(place, as_nobody=True)
    if CHROMIUM_HERE:
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == "scripts/test: node, go, prometheus and /usr/bin/chromium are here\n"
    else:  # this machine lacks it: the suite's web tests fail too
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == expected_line([CHROMIUM], ["chromium"], root=False) + "\n"


APT_GET = """echo "$DEBIAN_FRONTEND $*" >> {log}
[ "$1" = install ] && [ {installs} = yes ] && for tool in node go prometheus; do
    printf '#!/bin/sh\\n' > {bin}/$tool && /bin/chmod 755 {bin}/$tool
done
exit 0
"""
SYSTEMCTL = """echo "systemctl $*" >> {log}
"""


@pytest.mark.skipif(not ROOT_USER, reason="installs with apt-get as root only")
@pytest.mark.parametrize("installs", [True, False], ids=["apt-get-installs", "apt-get-installs-nothing"])
def test_root_installs_the_missing_ones_with_apt_get(place, installs):
    """Here ``apt-get`` is a stand-in that records its arguments and, when asked, "installs" by
    putting a node, a go and a prometheus on PATH; the second case is a package that does not
    give the tool (Ubuntu's chromium is a snap, with no /usr/bin/chromium). Without systemd, no
    ``systemctl`` (a stand-in that records its arguments too)."""
    log = place / "apt-get.log"
    stand_in(place, "apt-get", APT_GET.format(log=log, bin=place / "bin", installs="yes" if installs else "no"))
    stand_in(place, "systemctl", SYSTEMCTL.format(log=log))
    result = run(place, systemd=False)
    packages = ON_PATH_PACKAGES + ([] if CHROMIUM_HERE else ["chromium"])
    assert log.read_text().splitlines() == ["noninteractive update -q",
                                            f"noninteractive install -y -q {' '.join(packages)}"]
    assert result.stdout.splitlines()[0] == f"scripts/test: installing Debian's {' '.join(packages)} with apt-get"
    if installs and CHROMIUM_HERE:
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.splitlines()[1:] == ["scripts/test: node, go, prometheus and /usr/bin/chromium are here"]
    else:
        missing = ([] if installs else ON_PATH) + ([] if CHROMIUM_HERE else [CHROMIUM])
        assert result.returncode == 1
        assert result.stderr == needs(missing, "still missing") + f" after apt-get install -y {' '.join(packages)} " \
            "(node, go and prometheus on PATH, Debian's chromium at /usr/bin/chromium)\n"


@pytest.mark.skipif(not ROOT_USER or not CHROMIUM_HERE, reason="installs with apt-get as root only; needs chromium")
@pytest.mark.parametrize("prometheus_missing", [True, False], ids=["installs-prometheus", "prometheus-was-here"])
def test_root_stops_debians_prometheus_service_where_systemd_runs(place, prometheus_missing):
    """Where systemd runs, Debian's prometheus starts a daemon on every interface (port 9090):
    the script stops and disables it once it installed the package, and leaves a prometheus
    that was already there alone."""
    log = place / "apt-get.log"
    stand_in(place, "apt-get", APT_GET.format(log=log, bin=place / "bin", installs="yes"))
    stand_in(place, "systemctl", SYSTEMCTL.format(log=log))
    if not prometheus_missing:
        stand_in(place, PROMETHEUS)
    result = run(place, systemd=True)
    packages = ON_PATH_PACKAGES if prometheus_missing else ON_PATH_PACKAGES[:-1]
    stops = ["systemctl disable --now prometheus.service"] if prometheus_missing else []
    assert log.read_text().splitlines() == ["noninteractive update -q",
                                            f"noninteractive install -y -q {' '.join(packages)}", *stops]
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == f"scripts/test: installing Debian's {' '.join(packages)} with apt-get"
    assert lines[1:] == [
        *(["scripts/test: stopping and disabling Debian's prometheus service (the tests run their own)"]
          if prometheus_missing else []),
        "scripts/test: node, go, prometheus and /usr/bin/chromium are here"]


@pytest.mark.skipif(not ROOT_USER, reason="as root")
def test_root_without_apt_get_one_line_and_exit_1(place):
    result = run(place)
    tools, packages = ON_PATH, ON_PATH_PACKAGES
    if not CHROMIUM_HERE:
        tools, packages = [*tools, CHROMIUM], [*packages, "chromium"]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == expected_line(tools, packages, root=True) + "\n"


def test_looks_for_what_the_tests_use():
    """The script's tools and packages are the recipes' (tests/test_recipes.py, with
    tests/harness.py's require()), the Prometheus tests' (tests/test_prometheus.py) and the web
    tests' Chromium (tests/browser.py)."""
    from test_recipes import RECIPES

    text = SCRIPT.read_text()
    tools = re.search(r"^TOOLS=\((.*)\)$", text, re.M)[1].split()
    packages = re.search(r"^PACKAGES=\((.*)\)$", text, re.M)[1].split()
    recipes = {recipe.tool: recipe.package for recipe in RECIPES.values()}
    assert dict(zip(tools, packages, strict=True)) == {**recipes, PROMETHEUS: PROMETHEUS_PACKAGE, CHROMIUM: "chromium"}


def test_readme_and_ci_run_it():
    """README's Quick start command 2 is ``scripts/test``, and ``.ci/run`` runs exactly that."""
    readme = (ROOT / "README.rst").read_text()
    quick_start = readme.split("\nQuick start\n", 1)[1].split("\n2. ", 1)[1]
    command = quick_start.split("::\n\n", 1)[1].splitlines()[0].strip()
    assert command == "scripts/test"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text().splitlines()
