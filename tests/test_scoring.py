"""Retrieval scoring as data: the field protocols rank as the skeleton releases rank.

The reference below recomputes, from a trained model's embeddings, what SimMC's ``metrics`` and
``mean_ap`` do (Kali-Hac/SimMC SimMC.py lines 411-504 and 992, commit c325ad5; TranSG, SPC-MGR,
Hi-MPC and MoCos carry the same functions): the Euclidean distance sqrt(|a|^2 + |b|^2 - 2ab) of
the raw window features, every probe window against every gallery window, Rank-k over every
probe window, mAP with scikit-learn's average_precision_score over the probes that have a true
match. Written from the facts, not copied."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from formats_kinect import write_biwi, write_ias_lab, write_kgbd, write_ks20
from reid_bench.scoring import FIELD_RELEASES, RetrievalScoring
from reid_bench.trial import LocalSink, TrialSpec, execute_fit


def release_metrics(query: np.ndarray, gallery: np.ndarray, q_ids: np.ndarray, g_ids: np.ndarray) -> dict:
    q, g = query.astype(np.float64), gallery.astype(np.float64)
    d = np.sqrt(np.maximum((q ** 2).sum(1)[:, None] + (g ** 2).sum(1)[None, :] - 2 * q @ g.T, 0.0))
    order = np.argsort(d, axis=1, kind="stable")
    hits = g_ids[order] == q_ids[:, None]
    aps = [average_precision_score(hits_row.astype(int), -d_row[o]) for hits_row, d_row, o in zip(hits, d, order)
           if hits_row.any()]
    return {"rank1": float(hits[:, 0].mean()), "rank5": float(hits[:, :5].any(1).mean()), "mAP": float(np.mean(aps))}


class _Keep(LocalSink):
    def __init__(self):
        super().__init__(None)
        self.model_state = None

    def checkpoint(self, state, meta):
        if meta["kind"] == "model":
            self.model_state = state["model"]
        return None


@pytest.fixture(scope="module")
def field_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("field-data")
    write_ias_lab(root, persons=4, frames=40)
    write_biwi(root, persons=4, test_persons=3, frames=40)
    write_kgbd(root, walks_per_person=(3, 4, 5, 4), frames=40)
    write_ks20(root, bodies=(1, 2, 7, 8), frames=14)
    return root


FIELD = [("ias-retrieval", "A-B"), ("ias-retrieval", "B-A"), ("biwi", "S"), ("biwi", "W"), ("kgbd-retrieval", "all"),
         ("ks20-retrieval", "all")]


@pytest.mark.parametrize("model,sets", [("d13", {}), ("lstm-1", {"epochs": "2", "hidden": "16"})], ids=["d13", "lstm-1"])
def test_field_protocols_score_as_the_releases_do(field_data, tmp_path, model, sets):
    from reid_bench.registry import get_registry

    registry = get_registry()
    for protocol, fold in FIELD:
        assert registry.protocol(protocol).scoring == FIELD_RELEASES
        spec = TrialSpec(model, protocol, fold, 0, overrides={"model": dict(sets)}, data_root=str(field_data),
                         threads=1, cache_dir=str(tmp_path / "cache"))
        sink = _Keep()
        result = execute_fit(spec, sink)[0]
        model_cls = registry.model(model)
        built = registry.protocol(protocol)().build_fold(fold, 0, _data(field_data, tmp_path, registry, model, protocol))
        fitted = _fitted(model_cls, model, protocol, built, sink.model_state, sets, tmp_path)
        want = release_metrics(fitted.embed(built.query), fitted.embed(built.gallery), built.query.person,
                               built.gallery.person)
        for metric, value in want.items():
            assert result["metrics"][metric] == pytest.approx(value, abs=1e-6), (protocol, fold, metric)


def _data(root, tmp_path, registry, model, protocol):
    from reid_bench.config import Overrides
    from reid_bench.trial import HarnessData, resolve_config

    resolved = resolve_config(model, protocol, Overrides(), registry)
    return HarnessData(registry, str(root), resolved.data, cache_dir=str(tmp_path / "cache"))


def _fitted(model_cls, name, protocol, built, state, sets, tmp_path):
    """The trial's model again: its saved state (a model without one, d13, fits on the split)."""
    from reid_bench.config import Overrides
    from reid_bench.samples import DataSpec
    from reid_bench.trial import resolve_config

    resolved = resolve_config(name, protocol, Overrides(model=dict(sets)))
    train = built.train
    model = model_cls(resolved.model, DataSpec("skeleton", train.num_classes, train.layout, train.data.shape[1]))
    if state is not None:
        model.load_model_state(state)
    else:
        from conftest import trial_context

        model.fit(train, trial_context(tmp_path, seed=0))
    return model


def test_a_run_can_switch_the_scoring_and_its_row_says_so(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "--model", "d13", "--protocol", "synth-gait-retrieval", "--seeds", "1", "--fold", "A-B",
            "--no-ray", "--tracking-uri", uri, "--set", "data.identities=6", "--json"]
    raw = cli(*args)
    cosine = cli(*args, "--set", "eval.distance=cosine")
    assert raw.exit_code == 0 and cosine.exit_code == 0, raw.output + cosine.output
    raw_map = json.loads(raw.stdout)["trials"][0]["metrics"]["mAP"]
    cos_map = json.loads(cosine.stdout)["trials"][0]["metrics"]["mAP"]
    assert raw_map != cos_map  # another ranking, another row
    from conftest import mlflow_runs

    _, runs = mlflow_runs(uri)
    labels = {r.data.tags["reid_bench.config_label"] for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"}
    assert labels == {'{"data.identities": "6"}', '{"data.identities": "6", "eval.distance": "cosine"}'}
    closed = cli("run", "--model", "d13", "--protocol", "synth-gait", "--set", "eval.distance=cosine",
                 "--tracking-uri", uri)
    assert closed.exit_code == 2 and "eval.* applies to retrieval protocols only" in closed.output


def test_scoring_describes_itself():
    assert RetrievalScoring().describe().startswith("Euclidean distance of L2-normalised embeddings")
    assert "every query" in FIELD_RELEASES.describe()
