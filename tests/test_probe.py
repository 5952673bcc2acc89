"""Tests for reid_bench.probe: the closed-set probe classifier on frozen features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reid_bench.metrics import closed_set_metrics
from reid_bench.probe import ProbeConfig, train_probe_and_score



@pytest.fixture
def one_thread():
    """A tiny MLP gains nothing from intra-op threads and suffers badly on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clusters(seed, n_cls=4, dim=16, n_train=40, n_test=20):
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((n_cls, dim))
    ytr = np.repeat(np.arange(n_cls), n_train)
    yte = np.repeat(np.arange(n_cls), n_test)
    xtr = centres[ytr] + rng.standard_normal((ytr.size, dim))
    xte = centres[yte] + rng.standard_normal((yte.size, dim))
    return xtr.astype(np.float32), ytr, xte.astype(np.float32), yte


def test_mlp_probe_learns_and_is_deterministic(one_thread):
    xtr, ytr, xte, yte = clusters(0)
    cfg = ProbeConfig(kind="mlp", hidden=32, epochs=15, batch_size=64, lr=1e-2, dropout=0.1)
    rng_state = torch.random.get_rng_state()
    a = train_probe_and_score(xtr, ytr, xte, cfg, seed=1)
    assert torch.equal(rng_state, torch.random.get_rng_state())  # global RNG untouched
    b = train_probe_and_score(xtr, ytr, xte, cfg, seed=1)
    assert a.shape == (len(yte), 4)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, b)
    assert (a.argmax(1) == yte).mean() >= 0.95


def test_knn_probe_learns():
    xtr, ytr, xte, yte = clusters(1)
    scores = train_probe_and_score(xtr, ytr, xte, ProbeConfig(kind="knn", k=3), seed=0)
    assert scores.shape == (len(yte), 4)
    assert (scores.argmax(1) == yte).mean() >= 0.95
    assert closed_set_metrics(scores, yte).rank1 >= 0.95


def test_knn_scores_are_mean_of_top_k_cosines():
    # class 0: directions (1,0) and (0,1); class 1: (-1,0). Test point (1,0).
    xtr = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    ytr = np.array([0, 0, 1])
    cfg = ProbeConfig(kind="knn", k=2, standardize=False)
    s = train_probe_and_score(xtr, ytr, np.array([[1.0, 0.0]]), cfg, seed=0)
    # class 0: mean(1, 0) = 0.5; class 1 has one sample: cos = -1
    np.testing.assert_allclose(s, [[0.5, -1.0]], atol=1e-6)


def test_unknown_probe_kind_raises():
    xtr, ytr, xte, _ = clusters(2)
    with pytest.raises(ValueError, match="unknown probe kind 'svm'"):
        train_probe_and_score(xtr, ytr, xte, ProbeConfig(kind="svm"), seed=0)


def test_probe_absent_class_gets_minus_inf_in_knn():
    xtr = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    s = train_probe_and_score(xtr, np.array([0, 2]), xtr, ProbeConfig(kind="knn"), seed=0)
    assert s.shape == (2, 3) and np.all(np.isneginf(s[:, 1]))
    assert not math.isnan(s.sum())
