"""supervisord's own reload (SIGHUP) leaves nothing of the runs before it, and reads its
configuration no more often than it must: a probe, an extra ``[rpcinterface:x]`` of the test's
own (on supervisord's ``PYTHONPATH``), counts the objects alive in supervisord without
collecting them, and supervisord's reads of its configuration file."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from harness import HTTPAPP, Supervisord, free_port

pytestmark = pytest.mark.e2e  # a real supervisord and its programs

PROGRAMS = 10
SIGHUPS = 10

# supervisord imports it while it reads its configuration the first time (get_plugins), and
# never again (modules are not re-imported on SIGHUP): the reads it counts are the later ones
PROBE = '''
import gc

from supervisor.options import ServerOptions

READS = [0]
read_config = ServerOptions.read_config


def counted_read_config(self, fp):
    READS[0] += 1
    return read_config(self, fp)


ServerOptions.read_config = counted_read_config


def live(name):
    """The objects of class ``name`` (module.qualname) gc tracks: reachable or not yet freed."""
    return [o for o in gc.get_objects() if f"{type(o).__module__}.{type(o).__qualname__}" == name]


class Probe:
    def runs(self):
        """The run (supervisord's reloads counted when it began) of each littleboss plugin alive."""
        return sorted(p.state.supervisord["reloads"] for p in live("supervisor_littleboss.plugin.Plugin"))

    def count(self, name):
        return len(live(name))

    def reads(self):
        return READS[0]


def make(supervisord, **config):
    return Probe()
'''


@pytest.fixture
def sv(tmp_path: Path):
    """A supervisord with ``PROGRAMS`` littleboss programs and the probe."""
    sv = Supervisord(tmp_path)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sighup_probe.py").write_text(PROBE)
    with sv.conf.open("a") as conf:
        conf.write(textwrap.dedent("""
            [rpcinterface:probe]
            supervisor.rpcinterface_factory = sighup_probe:make
            """))
    for n in range(PROGRAMS):
        sv.littleboss_program(f"app{n}", HTTPAPP, free_port())
    sv.start(env={"PYTHONPATH": os.pathsep.join(filter(None, (str(probe), os.environ.get("PYTHONPATH"))))})
    for n in range(PROGRAMS):
        sv.wait_running(f"app{n}")
    yield sv
    sv.stop()


def pids(sv: Supervisord) -> dict[str, int]:
    return {info["name"]: info["pid"] for info in sv.rpc.supervisor.getAllProcessInfo()}


def test_sighup_frees_the_runs_before_and_reads_the_configuration_twice(sv):
    """Each run of supervisord (its options, groups, processes, littleboss's plugin) is held
    in reference cycles, which only a full collection of the cyclic GC frees, and CPython
    makes one only once in several SIGHUPs: without one per run, the runs piled up (about
    1 MB each with 100 programs). The previous run may still be held by a client connection
    it accepted (supervisord serves it on), but none before it. One SIGHUP reads the
    configuration file twice: littleboss, to know which programs run on through it, and
    supervisord's new run (littleboss takes its groups from that read, not a third)."""
    before, reads = pids(sv), sv.rpc.probe.reads()
    for n in range(1, SIGHUPS + 1):
        sv.hup()
        runs = sv.rpc.probe.runs()
        assert runs[-1] == n and runs[0] >= n - 1, f"SIGHUP {n}: littleboss plugins of runs {runs} alive"
        # the groups supervisord made for littleboss programs, which littleboss's replaced
        assert sv.rpc.probe.count("supervisor.process.ProcessGroup") == 0, f"SIGHUP {n}"
        assert sv.rpc.probe.reads() - reads == 2 * n, f"SIGHUP {n}"
        assert pids(sv) == before, f"SIGHUP {n}"
