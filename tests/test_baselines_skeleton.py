"""The GaitLSTM baseline on tiny synthetic walkers (D13 and the field's methods: test_field_methods.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import reload_saved
from reid_bench.api import DataSpec, TrialContext
from reid_bench.layouts import KINECT_V1_20
from reid_bench.samples import label_map, windows_from_sequences
from reid_bench.synthetic.skeletons import WalkerOptions, generate_walkers
from reid_bench_baselines.gait_lstm import GaitLSTM, GaitLSTMConfig

IDS = 8


@pytest.fixture(scope="module")
def fold():
    recs = generate_walkers(WalkerOptions(identities=IDS, train_sequences=2, test_sequences=1, min_frames=36, max_frames=48))
    train_recs = [r for r in recs if r.session == "train"]
    labels = label_map(r.person for r in train_recs)
    train = windows_from_sequences(train_recs, 6, 3, KINECT_V1_20, labels)
    test = windows_from_sequences([r for r in recs if r.session == "A"], 6, 6, KINECT_V1_20, labels)
    return train, test


def _ctx(tmp_path: Path, seed: int = 0, log: list | None = None) -> TrialContext:
    return TrialContext(
        device="cpu",
        seed=seed,
        checkpoint_dir=tmp_path,
        report=(lambda epoch, **m: log.append((epoch, m))) if log is not None else (lambda epoch, **m: None),
    )


def _spec(train) -> DataSpec:
    return DataSpec("skeleton", num_classes=train.num_classes, layout=KINECT_V1_20, window=6)


def _small_lstm(**kw) -> GaitLSTMConfig:
    base = dict(hidden=32, embed_dim=16, epochs=6, batch_size=32, lr=3e-3)
    return GaitLSTMConfig(**{**base, **kw})


def test_gait_lstm_learns_and_is_deterministic(fold, tmp_path):
    train, test = fold
    log: list = []
    progress: list = []
    ctx = _ctx(tmp_path, seed=3, log=log)
    ctx.progress = lambda f, m="": progress.append(f)
    model = GaitLSTM(_small_lstm(), _spec(train))
    assert model.modality == "skeleton"
    model.fit(train, ctx)
    losses = [m["loss"] for _, m in log]
    assert [e for e, _ in log] == list(range(6)) and losses[-1] < losses[0]
    assert progress and progress[-1] == pytest.approx(1.0)
    emb = model.embed(test)
    assert emb.dtype == np.float32 and emb.shape == (len(test), 16)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(reload_saved(model, tmp_path).embed(test), emb)

    again = GaitLSTM(_small_lstm(), _spec(train))
    again.fit(train, _ctx(tmp_path, seed=3))
    assert np.array_equal(again.embed(test), emb)
    other = GaitLSTM(_small_lstm(), _spec(train))
    other.fit(train, _ctx(tmp_path, seed=4))
    assert not np.array_equal(other.embed(test), emb)


def test_gait_lstm_parameter_count_excludes_classifier(fold):
    train, _ = fold
    cfg = _small_lstm(layers=2)
    model = GaitLSTM(cfg, _spec(train))
    total = sum(p.numel() for p in model.net.parameters())
    clf = sum(p.numel() for p in model.net.classifier.parameters())
    assert model.num_parameters() == total - clf > 0
    h, d_in = 32, 60
    lstm = 4 * h * (d_in + h + 2) + 4 * h * (h + h + 2)
    assert model.num_parameters() == lstm + h * 16 + 16


def test_gait_lstm_default_config_builds_from_example_spec():
    model = GaitLSTM(GaitLSTMConfig(), GaitLSTM.example_spec())
    assert model.num_parameters() > 0
