"""The harness's control rows: chance, the probe on raw windows, an untrained encoder."""

from __future__ import annotations

import json

import numpy as np

from conftest import TINY_GAIT, trial_context
from reid_bench.api import DataSpec, SampleSet
from reid_bench.controls import ChanceConfig, ChanceControl, RawConfig, RawWindowsControl, control_kind
from reid_bench.layouts import KINECT_V1_20
from reid_bench.metrics import closed_set_metrics
from reid_bench.probe import ProbeConfig, train_probe_and_score


def _windows(n: int, classes: int, seed: int) -> SampleSet:
    """Windows of ``classes`` people (the same people whatever ``seed``, which draws the noise)."""
    labels = np.arange(n) % classes
    people = np.random.default_rng(123).normal(0, 0.3, (classes, 1, 20, 3))
    data = (people[labels] + np.random.default_rng(seed).normal(0, 0.01, (n, 6, 20, 3))).astype(np.float32)
    return SampleSet("skeleton", data, labels, labels, np.zeros(n), np.arange(n), layout=KINECT_V1_20)


def test_chance_control_scores_chance_and_raw_control_sees_the_input(tmp_path):
    trial_ctx = trial_context(tmp_path)
    train, test = _windows(200, 10, 0), _windows(400, 10, 1)
    spec = DataSpec("skeleton", 10, KINECT_V1_20, 6)
    chance, raw = ChanceControl(ChanceConfig(), spec), RawWindowsControl(RawConfig(), spec)
    for model in (chance, raw):
        model.fit(train, trial_ctx)
    feats = chance.embed(test)
    assert feats.shape == (400, 64) and np.array_equal(feats, chance.embed(test))  # a fixed draw
    probe = ProbeConfig(epochs=30)
    ranks = []
    for model in (chance, raw):
        scores = train_probe_and_score(model.embed(train), train.labels, model.embed(test), probe, seed=0)
        ranks.append(closed_set_metrics(scores, test.labels).rank1)
    assert abs(ranks[0] - 0.1) < 0.06  # ten classes: chance
    assert ranks[1] > 0.9 and raw.embed(test).shape == (400, 6 * 20 * 3)


def test_control_rows_are_recognised():
    assert control_kind("control-chance", {}) == "chance"
    assert control_kind("control-raw", {}) == "probe on raw windows"
    assert control_kind("smsge", {"epochs": "0"}) == "untrained encoder"
    assert control_kind("smsge", {}) is None and control_kind("smsge", {"epochs": "3"}) is None
    # an untrained encoder of another recipe or variant is still untrained: never ranked
    assert control_kind("smsge", {"epochs": "0", "recipe": "harness", "probe": "harness"}) == "untrained encoder"
    assert control_kind("smsge", {"epochs": "0", "data.identities": "6"}) == "untrained encoder"  # on other data too


def test_controls_sit_below_the_ranking(cli, tracking_uri, tmp_path):
    for model, extra in (("d13", []), ("control-chance", []), ("gait-lstm", ["--set", "epochs=0"])):
        result = cli("run", "--model", model, "--protocol", "synth-gait", "--fold", "A", "--seeds", "1", "--no-ray",
                     "--tracking-uri", tracking_uri, *extra, *TINY_GAIT)
        assert result.exit_code == 0, result.output
    assert cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(tmp_path / "lb"), "--results",
               str(tmp_path / "results")).exit_code == 0
    md = (tmp_path / "lb" / "synth-gait.md").read_text()
    ranked, controls = md.split("Controls (not ranked)")
    assert "| 1 | d13 |" in ranked and "control-chance" not in ranked
    assert "| — | control-chance (chance) |" in controls and "| — | gait-lstm (untrained encoder) |" in controls
    rows = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["protocols"]["synth-gait"]["versions"]["1"]["A"]
    assert sorted(r["control"] or "" for r in rows) == ["", "chance", "untrained encoder"]


def test_info_shows_a_models_configuration_on_a_protocol(cli):
    result = cli("info", "smsge", "--protocol", "ias", "--json")
    assert result.exit_code == 0, result.output
    on = json.loads(result.stdout)["on_protocol"]
    assert on["model"]["recipe"] == "released" and on["model"]["per_scale_adam"] is True
    assert on["probe"]["hidden"] == 1024 and on["probe"]["chunks"] == 7 and len(on["config_fingerprint"]) == 12
    refused = cli("info", "ias", "--protocol", "ias")
    assert refused.exit_code == 2 and "--protocol applies to models" in refused.output
