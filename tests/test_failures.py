"""Retries, resume after a failed trial or a killed driver, and a real multi-node Ray cluster."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys

import pytest

from conftest import TINY_GAIT, make_fake_distribution, mlflow_runs, ray_cluster, wait_for_store
from reid_bench.leaderboard import build_leaderboards

# A D13 that fails on purpose: seed 1 fails unless FLAKY_OK is set; with FLAKY_ONCE set, the first
# attempt of every trial fails (a marker file per trial remembers the attempt).
FLAKY = '''
import os
from pathlib import Path
from reid_bench_handcrafted.d13 import D13

class Flaky(D13):
    def fit(self, train, ctx):
        import time
        time.sleep(float(os.environ.get("FLAKY_SLEEP", "0")))
        once = os.environ.get("FLAKY_ONCE")
        if once:
            marker = Path(once) / f"seed{ctx.seed}-{len(train)}"
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("transient failure (first attempt)")
        if ctx.seed == 1 and not os.environ.get("FLAKY_OK"):
            raise RuntimeError("seed 1 always fails")
        super().fit(train, ctx)
'''


@pytest.fixture
def flaky_site(tmp_path, monkeypatch):
    site = make_fake_distribution(tmp_path / "site", "flaky-plugin", {"reid_bench.models": {"flaky": "flaky_mod:Flaky"}},
                                  {"flaky_mod": FLAKY})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    import importlib

    importlib.invalidate_caches()
    return site


def _trials(uri):
    _, runs = mlflow_runs(uri)
    return [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"]


def test_retries_then_success_in_process(cli, tracking_uri, flaky_site, tmp_path, monkeypatch):
    (tmp_path / "markers").mkdir()
    monkeypatch.setenv("FLAKY_ONCE", str(tmp_path / "markers"))
    monkeypatch.setenv("FLAKY_OK", "1")
    result = cli("run", "--model", "flaky", "--protocol", "synth-gait", "--fold", "A", "--seeds", "2", "--no-ray",
                 "--max-failures", "1", "--tracking-uri", tracking_uri, *TINY_GAIT)
    assert result.exit_code == 0, result.output
    client, _ = mlflow_runs(tracking_uri)
    trials = _trials(tracking_uri)
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    assert all(t.data.tags["reid_bench.retries"] == "1" for t in trials)
    assert {a.path for a in client.list_artifacts(trials[0].info.run_id)} >= {"traceback-attempt1.txt"}


def test_failed_trial_then_resume_reruns_only_it(cli, tracking_uri, flaky_site, tmp_path, monkeypatch):
    args = ["run", "--model", "flaky", "--protocol", "synth-gait", "--fold", "A", "--seeds", "2", "--no-ray",
            "--tracking-uri", tracking_uri, *TINY_GAIT]
    first = cli(*args)
    assert first.exit_code == 1  # seed 1 failed, seed 0 finished
    statuses = sorted((t.data.tags["reid_bench.seed"], t.info.status) for t in _trials(tracking_uri))
    assert statuses == [("0", "FINISHED"), ("1", "FAILED")]
    seed0_run = [t.info.run_id for t in _trials(tracking_uri) if t.data.tags["reid_bench.seed"] == "0"][0]

    monkeypatch.setenv("FLAKY_OK", "1")
    second = cli(*args, "--resume", "--json")
    assert second.exit_code == 0, second.output
    payload = json.loads(second.stdout)
    trials = _trials(tracking_uri)
    assert len(trials) == 3  # seed 0 was not run again
    assert payload["parent_run_id"] == trials[0].data.tags["mlflow.parentRunId"]
    assert {t["seed"]: t["run_id"] for t in payload["trials"]}[0] == seed0_run
    _, runs = mlflow_runs(tracking_uri)
    parents = [r for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    build_leaderboards(tmp_path / "lb", tmp_path / "results", tracking_uri)
    row = [l for l in (tmp_path / "lb" / "synth-gait.md").read_text().splitlines() if "| flaky |" in l][0]
    assert "2/2" in row and "incomplete" not in row

    nothing = cli(*args, "--resume")
    assert nothing.exit_code == 2 and "no unfinished invocation" in nothing.output


#: a trial's run marked RUNNING: the trial is inside its fit
RUNNING_TRIAL = ("SELECT count(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid WHERE runs.status = 'RUNNING'"
                 " AND tags.key = 'reid_bench.kind' AND tags.value = 'trial'")


def test_killed_driver_then_resume_leaves_nothing_running(tmp_path, flaky_site):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [sys.executable, "-m", "reid_bench.cli", "run", "--model", "flaky", "--protocol", "synth-gait",
            "--fold", "A", "--seeds", "2", "--no-ray", "--tracking-uri", uri, *TINY_GAIT]
    env = {**os.environ, "FLAKY_OK": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "FLAKY_SLEEP": "120"})
    wait_for_store(proc, tmp_path / "mlflow.db", RUNNING_TRIAL, "a trial started")
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait(timeout=60)
    _, runs = mlflow_runs(uri)
    assert any(r.info.status == "RUNNING" for r in runs)

    other = subprocess.run(args + ["--set", "statistics=mean+std", "--resume"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, env=env)
    assert other.returncode == 2 and "no unfinished invocation" in other.stderr  # another config: refused

    resumed = subprocess.run(args + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    _, runs = mlflow_runs(uri)
    assert not any(r.info.status == "RUNNING" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert len(killed) == 1 and killed[0].data.tags.get("reid_bench.kind") == "trial"
    finished = sorted(r.data.tags["reid_bench.seed"] for r in runs
                      if r.data.tags.get("reid_bench.kind") == "trial" and r.info.status == "FINISHED")
    assert finished == ["0", "1"]
    build_leaderboards(tmp_path / "lb", tmp_path / "results", uri)
    row = [l for l in (tmp_path / "lb" / "synth-gait.md").read_text().splitlines() if "| flaky |" in l][0]
    assert "2/2" in row


@pytest.mark.ray
def test_multi_node_cluster_places_trials_on_both_nodes_with_retries(tmp_path, flaky_site):
    """Two Ray nodes (one CPU each) on this machine; 2 trials that each fail once and are retried."""

    (tmp_path / "markers").mkdir()
    # The cluster recipe of the docs: Ray's token authentication, one shared token for every node and the driver.
    env = {**os.environ, "FLAKY_OK": "1", "FLAKY_ONCE": str(tmp_path / "markers"), "FLAKY_SLEEP": "3",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # PYTHONPATH: flaky_site's
    with ray_cluster([1, 1], env) as address:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        proc = subprocess.run(
            [sys.executable, "-m", "reid_bench.cli", "run", "--model", "flaky", "--protocol", "synth-gait", "--fold", "A",
             "--seeds", "2", "--address", address, "--max-failures", "1", "--storage", str(tmp_path / "storage"),
             "--tracking-uri", uri, "--json", *TINY_GAIT],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _trials(uri)
    keys = sorted((t.data.tags["reid_bench.fold"], t.data.tags["reid_bench.seed"]) for t in trials)
    assert keys == [("A", "0"), ("A", "1")]  # every result exactly once
    assert all(t.info.status == "FINISHED" for t in trials)
    assert len({t.data.tags["reid_bench.node"] for t in trials}) == 2  # placed on both nodes
    assert all(t.data.tags.get("reid_bench.retries") == "1" for t in trials)
    assert any((tmp_path / "storage").iterdir())


def test_unwritable_storage_is_refused_before_anything_starts(cli, tracking_uri, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--storage", str(blocker / "sub"),
                 "--tracking-uri", tracking_uri, *TINY_GAIT)
    assert result.exit_code == 2 and "--storage" in result.output
    assert mlflow_runs(tracking_uri)[1] == []
