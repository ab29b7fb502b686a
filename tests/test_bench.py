"""The benchmark keeps working: a short run of bench/reload.py, checked through its JSON (its
scenarios for other apps, Go's among them, take the same steps; tests/test_recipes.py reloads those
apps under load)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a real supervisord, programs and clients

BENCH = Path(__file__).parent.parent / "bench" / "reload.py"


def test_a_short_benchmark_run_reports_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--reloads", "2", "--concurrency", "2", "--modes", "new",
         "--scenarios", "plain-restart,littleboss-reload,start-stop-control,"
                        "littleboss-restart-pool,littleboss-reload-pool,start-stop-control-pool,"
                        "plain-sighup,littleboss-sighup-pool,littleboss-update",
         "--cost-programs", "2", "--cost-idle", "1", "--sighup-programs", "2",
         "--event-programs", "2", "--event-repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    runs = {r["scenario"]: r for r in report["runs"]}
    assert set(runs) == {"baseline myblog", "plain-restart", "littleboss-reload", "start-stop-control",
                         "littleboss-restart-pool",
                         "littleboss-reload-pool", "baseline myblog pool", "start-stop-control-pool",
                         "plain-sighup", "littleboss-sighup-pool", "littleboss-update"}
    for name in ("littleboss-reload", "littleboss-reload-pool"):  # one process; numprocs = 4, one at a time
        reload = runs[name]
        assert reload["failed"] == {} and len(reload["reload_seconds"]) == 2
        assert all(after != before for before, after in reload["versions"])  # the new version answered
        assert reload["old_answers_after_return"] == 0
        baseline = runs[f"baseline {reload['app']}"]  # the same app without reloads, under load as long
        assert baseline["reload_seconds"] == [] and baseline["seconds"] >= reload["seconds"]
    assert len(runs["littleboss-restart-pool"]["reload_seconds"]) == 2  # supervisorctl restart app:*
    for name in ("start-stop-control", "start-stop-control-pool"):
        control = runs[name]  # the side binary came and went; the program was left alone
        assert control["failed"] == {} and len(control["reload_seconds"]) == 2
        assert control["versions"] == [["1", "1"], ["1", "1"]]  # the side binary (version 2) never answered
    assert report["targets"]["no failed request or broken keep-alive connection"][0] is True
    # supervisorctl reload: a plain program restarts, a littleboss pool runs on through it
    assert runs["plain-sighup"]["pids_kept"] == [False, False]
    assert runs["littleboss-sighup-pool"]["pids_kept"] == [True, True]
    assert report["targets"]["every pid kept and no request failed through supervisord's reload"][0] is True
    # supervisorctl update after an environment change (APP_VERSION a -> b -> a): swapped in place
    update = runs["littleboss-update"]
    assert update["failed"] == {} and update["pids_replaced"] == [True, True]
    assert update["versions"] == [["a", "b"], ["b", "a"]] and update["old_answers_after_return"] == 0
    assert all(said.startswith("app: applied its new configuration") for said in update["update_outputs"])
    assert report["targets"]["supervisorctl update swaps a littleboss program in place: no request failed, "
                             "new value answered"][0] is True
    # one SIGHUP with 2 littleboss programs (pids kept), and with 2 plain ones without the plugin (restarted)
    littleboss, plain = report["sighup"]
    assert (littleboss["plugin"], littleboss["pids_kept"], littleboss["running"]) == (True, 2, 2)
    assert (plain["plugin"], plain["pids_kept"], plain["running"]) == (False, 0, 2)
    assert all(h["cpu_seconds"] >= 0 and h["left_running"] == 0 for h in report["sighup"])
    assert report["targets"]["every pid kept through one SIGHUP, however many littleboss programs"][0] is True
    # one littleboss reload, and one exit and autorestart, of one of 2 programs, and the exit among
    # 2 plain programs without the plugin: supervisord's CPU for each
    littleboss, plain = report["events"]
    assert [(e["programs"], e["plugin"], e["restarted"], e["left_running"]) for e in report["events"]] == [
        (2, True, 1, 0), (2, False, 1, 0)]
    assert littleboss["reload_phases"] == ["done"] and len(littleboss["reload_cpu_ms_each"]) == 1
    assert "reload_cpu_ms" not in plain
    assert all(e["exit_cpu_ms"] > 0 and len(e["exit_cpu_ms_each"]) == 1 and e["idle_cpu_ms_per_s"] >= 0
               for e in report["events"]) and littleboss["reload_cpu_ms"] > 0
    assert "supervisord's CPU for one event of one program" in run.stdout
    assert "longest gap within 5 ms of a run without reloads (new)" in report["targets"]
    # each reload beside its own control: myblog's and the pool's
    figures = report["targets"]["longest gap no longer than the start-stop control's (new)"][1]
    assert "myblog pool" in figures and figures.count("in its control") == 2
    assert [c["programs"] for c in report["supervisord"]] == [1, 2, 2]
    assert report["supervisord"][2]["reloads_succeeded"] == 2
    assert all(c["left_running"] == 0 and c["stop_seconds"] > 0 for c in report["supervisord"])
    assert "littleboss-reload" in run.stdout and "supervisord's own cost" in run.stdout and "targets" in run.stdout
