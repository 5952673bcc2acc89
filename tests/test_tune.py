"""reid-bench tune: ASHA on a validation split, then the best config on the test folds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY_GAIT, mlflow_runs
from reid_bench.config import Overrides
from reid_bench.leaderboard import build_leaderboards
from reid_bench.registry import get_registry
from reid_bench.trial import HarnessData, resolve_config
from reid_bench.validation import carve_validation


def _fold(protocol, model, **data):
    reg = get_registry()
    resolved = resolve_config(model, protocol, Overrides(data={k: str(v) for k, v in data.items()}), reg)
    proto = reg.protocol(protocol)()
    return proto, proto.build_fold(proto.folds[0], 0, HarnessData(reg, None, resolved.data))


def test_closed_set_validation_holds_out_training_sequences():
    proto, fold = _fold("synth-gait", "d13", identities=5, train_sequences=3, test_sequences=1)
    val = carve_validation(fold, proto.mode)
    assert set(val.train.person) == set(val.test.person) == set(fold.train.person)
    assert not set(val.train.group) & set(val.test.group)  # no sequence on both sides
    assert len(val.train) + len(val.test) == len(fold.train)
    test_sequences = set(fold.test.meta["sequence"])
    assert not test_sequences & (set(val.train.meta["sequence"]) | set(val.test.meta["sequence"]))
    again = carve_validation(fold, proto.mode)
    np.testing.assert_array_equal(again.test.group, val.test.group)  # fixed split


def test_retrieval_validation_holds_out_training_identities():
    proto, fold = _fold("synth-market", "cloud-hist", train_identities=10, test_identities=4, num_points=128)
    val = carve_validation(fold, proto.mode)
    held = set(val.query.person) | set(val.gallery.person)
    assert held and not held & set(val.train.person)
    assert held <= set(fold.train.person)  # carved from training identities only
    assert not set(fold.query.person) & (held | set(val.train.person))
    assert sorted(set(val.train.labels)) == list(range(len(set(val.train.person))))
    for pid in held:  # every held-out query has a cross-camera match
        qc = set(val.query.camera[val.query.person == pid])
        gc = set(val.gallery.camera[val.gallery.person == pid])
        assert gc - qc


@pytest.mark.ray
def test_tune_with_asha_then_tuned_run_in_leaderboard(cli, tracking_uri, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('lr = {loguniform = [1e-3, 1e-2]}\nhidden = {choice = [16, 32]}\n')
    result = cli("tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--samples", "4", "--space", str(space),
                 "--max-concurrent", "2", "--seeds", "1", "--tracking-uri", tracking_uri, "--json",
                 "--set", "epochs=3", *TINY_GAIT)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["best_params"]) == {"lr", "hidden"} and payload["trials"] == 4
    samples = payload["samples"]  # every sample, best first, with its exact values and how it ended
    assert len(samples) == 4 and samples[0]["params"] == payload["best_params"]
    assert samples[0]["val_score"] == payload["best_val_score"] and samples[0]["status"] == "FINISHED"
    scores = [s["val_score"] for s in samples]
    assert scores == sorted(scores, reverse=True)
    assert all(1 <= s["epochs"] <= 3 and s["status"] in ("FINISHED", "STOPPED") for s in samples)
    client, runs = mlflow_runs(tracking_uri)
    kinds = [r.data.tags.get("reid_bench.kind") for r in runs]
    assert kinds.count("search") == 1 and kinds.count("tune-trial") == 4 and kinds.count("invocation") == 1
    assert all(r.info.status == "FINISHED" for r in runs)
    search = [r for r in runs if r.data.tags.get("reid_bench.kind") == "search"][0]
    assert json.loads(search.data.tags["reid_bench.best_config"]) == payload["best_params"]
    tune_trials = [r for r in runs if r.data.tags.get("reid_bench.kind") == "tune-trial"]
    assert all(r.data.tags["reid_bench.search_run_id"] == search.info.run_id for r in tune_trials)
    completed = [r for r in tune_trials if "reid_bench.early_stopped" not in r.data.tags]
    assert completed and all("fold_info.validation" in r.data.params for r in completed)  # validation split only
    curves = [len(client.get_metric_history(r.info.run_id, "train/val_score")) for r in tune_trials]
    assert max(curves) == 3  # a validation score per epoch for ASHA
    invocation = [r for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"][0]
    assert invocation.data.tags["reid_bench.tuned"] == "4 samples, asha, random"
    build_leaderboards(tmp_path / "lb", tmp_path / "results", tracking_uri)
    md = (tmp_path / "lb" / "synth-gait.md").read_text()
    assert "gait-lstm (tuned: 4 samples, asha, random)" in md
    lr = payload["best_params"]["lr"]  # sampled at full precision, shown rounded, kept exact in the config
    assert f"lr={lr:.3g}" in md and str(lr) not in md
    assert md.count("| gait-lstm") == 2  # folds A and B: only the final run is ranked, never search trials


def test_search_progress_names_each_sample_by_its_values_and_score(tmp_path):
    """Without a terminal the search prints a line per event: each sample by its values, and
    the score it ended with, so that samples can be told apart."""
    from rich.console import Console

    from reid_bench.runner import LiveView, TrialState
    from reid_bench.trial import TrialSpec

    view = LiveView("tune", [], "val_score")
    view.console = Console(file=(tmp_path / "out.txt").open("w"), width=200)
    stopped = TrialState(TrialSpec(model="gait-lstm", protocol="synth-gait", fold="A", seed=0),
                         status="STOPPED", label="#2 lr=0.00381, hidden=16", epoch=0, last_score=0.25)
    view.update(stopped, "finish")
    view.console.file.close()
    assert (tmp_path / "out.txt").read_text().strip() == "[trial #2 lr=0.00381, hidden=16] stopped  val_score=25.0%  (after epoch 1)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "d13"], "declares no search space"),
        (["--model", "gait-lstm", "--search", "optuna"], "optional extra"),
        (["--model", "gait-lstm", "--scheduler", "hyperband"], "expected 'asha' or 'fifo'"),
        (["--model", "gait-lstm", "--set", "lr=0.1"], "both fixed with --set and searched"),
        # the final run's request is checked with the search's, before any sample trains
        (["--model", "gait-lstm", "--seeds", "0"], "--seeds must be at least 1"),
        (["--model", "cloud-hist"], "model 'cloud-hist' works on pointcloud data; protocol 'synth-gait' is skeleton"),
    ],
)
def test_tune_bad_requests(cli, tracking_uri, args, message):
    pytest.importorskip("ray")
    if "optuna" in args:
        try:
            import optuna  # noqa: F401

            pytest.skip("optuna is installed here")
        except ImportError:
            pass
    result = cli("tune", "--protocol", "synth-gait", "--tracking-uri", tracking_uri, *args)
    assert result.exit_code == 2 and message in result.output
    assert mlflow_runs(tracking_uri)[1] == []


def test_space_file_errors(cli, tracking_uri, tmp_path):
    bad = tmp_path / "space.toml"
    bad.write_text('nonsense = {choice = [1, 2]}\n')
    result = cli("tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--space", str(bad), "--tracking-uri", tracking_uri)
    assert result.exit_code == 2 and "'nonsense' is not a field of model 'gait-lstm'" in result.output
    bad.write_text('lr = {gaussian = [0, 1]}\n')
    result = cli("tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--space", str(bad), "--tracking-uri", tracking_uri)
    assert result.exit_code == 2 and "unknown distribution 'gaussian'" in result.output


@pytest.mark.ray
def test_interrupted_search_resumes(tmp_path):
    import signal
    import subprocess
    import sys

    space = tmp_path / "space.toml"
    space.write_text('lr = {loguniform = [1e-3, 1e-2]}\n')
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [sys.executable, "-m", "reid_bench.cli", "tune", "--model", "gait-lstm", "--protocol", "synth-gait",
            "--samples", "2", "--max-concurrent", "1", "--scheduler", "fifo", "--space", str(space), "--seeds", "1",
            "--tracking-uri", uri, "--set", "epochs=6", *TINY_GAIT]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the first sample's trial has started: interrupt it there
        if "running" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    _, runs = mlflow_runs(uri)
    search = [r for r in runs if r.data.tags.get("reid_bench.kind") == "search"]
    assert len(search) == 1 and search[0].info.status == "KILLED"
    assert not any(r.info.status == "RUNNING" for r in runs)

    resumed = subprocess.run(args + ["--resume", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    payload = json.loads(resumed.stdout)
    assert payload["search_run_id"] == search[0].info.run_id and payload["trials"] == 2
    _, runs = mlflow_runs(uri)
    assert not any(r.info.status == "RUNNING" for r in runs)
    assert [r.info.status for r in runs if r.data.tags.get("reid_bench.kind") == "search"] == ["FINISHED"]
    finished = [r for r in runs if r.data.tags.get("reid_bench.kind") == "tune-trial" and r.info.status == "FINISHED"]
    assert len({r.data.params["params.lr"] for r in finished}) == 2  # both configurations completed once
    invocation = [r for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"]
    assert len(invocation) == 1 and invocation[0].data.tags["reid_bench.tuned"].startswith("2 samples")
