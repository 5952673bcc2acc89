"""A run killed with SIGKILL in the middle of a fit continues from its last checkpoint with
``--resume`` and ends with the scores of an uninterrupted run, bit for bit (CPU, one thread:
the same operations in the same order). Real processes, the real console entry point, with and
without Ray; the tests wait for a checkpoint file to appear, never for a fixed time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_GAIT, mlflow_runs, run_subprocess, wait_for_store
from reid_bench.trial import LocalSink, TrialSpec, execute_fit

# Budgets long enough that the fit is still running when the test reacts to its second
# checkpoint, tiny networks so that each run takes seconds.
MODELS = {
    "lstm-1": ("synth-gait", ["epochs=40", "hidden=16"]),
    "smsge": ("synth-gait", ["epochs=10", "d_t=4", "heads=2", "hidden=16"]),
    "simmc": ("synth-gait-retrieval", ["epochs=30", "hidden=32"]),
}


def _args(model: str, tmp_path: Path, use_ray: bool, *extra: str) -> list[str]:
    protocol, sets = MODELS[model]
    args = ["run", "--model", model, "--protocol", protocol, "--seeds", "1", "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}", "--results-dir", str(tmp_path / "results"),
            "--checkpoint-epochs", "1", *TINY_GAIT, *[x for s in sets for x in ("--set", s)], *extra]
    return args if use_ray else [*args, "--no-ray"]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    """The CLI in a process group of its own, so that a kill takes its Ray processes too."""
    return subprocess.Popen([sys.executable, "-m", "reid_bench.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_checkpoint(proc: subprocess.Popen, root: Path, epoch: int, timeout: float = 600.0) -> dict:
    """The record of the first training checkpoint at ``epoch`` or later, once it is complete on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before checkpoint {epoch}: {proc.communicate()[1][-3000:]}")
        try:  # the writer renames its temporary folders while the walk runs: look again next time
            found = list(root.rglob("checkpoint_*/checkpoint.json"))
        except FileNotFoundError:
            found = []
        for path in found:
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("kind") == "training" and meta.get("epoch", -1) >= epoch:
                return meta
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {epoch} in {timeout:.0f} s")


def _wait_for_recorded_checkpoint(proc: subprocess.Popen, db: Path, epoch: int, timeout: float = 600.0) -> int:
    """The epoch of the newest checkpoint the driver has recorded (its ``reid_bench.checkpoint_epoch``
    tag), once it is ``epoch`` or later. Under Ray the tag is written in Ray's ``on_checkpoint``
    callback, so from then on Ray's own record of the trial holds that checkpoint; the file alone
    appears earlier, while the worker persists it."""
    rows = wait_for_store(proc, db, "SELECT value FROM tags WHERE key = 'reid_bench.checkpoint_epoch'",
                          f"checkpoint {epoch} recorded", timeout,
                          ready=lambda rows: bool(rows) and max(int(v) for (v,) in rows) >= epoch)
    return max(int(v) for (v,) in rows)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _reference(model: str, folds: list[str]) -> dict[str, dict]:
    """The same trial, uninterrupted, in this process."""
    protocol, sets = MODELS[model]
    overrides = {"model": dict(s.split("=", 1) for s in sets), "probe": {},
                 "data": {"identities": "6", "train_sequences": "2", "test_sequences": "1"}}
    spec = TrialSpec(model=model, protocol=protocol, fold=folds[0], also=tuple(folds[1:]), seed=0, overrides=overrides,
                     threads=1, cache_dir=None, save_model=False)
    return {r["fold"]: r["metrics"] for r in execute_fit(spec, LocalSink(None))}


def _statuses(uri: str) -> list[tuple[str, str]]:
    _, runs = mlflow_runs(uri)
    return sorted((r.data.tags.get("reid_bench.kind", ""), r.info.status) for r in runs)


# Every model in process (its own training state: optimisers, generators, clustering); under Ray
# once, as the restore path there does not depend on the model (and each Ray case costs ~35 s).
CASES = [(m, False) for m in MODELS] + [("lstm-1", True)]


@pytest.mark.parametrize("model,use_ray", CASES, ids=[f"{m}-{'ray' if r else 'no-ray'}" for m, r in CASES])
def test_sigkill_mid_fit_then_resume_scores_as_an_uninterrupted_run(tmp_path, model, use_ray):
    if use_ray:
        pytest.importorskip("ray")
    args = _args(model, tmp_path, use_ray)
    proc = _start(args, tmp_path)
    meta = _wait_for_checkpoint(proc, tmp_path / "results", epoch=1)
    _kill(proc)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ("trial", "RUNNING") in _statuses(uri)  # what a killed driver leaves behind

    resumed = run_subprocess([*args, "--resume", "--json"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    payload = json.loads(resumed.stdout)
    measured = {t["fold"]: t["metrics"] for t in payload["trials"]}
    assert measured == _reference(model, sorted(measured))  # every float equal
    assert all(status != "RUNNING" for _, status in _statuses(uri))

    client, runs = mlflow_runs(uri)
    finished = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial" and r.info.status == "FINISHED"]
    assert len(finished) == len(measured)
    epochs = {int(r.data.tags["reid_bench.resumed_epoch"]) for r in finished}
    assert len(epochs) == 1 and meta["epoch"] <= epochs.pop() < meta["epochs"] - 1  # continued mid-fit
    assert all(r.data.tags["reid_bench.resumed_from"] for r in finished)
    assert all(r.data.tags.get("reid_bench.model_artifact") == "model" for r in finished)


def test_a_plain_run_after_a_killed_driver_ends_its_runs_and_resume_reruns_nothing(tmp_path):
    args = _args("lstm-1", tmp_path, False, "--fold", "A")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start(args, tmp_path)
    _wait_for_checkpoint(proc, tmp_path / "results", epoch=1)
    _kill(proc)
    assert sorted(_statuses(uri)) == [("invocation", "RUNNING"), ("trial", "RUNNING")]

    plain = run_subprocess(args, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    client, runs = mlflow_runs(uri)
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert sorted(r.data.tags["reid_bench.kind"] for r in killed) == ["invocation", "trial"]
    assert "stopped before the trial ended" in next(r for r in killed if r.data.tags["reid_bench.kind"] == "trial"
                                                     ).data.tags["reid_bench.error"]
    trials_before = sum(r.data.tags.get("reid_bench.kind") == "trial" for r in runs)

    resumed = run_subprocess([*args, "--resume", "--json"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [t["status"] for t in json.loads(resumed.stdout)["trials"]] == ["FINISHED"]
    _, runs = mlflow_runs(uri)
    assert sum(r.data.tags.get("reid_bench.kind") == "trial" for r in runs) == trials_before  # nothing ran again
    assert all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.ray
def test_ray_restarts_a_lost_trial_from_its_last_checkpoint(tmp_path):
    """The worker process dies (as on a lost node); Ray's failure handling restarts the trial,
    which continues from the checkpoint Ray kept, not from epoch 0."""
    args = _args("lstm-1", tmp_path, True, "--fold", "A", "--max-failures", "1", "--json")
    proc = _start(args, tmp_path)
    meta = _wait_for_checkpoint(proc, tmp_path / "results", epoch=1)  # the worker's pid
    recorded = _wait_for_recorded_checkpoint(proc, tmp_path / "mlflow.db", epoch=1)
    os.kill(meta["pid"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    trial = json.loads(stdout)["trials"][0]
    assert trial["metrics"] == _reference("lstm-1", ["A"])["A"]
    _, runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    child = next(r for r in runs if r.data.tags.get("reid_bench.kind") == "trial")
    assert child.data.tags.get("reid_bench.retries") == "1"
    assert int(child.data.tags["reid_bench.resumed_epoch"]) >= recorded >= 1  # not from epoch 0
