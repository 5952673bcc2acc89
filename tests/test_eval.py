"""``reid-bench eval``: a saved model scored without training, strictly loaded, and on a board."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import TINY_GAIT, mlflow_runs
from formats_kinect import write_ias_lab, write_ks20
from reid_bench.checkpoints import file_sha256, record_sha256

RUN = ["run", "--model", "lstm-1", "--protocol", "synth-gait-retrieval", "--seeds", "1", "--no-ray",
       "--set", "epochs=2", "--set", "hidden=16", *TINY_GAIT]


@pytest.fixture
def trained(cli, tmp_path):
    """One run of lstm-1 (both folds, one fit), its training checkpoints kept; (store URI, run JSON)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli(*RUN, "--tracking-uri", uri, "--results-dir", str(tmp_path / "results"), "--keep-checkpoints", "--json")
    assert done.exit_code == 0, done.output
    return uri, json.loads(done.stdout)


def _eval(cli, uri: str, checkpoint: str, *extra: str):
    return cli("eval", "--checkpoint", checkpoint, "--tracking-uri", uri, "--json", *extra)


def test_a_runs_model_artifact_scores_what_the_run_scored(cli, trained):
    uri, run = trained
    for trial in run["trials"]:
        done = _eval(cli, uri, f"runs:/{trial['run_id']}", "--protocol", "synth-gait-retrieval", "--fold", trial["fold"])
        assert done.exit_code == 0, done.output
        scored = json.loads(done.stdout)["trials"][0]
        assert scored["metrics"] == trial["metrics"]  # the same model, the same evaluation: every float
    _, runs = mlflow_runs(uri)
    evals = [r for r in runs if r.data.tags.get("reid_bench.evaluation_only") == "true"]
    assert sorted(r.data.tags["reid_bench.kind"] for r in evals) == ["invocation", "invocation", "trial", "trial"]
    assert all(r.info.status == "FINISHED" for r in runs)
    label = json.loads(evals[0].data.tags["reid_bench.config_label"])
    assert label["trained on"] == "synth-gait-retrieval/A-B+B-A/seed0" and len(label["checkpoint"]) == 12


def _model_folder(tmp_path: Path) -> Path:
    found = sorted((tmp_path / "results").rglob("model/checkpoint.json"))
    assert found, "the run left no model checkpoint"
    return found[0].parent


def test_a_checkpoint_folder_and_a_training_checkpoint_score_too(cli, trained, tmp_path):
    uri, run = trained
    folder = _model_folder(tmp_path)
    done = _eval(cli, uri, str(folder), "--protocol", "synth-gait-retrieval")
    assert done.exit_code == 0, done.output
    assert {t["fold"]: t["metrics"] for t in json.loads(done.stdout)["trials"]} == \
        {t["fold"]: t["metrics"] for t in run["trials"]}
    last = sorted(folder.parent.glob("checkpoint_*"))[-1]  # after the last epoch: the same weights
    done = _eval(cli, uri, str(last / "state.pt"), "--protocol", "synth-gait-retrieval", "--fold", "A-B")
    assert done.exit_code == 0, done.output


def _runs(uri: str) -> list[tuple[str, str]]:
    _, runs = mlflow_runs(uri)
    return sorted((r.info.run_id, r.info.status) for r in runs)


def test_a_tampered_checkpoint_is_refused_in_one_line_and_nothing_is_recorded(cli, trained, tmp_path):
    uri, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(_model_folder(tmp_path), copy)
    data = bytearray((copy / "state.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "state.pt").write_bytes(bytes(data))
    before = _runs(uri)
    done = _eval(cli, uri, str(copy), "--protocol", "synth-gait-retrieval")
    assert done.exit_code == 2
    assert "content does not match the SHA-256" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _runs(uri) == before


def _rewrite_record(folder: Path, **changes) -> None:
    """A record changed and re-hashed, as a checkpoint of another configuration would carry."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    for key, value in changes.items():
        target = meta
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    meta["sha256"] = file_sha256(folder / "state.pt")
    meta["record_sha256"] = record_sha256(meta)
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def test_weights_that_do_not_fit_the_model_are_refused_never_partly_loaded(cli, trained, tmp_path):
    uri, _ = trained
    copy = tmp_path / "wider"
    shutil.copytree(_model_folder(tmp_path), copy)
    _rewrite_record(copy, **{"config.model.hidden": 32})  # weights of 16 units, a record of 32
    before = _runs(uri)
    done = _eval(cli, uri, str(copy), "--protocol", "synth-gait-retrieval")
    assert done.exit_code == 2
    assert "net: lstm.weight_ih_l0 has shape (64, 60) in the checkpoint, (128, 60) in the model" in done.stderr
    assert _runs(uri) == before

    copy = tmp_path / "deeper"
    shutil.copytree(_model_folder(tmp_path), copy)
    _rewrite_record(copy, **{"config.model.layers": 2})
    done = _eval(cli, uri, str(copy), "--protocol", "synth-gait-retrieval")
    assert done.exit_code == 2 and "missing keys lstm.bias_hh_l1" in done.stderr


def test_another_protocol_with_the_same_layout_is_scored_and_labelled_one_with_another_is_refused(cli, trained,
                                                                                                   tmp_path):
    uri, run = trained
    data = tmp_path / "data"
    write_ias_lab(data, persons=4, frames=40)
    write_ks20(data, bodies=(1, 2, 7), frames=12)
    checkpoint = f"runs:/{run['trials'][0]['run_id']}"
    done = _eval(cli, uri, checkpoint, "--protocol", "ks20-retrieval", "--data-root", str(data))
    assert done.exit_code == 2
    assert "layout 'kinect-v2-25'; the checkpoint was trained on 'kinect-v1-20'" in done.stderr

    done = _eval(cli, uri, checkpoint, "--protocol", "ias-retrieval", "--data-root", str(data))
    assert done.exit_code == 0, done.output
    results, boards = tmp_path / "res", tmp_path / "boards"
    done = cli("leaderboard", "--tracking-uri", uri, "--results", str(results), "--out", str(boards))
    assert done.exit_code == 0, done.output
    board = (boards / "ias-retrieval.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("| ") and "lstm-1" in line)
    assert "checkpoint=" in row and "trained on=synth-gait-retrieval/A-B+B-A/seed0" in row
    assert "evaluated from checkpoint" in row
    doc = json.loads(next(results.rglob("ias-retrieval/**/*.json")).read_text())
    assert doc["evaluated_from"]["trained_on"] == "synth-gait-retrieval/A-B+B-A/seed0"
