"""``/littleboss/metrics`` as Prometheus sees it: the distribution's own ``prometheus``, started
by the test on a free loopback port with README's scrape job (a scrape every second), scrapes a
real supervisord while a program is reloaded under load, and its HTTP API answers what an
operator's dashboards and alerts would read; ``promtool`` checks a real scrape and README's
examples (the scrape job, the two alert rules, which also fire or not as README says); the page
is gzipped for a client that accepts it, as Prometheus does, and only then.

Prometheus and promtool come from Debian's ``prometheus`` package, which ``scripts/test``
installs: without them these tests fail (``harness.require``), they never skip."""
from __future__ import annotations

import base64
import gzip
import json
import re
import signal
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Releases, Supervisord, free_port, reload_fault, require, wait_for
from load import Load

from supervisor_littleboss.faults import LittlebossFaults

pytestmark = pytest.mark.e2e  # a real supervisord, a real Prometheus

TOOL, PACKAGE = "prometheus", "prometheus"  # on PATH, and Debian's package (with promtool); scripts/test's
NEEDED_BY = "tests/test_prometheus.py's real Prometheus and promtool checks"
README = Path(__file__).parent.parent / "README.rst"
CREDENTIALS = ("ops", "s3cret")


def prometheus_tool(name: str = TOOL) -> str:
    return require(name, PACKAGE, NEEDED_BY)


# --- README's examples -------------------------------------------------------------------

def readme_examples() -> dict[str, str]:
    """The YAML literal blocks of README's "Prometheus metrics" section: ``scrape`` (the scrape
    job) and ``rules`` (the alert rules)."""
    text = README.read_text()
    section = text.split("\nPrometheus metrics\n~~~", 1)[1].split("\nEvents\n---", 1)[0]
    blocks = [textwrap.dedent(match) for match in re.findall(r"::\n\n((?:(?: {4}.*)?\n)+)", section)]
    found = {"scrape": [b for b in blocks if b.startswith("scrape_configs:")],
             "rules": [b for b in blocks if b.startswith("groups:")]}
    assert all(len(found[name]) == 1 for name in found), f"README's Prometheus section has changed: {blocks}"
    return {name: blocks[0] for name, blocks in found.items()}


def scrape_config(sv: Supervisord, password_file: Path, rules: Path | None = None) -> str:
    """A prometheus.yml: README's scrape job for ``sv`` (its inet port, the password in
    ``password_file``), README's rules (``rules``), a scrape and an evaluation every second."""
    job = readme_examples()["scrape"]
    for old, new in (('"127.0.0.1:9001"', f'"127.0.0.1:{sv.http_port}"'),
                     ("/etc/prometheus/supervisord.password", str(password_file)),
                     ("username: ops", f"username: {CREDENTIALS[0]}")):
        assert old in job, f"README's scrape job no longer has {old}:\n{job}"
        job = job.replace(old, new)
    head = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
    if rules:
        head += f"rule_files:\n  - {rules}\n"
    return head + job


# --- a real Prometheus -------------------------------------------------------------------

class Prometheus:
    """``prometheus`` as a plain process of the test's own (its pid, not a service), its data in
    ``root``, its web server (and HTTP API) on a free port of 127.0.0.1."""

    def __init__(self, root: Path, config: str) -> None:
        self.root = root
        self.config = root / "prometheus.yml"
        self.config.write_text(config)
        self.port = free_port()
        self.output = root / "prometheus.out"
        with open(self.output, "w") as output:  # a file, never a pipe nobody reads
            self.proc = subprocess.Popen(
                [prometheus_tool(), f"--config.file={self.config}", f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is not None or self._get("/-/ready"), timeout=60,
                     what="Prometheus to be ready")
            assert self.proc.poll() is None, f"prometheus exited: {self.output.read_text()}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM by pid, wait; SIGKILL if it has not exited within 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return response.read()

    def api(self, path: str, **params: str) -> object:
        answer = json.loads(self._get(f"/api/v1/{path}?{urllib.parse.urlencode(params)}"))
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        """An instant query now: each series' labels and value."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(series["metric"], float(series["value"][1])) for series in data["result"]]

    def value(self, expr: str) -> float:
        """The value of a query that gives one series."""
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return result[0][1]

    def scraped_since(self, moment: float, expr: str) -> bool:
        """Whether the latest sample of ``expr`` (one series) was scraped after ``moment`` (time.time())."""
        return bool(self.query(f"timestamp({expr}) > {moment:.3f}"))

    def firing(self) -> set[tuple[str, str]]:
        """(alertname, program) of the alerts firing now."""
        return {(alert["labels"]["alertname"], alert["labels"].get("program", ""))
                for alert in self.api("alerts")["alerts"] if alert["state"] == "firing"}


@pytest.fixture
def prometheus(tmp_path) -> Iterator[Callable[[str], Prometheus]]:
    """Starts a Prometheus with a config (``start(config)``); stopped by pid afterwards."""
    started: list[Prometheus] = []

    def start(config: str) -> Prometheus:
        root = tmp_path / f"prometheus{len(started)}"
        root.mkdir()
        started.append(Prometheus(root, config))
        return started[-1]
    yield start
    for prometheus in started:
        prometheus.stop()


# --- a supervisord ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    """v1 and v2, and ``crash``: a binary that exits at once, before it is ready."""
    releases = Releases(tmp_path_factory.mktemp("releases"))
    releases.crash = releases.add("crash", "v3", "--mode", "crash")
    return releases


@pytest.fixture(scope="module")
def sv(tmp_path_factory, releases) -> Iterator[Supervisord]:
    """One supervisord for the module, with credentials on its web server: ``web`` (a littleboss
    program) and ``pool`` (littleboss, numprocs = 2). Each test reads counts as differences from
    what it found first, or only their form, so what another test reloaded does not matter and
    the tests pass alone and in any order."""
    sv = Supervisord(tmp_path_factory.mktemp("prometheus"), inet_http=True, credentials=CREDENTIALS)
    sv.web_port, sv.pool_port = free_port(), free_port()
    sv.littleboss_program("web", releases.v1, sv.web_port, releases.allow, littleboss_fallback_window=0,
                          littleboss_ready_timeout=10)
    sv.program("pool", command=releases.v1, numprocs=2, process_name="%(program_name)s_%(process_num)s",
               littleboss_sockets=f"http=tcp://127.0.0.1:{sv.pool_port}", littleboss_ready="notify",
               littleboss_allow=releases.allow, littleboss_fallback_window=0)
    sv.start()
    for name in ("web", "pool:pool_0", "pool:pool_1"):
        sv.wait_running(name)
    yield sv
    sv.stop()


def scrape(sv: Supervisord) -> str:
    return fetch(sv)[1].decode()


def fetch(sv: Supervisord, accept_encoding: str | None = None) -> tuple[dict[str, str], bytes]:
    """A GET of /littleboss/metrics: the response's headers and body (as sent)."""
    request = urllib.request.Request(f"http://127.0.0.1:{sv.http_port}/littleboss/metrics")
    request.add_header("Authorization", "Basic " + base64.b64encode(":".join(CREDENTIALS).encode()).decode())
    if accept_encoding is not None:
        request.add_header("Accept-Encoding", accept_encoding)
    with urllib.request.urlopen(request, timeout=10) as response:
        return {name.lower(): value for name, value in response.headers.items()}, response.read()


def other(releases: Releases, path: str) -> str:
    return releases.v2 if path == releases.v1 else releases.v1


# --- the tests ----------------------------------------------------------------------------

WEB = 'program="web"'
RELOADS = f"littleboss_reloads_total{{{WEB}}}"
DURATION_COUNT = f"littleboss_reload_duration_seconds_count{{{WEB}}}"


def test_prometheus_counts_every_reload_and_the_counters_survive_a_sighup(sv, releases, prometheus, tmp_path):
    """10 reloads, 2 failed reloads and 1 rollback of ``web`` under load, scraped every second by
    a real Prometheus with README's scrape job and alert rules: its API counts each of them,
    exactly, and in the duration histogram; README's failed-reload alert fires for ``web``;
    after supervisord's reload (SIGHUP) Prometheus sees no counter reset."""
    started = time.time()
    password = tmp_path / "supervisord.password"
    password.write_text(CREDENTIALS[1])
    rules = tmp_path / "rules.yml"
    rules.write_text(readme_examples()["rules"])
    prom = prometheus(scrape_config(sv, password, rules))
    wait_for(lambda: prom.query(f"{RELOADS} and on() up{{job='littleboss'}} == 1"), timeout=30,
             what="Prometheus's first scrape of supervisord")

    def counts() -> dict[tuple[str, str], float]:
        return {(labels["kind"], labels["outcome"]): value for labels, value in prom.query(RELOADS)}
    before, duration_before = counts(), prom.value(DURATION_COUNT)
    assert set(before) >= {(kind, outcome) for kind in ("reload", "rollback", "fallback", "config")
                           for outcome in ("succeeded", "failed")}  # a rate exists from the start

    with Load(("127.0.0.1", sv.web_port), threads=4, rate=50) as load:
        load.wait_for_requests(50)
        for n in range(10):
            path = sv.rpc.littleboss.getProgramInfo("web")["path"]
            assert sv.rpc.littleboss.reload("web", other(releases, path))["new_path"] == other(releases, path)
            if n in (3, 7):
                fault = reload_fault(lambda: sv.rpc.littleboss.reload("web", releases.crash))
                assert fault.faultCode == LittlebossFaults.EXITED_BEFORE_READY, fault.faultString
        path = sv.rpc.littleboss.getProgramInfo("web")["path"]
        assert sv.rpc.littleboss.rollback("web")["new_path"] == other(releases, path)
        load.wait_for_requests(50)
    assert load.result.failed == 0, load.result
    done = time.time()

    wait_for(lambda: prom.scraped_since(done, DURATION_COUNT), timeout=30, what="a scrape after the last reload")
    after = counts()
    rose = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert rose == {("reload", "succeeded"): 10, ("reload", "failed"): 2, ("rollback", "succeeded"): 1}
    assert prom.value(DURATION_COUNT) - duration_before == 13
    assert prom.value(f'littleboss_reload_duration_seconds_bucket{{{WEB},le="+Inf"}}') == \
        prom.value(DURATION_COUNT)
    wait_for(lambda: ("LittlebossReloadFailed", "web") in prom.firing(), timeout=30,
             what="README's LittlebossReloadFailed alert for web")
    assert not any(name == "LittlebossAcceptQueueGrowingDuringReload" for name, _ in prom.firing())

    sighups = prom.value("littleboss_supervisord_reloads_total")
    sv.hup()
    # a scrape of the new run, and one more
    wait_for(lambda: prom.value("littleboss_supervisord_reloads_total") == sighups + 1, timeout=30,
             what="a scrape of supervisord after its reload")
    resumed = time.time()
    wait_for(lambda: prom.scraped_since(resumed, DURATION_COUNT), timeout=30, what="a further scrape")
    assert counts() == after and prom.value(DURATION_COUNT) - duration_before == 13
    window = f"[{int(time.time() - started) + 5}s]"  # every sample Prometheus took
    assert prom.query(f"resets(littleboss_reloads_total{window}) > 0") == []  # no counter ever went down
    assert prom.query(f"resets(littleboss_reload_duration_seconds_count{window}) > 0") == []
    assert prom.query(f"resets(littleboss_reload_duration_seconds_count{window})"), "no samples in the window"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([prometheus_tool("promtool"), *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_promtool_check_metrics_passes_on_a_real_scrape(sv, releases):
    """A scrape with a program and a pool of 2 each reloaded (their histograms filled), and
    one failed reload: ``promtool check metrics`` finds no problem and no lint."""
    for name in ("web", "pool"):
        path = sv.rpc.littleboss.getProgramInfo(name)["path"]
        sv.rpc.littleboss.reload(name, other(releases, path))
    reload_fault(lambda: sv.rpc.littleboss.reload("web", releases.crash))
    text = scrape(sv)
    for program in ("web", "pool"):
        for histogram in ("duration", "ready", "drain"):
            sample = f'littleboss_reload_{histogram}_seconds_count{{program="{program}"}}'
            match = re.search(rf"^{re.escape(sample)} (\d+)$", text, re.M)
            assert match and int(match[1]) > 0, f"{program}'s {histogram} histogram is empty:\n{text}"
    assert 'littleboss_processes{program="pool",role="serving"} 2' in text
    result = promtool("check", "metrics", stdin=text)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), text


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True), ("gzip;q=0", False), ("deflate", False),
    (None, False)])
def test_the_page_is_gzipped_when_the_client_accepts_it(sv, accept_encoding, gzipped):
    """Prometheus asks for gzip (and gets a tenth of the bytes); a client that does not, or
    refuses it (q=0), gets the same page as text."""
    headers, body = fetch(sv, accept_encoding)
    plain = scrape(sv)
    assert headers.get("content-encoding") == ("gzip" if gzipped else None)
    assert headers["content-length"] == str(len(body)) and headers["vary"] == "Accept-Encoding"
    assert (gzip.decompress(body) if gzipped else body).decode() == plain
    assert plain.startswith("# HELP littleboss_reloads_total ") and 'littleboss_processes{program="pool"' in plain


def test_promtool_checks_readmes_alert_rules_and_scrape_job(tmp_path):
    """README's rules file and scrape job pass ``promtool check rules`` and ``check config``
    (the scrape job as README shows it, with README's rules file listed)."""
    examples = readme_examples()
    rules = tmp_path / "rules.yml"
    rules.write_text(examples["rules"])
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout, result.stdout
    config = tmp_path / "prometheus.yml"
    config.write_text(f"rule_files:\n  - {rules.name}\n" + examples["scrape"])
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {config} is valid prometheus config file syntax" in result.stdout, result.stdout


RULES_TEST = """\
rule_files: [{rules}]
evaluation_interval: 5s
tests:
  - interval: 5s
    input_series:
      - series: 'littleboss_reloads_total{{program="web",kind="reload",outcome="failed"}}'
        values: '0 0 1 1 1'
      - series: 'littleboss_reloads_total{{program="api",kind="reload",outcome="failed"}}'
        values: '0 0 0 0 0'
      - series: 'littleboss_socket_accept_queue{{instance="a",program="web",socket="http"}}'
        values: '0 10 10 10 10 10 10'
      - series: 'littleboss_socket_backlog{{instance="a",program="web",socket="http"}}'
        values: '16 16 16 16 16 16 16'
      - series: 'littleboss_reload_in_progress{{instance="a",program="web"}}'
        values: '0 1 1 1 1 1 1'
      - series: 'littleboss_socket_accept_queue{{instance="a",program="api",socket="http"}}'
        values: '10 10 10 10 10 10 10'
      - series: 'littleboss_socket_backlog{{instance="a",program="api",socket="http"}}'
        values: '16 16 16 16 16 16 16'
      - series: 'littleboss_reload_in_progress{{instance="a",program="api"}}'
        values: '0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 5s
        alertname: LittlebossReloadFailed
        exp_alerts: []
      - eval_time: 10s
        alertname: LittlebossReloadFailed
        exp_alerts:
          - exp_labels: {{severity: warning, program: web, kind: reload, outcome: failed}}
            exp_annotations:
              summary: "web: a reload failed; the old processes kept serving"
      - eval_time: 10s
        alertname: LittlebossAcceptQueueGrowingDuringReload
        exp_alerts: []
      - eval_time: 25s
        alertname: LittlebossAcceptQueueGrowingDuringReload
        exp_alerts:
          - exp_labels: {{severity: critical, instance: a, program: web, socket: http}}
            exp_annotations:
              summary: "web: 10 connections wait on http during a reload"
"""


def test_readmes_alert_rules_fire_as_it_says(tmp_path):
    """``promtool test rules``: a failed reload fires LittlebossReloadFailed for its program
    only; an accept queue over half its backlog fires the other alert after 15 s, and only while
    that program's reload is in progress."""
    rules = tmp_path / "rules.yml"
    rules.write_text(readme_examples()["rules"])
    test = tmp_path / "rules_test.yml"
    test.write_text(RULES_TEST.format(rules=rules.name))
    result = promtool("test", "rules", str(test))
    assert result.returncode == 0, result.stdout + result.stderr
