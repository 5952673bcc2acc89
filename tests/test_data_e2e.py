"""The papers' protocols end to end through the CLI on fixtures in the original formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import mlflow_runs
from formats_kinect import write_ias_lab
from formats_pointclouds import write_duke3d, write_market3d


def test_d13_on_ias_lab_fixture(cli, tracking_uri, tmp_path):
    write_ias_lab(tmp_path / "data", persons=4, frames=14)
    result = cli("run", "--model", "d13", "--protocol", "ias", "--data-root", str(tmp_path / "data"), "--no-ray",
                 "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [(t["fold"], t["status"]) for t in payload["trials"]] == [("A", "FINISHED"), ("B", "FINISHED")]
    client, runs = mlflow_runs(tracking_uri)
    child = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"][0]
    assert any(k.startswith("reid_bench.dataset_checksum.ias-lab") for k in child.data.tags)
    assert child.data.params["fold_info.test_identities"] == "4"
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert "split.json" in artifacts
    # the second run reads the parsed-data cache and gives the same numbers
    again = cli("run", "--model", "d13", "--protocol", "ias", "--data-root", str(tmp_path / "data"), "--no-ray",
                "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
    assert [t["metrics"] for t in json.loads(again.stdout)["trials"]] == [t["metrics"] for t in payload["trials"]]


def test_missing_dataset_names_the_folder(cli, tracking_uri, tmp_path):
    result = cli("run", "--model", "d13", "--protocol", "ias", "--data-root", str(tmp_path / "empty"), "--no-ray",
                 "--seeds", "1", "--fold", "A", "--tracking-uri", tracking_uri)
    assert result.exit_code == 2  # refused before anything is written: no store, no FAILED runs
    assert str(tmp_path / "empty" / "ias-lab") in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_cloud_baseline_on_market3d_and_transfer_fixture(cli, tracking_uri, tmp_path):
    write_market3d(tmp_path / "data")
    write_duke3d(tmp_path / "data")
    for protocol in ("market3d", "market3d-to-duke3d"):
        result = cli("run", "--model", "cloud-hist", "--protocol", protocol, "--data-root", str(tmp_path / "data"),
                     "--no-ray", "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
        assert result.exit_code == 0, result.output
        trial = json.loads(result.stdout)["trials"][0]
        assert trial["status"] == "FINISHED" and 0.0 <= trial["metrics"]["mAP"] <= 1.0


def test_data_verify_on_fixture(cli, tmp_path):
    write_ias_lab(tmp_path / "data", persons=3, frames=10)
    result = cli("data", "verify", "ias-lab", "--data-root", str(tmp_path / "data"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["persons"] == 3 and report["sessions"] == {"TestingA": 3, "TestingB": 3, "Training": 3}
    listed = json.loads(cli("data", "list", "--data-root", str(tmp_path / "data"), "--json").stdout)
    status = {r["name"]: r["status"] for r in listed}
    assert status["ias-lab"] == "present" and status["kgbd"] == "missing" and status["synth-skeletons"] == "generated"


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (real Kinder-Gator and PsyMo copies) is not present")
@pytest.mark.parametrize("protocol, fold", [("kinder-gator-cross-action", "gallery-walkrun"), ("psymo-cross-view", "nm-90")])
def test_shared_data_protocols_run_end_to_end(cli, tracking_uri, protocol, fold):
    result = cli("run", "--model", "d13", "--protocol", protocol, "--fold", fold, "--data-root", str(SHARED),
                 "--no-ray", "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["trials"][0]["metrics"]
    chance = 1 / 20 if protocol.startswith("kinder") else 1 / 10
    assert metrics["rank1"] > 2 * chance  # identity is really recoverable from the real skeletons


def test_data_import_then_run_generic_protocol(cli, tracking_uri, tmp_path):
    from formats_shared import skeleton_samples, write_generic_source

    src = write_generic_source(tmp_path / "src", skeleton_samples([1, 2, 3], {"train": 2, "test": 1}))
    data = tmp_path / "data"
    imported = cli("data", "import", str(src), "--name", "mywalks", "--layout", "kinect-v1-20",
                   "--data-root", str(data), "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["persons"] == 3
    again = cli("data", "import", str(src), "--name", "mywalks", "--layout", "kinect-v1-20", "--data-root", str(data))
    assert again.exit_code == 1 and "mywalks" in again.output  # exists: refused without --overwrite
    result = cli("run", "--model", "d13", "--protocol", "generic-closed-set", "--set", "data.name=mywalks",
                 "--data-root", str(data), "--no-ray", "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trials"][0]["status"] == "FINISHED"
    missing = cli("data", "import", str(tmp_path / "nope"), "--name", "x", "--data-root", str(data))
    assert missing.exit_code == 1 and "nope" in missing.output


def test_smsge_on_ias_lab_fixture_through_the_cli(cli, tracking_uri, tmp_path):
    write_ias_lab(tmp_path / "data", persons=3, frames=12)
    result = cli("run", "--model", "smsge", "--protocol", "ias", "--fold", "A", "--data-root", str(tmp_path / "data"),
                 "--no-ray", "--seeds", "1", "--tracking-uri", tracking_uri, "--json",
                 "--set", "epochs=1", "--set", "hidden=16", "--set", "batch_size=16")
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert trial["status"] == "FINISHED" and 0.0 <= trial["metrics"]["rank1"] <= 1.0
    _, runs = mlflow_runs(tracking_uri)
    child = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"][0]
    assert child.data.params["model.lr"] == "0.0025"  # the paper's IAS value, from protocol_overrides


def test_a_finished_request_on_changed_data_files_runs_again(cli, tracking_uri, tmp_path):
    """The data's checksum is part of what a finished request is: a result on other files is not
    this request's result, so it is not skipped."""
    write_ias_lab(tmp_path / "data", persons=4, frames=14)
    args = ["run", "--model", "d13", "--protocol", "ias", "--fold", "A", "--data-root", str(tmp_path / "data"),
            "--no-ray", "--seeds", "1", "--tracking-uri", tracking_uri, "--json"]
    assert json.loads(cli(*args).stdout)["skipped"] == []
    assert json.loads(cli(*args).stdout)["skipped"] == ["A/seed0"]  # the same files: finished
    frame = tmp_path / "data" / "ias-lab" / "Training" / "002" / "00004_skel.txt"
    lines = frame.read_text().splitlines()
    fields = lines[1].split(",")
    lines[1] = ",".join([fields[0], str(float(fields[1]) + 0.25), *fields[2:]])
    frame.write_text("\n".join(lines) + "\n")
    again = json.loads(cli(*args).stdout)
    assert again["skipped"] == [] and again["trials"][0]["status"] == "FINISHED"  # other files: run again
