"""Metrics as data: what each evaluation mode reports is what ``reid_bench.modes`` declares, and
every reader of results (the result schema, the boards, the bootstrap) takes names, labels and
scales from there."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from reid_bench import modes
from reid_bench.trial import TrialSpec, execute_trial


@pytest.mark.parametrize("protocol,fold", [("synth-gait", "A"), ("synth-gait-retrieval", "A-B")])
def test_each_mode_reports_exactly_its_declared_metrics(tmp_path, protocol, fold):
    from reid_bench.registry import get_registry

    mode = get_registry().protocol(protocol).mode
    spec = TrialSpec("d13", protocol, fold, 0, overrides={"data": {"identities": "6"}}, threads=1,
                     cache_dir=str(tmp_path / "cache"))
    result = execute_trial(spec)
    assert set(result["metrics"]) == set(modes.metrics_of(mode))
    for name, value in result["metrics"].items():
        assert modes.metric(name).percent and 0.0 <= value <= 1.0, name
    # The bootstrap's per-query values average to the trial's score, for each metric that has them.
    for name in modes.metrics_of(mode):
        per_query = modes.metric(name).per_query
        if per_query is not None:
            assert per_query(result["per_query"]).mean() == pytest.approx(result["metrics"][name], abs=1e-6), name


def test_an_unknown_mode_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown evaluation mode 'ranking'; expected one of closed-set, retrieval"):
        modes.evaluator("ranking")


def test_the_result_schema_takes_its_metric_names_from_the_specs(tmp_path):
    from reid_bench.results import ResultsError, check_document

    committed = sorted((Path(__file__).resolve().parents[1] / "results").rglob("*.json"))
    doc = json.loads(committed[0].read_text())
    for name in modes.METRIC_NAMES:
        changed = copy.deepcopy(doc)
        changed["trials"][0]["metrics"] = {name: 0.5}
        check_document(tmp_path / "r.json", changed)  # each declared name is accepted
    changed["trials"][0]["metrics"] = {"rank2": 0.5}
    with pytest.raises(ResultsError, match="'rank2' is not one of"):
        check_document(tmp_path / "r.json", changed)


def test_board_columns_and_labels_come_from_the_specs():
    assert modes.board_columns(modes.CLOSED_SET) == ["rank1", "rank5", "nAUC"]
    assert modes.board_columns(modes.RETRIEVAL) == ["rank1", "rank5", "mAP"]
    assert modes.label("map_trapz") == "mAP (trapz)" and modes.label("val_score") == "val_score"
    assert len(set(modes.METRIC_NAMES)) == len(modes.METRICS)
    assert all(set(s.modes) <= set(modes.MODES) for s in modes.METRICS)
    ranks = np.array([1, 3, 7, 12])
    assert modes.metric("rank5").per_query({"true_class_rank": ranks}).tolist() == [1.0, 1.0, 0.0, 0.0]
