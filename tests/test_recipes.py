"""README.rst's Node.js and Go recipes ("Recipes: the servers you run"), run as documented:
the ``[program:x]`` settings and the program-side code tested here are read from README.rst.
Each server is reloaded under load in both connection modes, and its keep-alive throughput
is compared with the same server on its own port. (gunicorn's recipe: test_reload.py.)

``node`` and ``go`` must be installed (scripts/test, README.rst's test command, installs
them): a missing one fails its tests.
"""
from __future__ import annotations

import configparser
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    GOAPP,
    NODEAPP,
    Supervisord,
    free_port,
    http_get,
    make_go_release,
    make_node_release,
    pid_alive,
    require,
    wait_for,
)
from load import Load, keepalive_rate

pytestmark = pytest.mark.e2e  # real supervisord, real servers, real clients

README = Path(__file__).parent.parent / "README.rst"
RELOADS = 10
PATH_KEYS = {"command", "littleboss_sockets", "littleboss_allow"}  # README's paths; the test has its own


@dataclass(frozen=True)
class Recipe:
    title: str  # the README subsection
    tool: str
    package: str  # Debian's, that provides the tool
    source: Path  # the server whose code README shows
    versions: tuple[str, str]
    own_port: str  # the server's arguments to bind 127.0.0.1:{port} itself

    def require(self) -> str:
        return require(self.tool, self.package)


RECIPES = {
    "node": Recipe("Node.js", "node", "nodejs", NODEAPP, ("n1", "n2"), "127.0.0.1:{port}"),
    "go": Recipe("Go", "go", "golang-go", GOAPP / "main.go", ("go1", "go2"), "-addr=127.0.0.1:{port}"),
}


def readme_section(title: str) -> str:
    """The text of README's subsection ``title`` of "Recipes: the servers you run"."""
    text = README.read_text().split("\nRecipes: the servers you run\n", 1)[1]
    lines = text.splitlines() + [""]

    def heading(n: int) -> bool:  # a title underlined with ~ (a recipe) or - (the next section)
        return bool(lines[n]) and set(lines[n + 1]) in ({"~"}, {"-"}) and len(lines[n + 1]) == len(lines[n])

    start = next(n for n in range(len(lines) - 1) if lines[n] == title and heading(n))
    end = next((n for n in range(start + 2, len(lines) - 1) if heading(n)), len(lines))
    return "\n".join(lines[start:end])


def literal_blocks(text: str) -> list[str]:
    """The literal blocks (after a ``::``) of reStructuredText ``text``, dedented."""
    blocks, lines = [], text.splitlines() + [""]
    for n, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            body = []
            for following in lines[n + 1:]:
                if following.strip() and not following.startswith(" "):
                    break
                body.append(following)
            blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return blocks


def documented(recipe: Recipe) -> tuple[dict[str, str], list[str]]:
    """README's ``[program:x]`` settings of ``recipe`` (without its paths) and its code blocks."""
    blocks = literal_blocks(readme_section(recipe.title))
    programs = [block for block in blocks if block.startswith("[program:")]
    assert len(programs) == 1, f"README's {recipe.title} recipe has {len(programs)} [program:x] sections"
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    parser.read_string(programs[0])
    keys = dict(parser[parser.sections()[0]])
    assert PATH_KEYS <= set(keys), keys
    return {k: v for k, v in keys.items() if k not in PATH_KEYS}, [b for b in blocks if b not in programs]


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Each recipe's two versions, for the recipes whose tool is installed (the Go ones built
    here, with the build cache in the test's directory)."""
    root = tmp_path_factory.mktemp("recipes")
    made = {}
    if shutil.which("node"):
        made["node"] = tuple(make_node_release(root / "releases", v) for v in RECIPES["node"].versions)
    if shutil.which("go"):
        made["go"] = tuple(make_go_release(root / "releases", v, root / "go") for v in RECIPES["go"].versions)
    return made


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Supervisord:
    """One supervisord running each recipe (whose tool is installed) as README configures it,
    for the module: each test reloads from whichever version runs to the other, or only
    measures, so the tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("recipes-sv"))
    for name, (v1, _) in releases.items():
        keys, _ = documented(RECIPES[name])
        sv.program(name, command=v1, littleboss_sockets=f"http=tcp://127.0.0.1:{free_port()}",
                   littleboss_allow=f"{Path(v1).parent.parent}/*/{Path(v1).name}", **keys)
    sv.start()
    yield sv
    sv.stop()


def address(sv: Supervisord, name: str) -> tuple[str, int]:
    url = sv.rpc.littleboss.getProgramInfo(name)["sockets"][0]["url"]
    return "127.0.0.1", int(url.rsplit(":", 1)[1])


def serving(sv: Supervisord, name: str) -> tuple[str, int]:
    """(version, pid) that answers on the program's socket now."""
    version, pid, *_ = http_get(address(sv, name)).split()
    return version.decode(), int(pid)


@pytest.mark.parametrize("name", RECIPES)
def test_readme_shows_the_tested_code(name):
    recipe = RECIPES[name]
    keys, code = documented(recipe)
    source = recipe.source.read_text().replace("\t", "    ")  # README indents Go's tabs as 4 spaces
    assert code, f"README's {recipe.title} recipe shows no code"
    for block in code:
        assert block in source, f"README's {recipe.title} code is not {recipe.source.name}'s:\n{block}"
    assert keys.get("littleboss_ready") in ("notify", "startsecs")


@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connection", "keep-alive"])
@pytest.mark.parametrize("name", RECIPES)
def test_reloads_under_load_fail_no_request(sv, releases, name, keepalive):
    RECIPES[name].require()
    sv.wait_running(name)
    with Load(address(sv, name), keepalive=keepalive) as load:
        load.wait_for_requests(50)
        for _ in range(RELOADS):
            old_version = serving(sv, name)[0]
            new = releases[name][RECIPES[name].versions.index(old_version) ^ 1]
            result = sv.rpc.littleboss.reload(name, new)
            # it returned once the old process had drained (no connection, no listener); it exits then
            wait_for(lambda old=result["old_pid"]: not pid_alive(old), what="the drained old process to exit")
            assert serving(sv, name) == (Path(new).parent.name, result["new_pid"])  # promoted
            load.wait_for_requests(20)
    assert load.result.failed == 0 and load.result.broken == 0, load.result
    if keepalive:  # one per client, plus one graceful reconnect per reload
        assert load.result.connections <= 4 * (RELOADS + 1), load.result.connections


@pytest.mark.parametrize("name", RECIPES)
def test_keepalive_throughput_is_the_servers_own(sv, releases, name, tmp_path):
    recipe = RECIPES[name]
    recipe.require()
    sv.wait_running(name)
    port = free_port()
    with open(tmp_path / "own-port.log", "w") as log:
        own = subprocess.Popen([releases[name][0], recipe.own_port.format(port=port)], stdout=log, stderr=log)
    try:
        wait_for(lambda: own.poll() is not None or http_get(("127.0.0.1", port)), what=f"{name} on its own port")
        assert own.poll() is None, (tmp_path / "own-port.log").read_text()
        # alternately, the best of two each: a stall of the busy machine in one run does not decide
        rates = [keepalive_rate(where) for where in [("127.0.0.1", port), address(sv, name)] * 2]
        alone, littleboss = max(rates[0::2]), max(rates[1::2])
    finally:
        own.terminate()  # SIGTERM: it drains and exits
        own.wait(timeout=30)
    figures = f"{name}: {littleboss:.0f} requests/s under littleboss, {alone:.0f} on its own port"
    print(figures)  # shown with -rP
    assert littleboss >= 0.5 * alone, figures
