"""A row says what it is: "paper config" with the published value only when every release setting,
the budget, the distance and the input match; otherwise which settings differ. On real-format
fixtures of the field protocols, through the CLI, the store and the boards."""

from __future__ import annotations

import json

import pytest

from formats_kinect import write_biwi, write_ias_lab, write_kgbd


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("field-fixtures")
    write_ias_lab(root, persons=4, frames=40)
    write_biwi(root, persons=4, test_persons=3, frames=40)
    write_kgbd(root, walks_per_person=(3, 4, 5, 4), frames=40)
    return root


def _rows(board: str, fold: str) -> dict[str, str]:
    """Config cell -> the whole Markdown row, in the fold's section (the column found by its header)."""
    section = board.split(f"## Fold {fold}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    column = lines[0].split(" | ").index("Config")
    return {line.split(" | ")[column]: line for line in lines[1:]}


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "A-B"), ("biwi", "S")])
def test_only_the_release_configuration_carries_the_paper_value(cli, tmp_path, data, protocol, fold):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["run", "--protocol", protocol, "--fold", fold, "--seeds", "1", "--no-ray", "--data-root", str(data),
            "--tracking-uri", uri]
    for extra in (["--model", "d13"],                                  # the release's configuration
                  ["--model", "d13", "--set", "eval.distance=cosine"],  # another distance
                  ["--model", "d13", "--set", "statistics=mean+std"],   # another setting of the method
                  ["--model", "simmc", "--set", "epochs=2"]):           # a cut budget
        done = cli(*base, *extra)
        assert done.exit_code == 0, done.output
    assert cli("leaderboard", "--tracking-uri", uri, "--results", str(tmp_path / "res"), "--out",
               str(tmp_path / "lb")).exit_code == 0
    rows = _rows((tmp_path / "lb" / f"{protocol}.md").read_text(), fold)
    field_name = {"A-B": "IAS-A", "S": "BIWI-S"}[fold]
    from reid_bench.protocols.field import FIELD_TABLE

    published_map = f"{FIELD_TABLE['D13'][field_name][0]:.1f}"
    # the field table's D13: a descriptor, nothing trained (°), explained under the table
    assert f"| {published_map} ° |" in rows["release"] and "paper config" in rows["release"]
    assert "° no training" in (tmp_path / "lb" / f"{protocol}.md").read_text().split(f"## Fold {fold}", 1)[1]
    assert "config differs: eval.distance" in rows["eval.distance=cosine"]
    assert "config differs: statistics" in rows["statistics=mean+std"]
    assert "config differs: epochs" in rows["epochs=2"]
    for label in ("eval.distance=cosine", "statistics=mean+std", "epochs=2"):
        # no paper value beside another configuration, with or without its mark
        assert f"| {published_map} |" not in rows[label] and f"| {published_map} °" not in rows[label]
    doc = json.loads(next((tmp_path / "res" / protocol).rglob("d13/*.json")).read_text())
    assert doc["protocol_version"] == "3"


def test_the_input_is_part_of_what_a_row_is(cli, tmp_path, data):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["run", "--model", "d13", "--protocol", "kgbd-retrieval", "--seeds", "1", "--no-ray", "--data-root",
            str(data), "--tracking-uri", uri]
    assert cli(*base).exit_code == 0
    assert cli(*base, "--set", "data.joint_order=sdk").exit_code == 0
    assert cli("leaderboard", "--tracking-uri", uri, "--results", str(tmp_path / "res"), "--out",
               str(tmp_path / "lb")).exit_code == 0
    rows = _rows((tmp_path / "lb" / "kgbd-retrieval.md").read_text(), "all")
    assert "paper config" in rows["release"]
    assert "config differs: data.joint_order" in rows["data.joint_order=sdk"]


def test_the_releases_best_test_epoch_is_recorded_apart_and_changes_nothing(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "--model", "lstm-1", "--protocol", "synth-gait-retrieval", "--seeds", "1", "--no-ray",
            "--set", "epochs=4", "--set", "hidden=16", "--set", "data.identities=6", "--json"]
    plain = cli(*args, "--tracking-uri", f"sqlite:///{tmp_path / 'plain.db'}")
    watched = cli(*args, "--tracking-uri", uri, "--report-best-test-epoch", "1")
    assert plain.exit_code == 0 and watched.exit_code == 0, plain.output + watched.output
    assert [t["metrics"] for t in json.loads(plain.stdout)["trials"]] == \
        [t["metrics"] for t in json.loads(watched.stdout)["trials"]]  # the fixed budget's result, bit for bit
    assert cli("leaderboard", "--tracking-uri", uri, "--results", str(tmp_path / "res"), "--out",
               str(tmp_path / "lb")).exit_code == 0
    doc = json.loads(next((tmp_path / "res").rglob("lstm-1/*.json")).read_text())
    for trial in doc["trials"]:
        selected = trial["test_selected"]
        assert 0 <= selected["epoch"] <= 3 and selected["mAP"] >= trial["metrics"]["mAP"] - 1e-12
    board = (tmp_path / "lb" / "synth-gait-retrieval.md").read_text()
    assert "mAP at the best test epoch (test-selected)" in board
