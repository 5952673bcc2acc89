"""Hi-MPC (plugin folder ``plugins/prototypes``) on small inputs.

The level reductions are checked against the release's joint lists (Kali-Hac/Hi-MPC
``utils/process.py`` lines 365-446, commit 20b2c74), the meta-prototype loss and hard skeleton
mining against plain per-frame loops over the formulas (``Hi-MPC.py`` lines 296-459), the
parameter count against the release's variables, and the model runs through the trial code on
the real formats' fixtures and a synthetic protocol.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import trial_context
from reid_bench.api import DataSpec, SampleSet
from reid_bench.layouts import KINECT_V1_20, KINECT_V2_25
from reid_bench_prototypes.hi_mpc import (LEVELS, HiMPC, HiMPCConfig, hi_mpc_loss, meta_prototype_losses,
                                          mining_weights)

# process.py 377-387 (J = 20) and 366-376 (J = 25): components, in the release's order
RELEASED_COMPONENTS = {
    20: [[12, 13], [14, 15], [16, 17], [18, 19], [0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]],
    25: [[12, 13], [14, 15], [16, 17], [18, 19], [0, 1], [2, 3, 20], [4, 5], [6, 7, 21, 22], [8, 9], [10, 11, 23, 24]],
}
# process.py 426-431 and 420-425: limbs (left leg, right leg, torso, left arm, right arm)
RELEASED_LIMBS = {
    20: [[12, 13, 14, 15], [16, 17, 18, 19], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]],
    25: [[12, 13, 14, 15], [16, 17, 18, 19], [0, 1, 2, 3, 20], [4, 5, 6, 7, 21, 22], [8, 9, 10, 11, 23, 24]],
}


def _spec(layout=KINECT_V1_20, classes: int = 4) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=6)


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25])
def test_levels_are_the_released_component_and_limb_means(layout):
    j = layout.num_joints
    model = HiMPC(HiMPCConfig(hidden=8, heads=2), _spec(layout))
    x = np.random.default_rng(j).normal(size=(2, 3, j, 3)).astype(np.float32)
    levels = model._levels(x)
    centred = x - x[:, :, :1]  # process.py 25-28: joint 0 subtracted per frame
    np.testing.assert_allclose(levels["joint"].numpy(), centred.reshape(2, 3, -1), atol=1e-6)
    for name, groups in (("component", RELEASED_COMPONENTS[j]), ("limb", RELEASED_LIMBS[j])):
        want = np.stack([centred[:, :, g].mean(axis=2) for g in groups], axis=2).reshape(2, 3, -1)
        np.testing.assert_allclose(levels[name].numpy(), want, atol=1e-6)


def test_encoders_heads_and_msmr_on_a_tiny_input():
    model = HiMPC(HiMPCConfig(hidden=8, heads=3), _spec())
    frames = model.net.frames(model._levels(np.ones((2, 5, 20, 3), np.float32)))
    assert {lv: tuple(f.shape) for lv, f in frames.items()} == {lv: (2, 5, 8) for lv in LEVELS}
    assert all(tuple(model.net.heads[lv].shape) == (3, 8, 8) for lv in LEVELS)
    msmr = model.net.msmr(frames)
    # the head-averaged transformed window feature per level ([H] 391, 434-461), joined
    want = torch.cat([torch.stack([frames[lv].mean(1) @ w for w in model.net.heads[lv]]).mean(0) for lv in LEVELS], 1)
    torch.testing.assert_close(msmr, want, atol=1e-5, rtol=1e-5)
    x = np.random.default_rng(0).normal(size=(3, 6, 20, 3)).astype(np.float32)
    samples = SampleSet("skeleton", x, np.zeros(3), np.zeros(3), np.zeros(3), np.arange(3), layout=KINECT_V1_20)
    assert model.embed(samples).shape == (3, 24)
    model.config.embedding = "limb"
    assert model.embed(samples).shape == (3, 8)


def test_hard_skeleton_mining_by_hand():
    logits = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]],   # mean (1, 1/3): predicts 0, right
                           [[0.0, 1.0], [0.0, 3.0], [1.0, 0.0]]])  # mean (1/3, 4/3): predicts 1, wrong
    labels = torch.tensor([0, 0])

    def softmax(v):
        e = np.exp(np.asarray(v, dtype=np.float64))
        return e / e.sum()

    # right prediction: the frames' scores for the predicted cluster negated; wrong: as they are
    hard = np.stack([softmax([-2.0, -1.0, 0.0]), softmax([1.0, 3.0, 0.0])])
    np.testing.assert_allclose(mining_weights(logits, labels, "hard").numpy(), hard, rtol=1e-6)
    easy = np.stack([softmax([2.0, 1.0, 0.0]), softmax([-1.0, -3.0, 0.0])])
    np.testing.assert_allclose(mining_weights(logits, labels, "easy").numpy(), easy, rtol=1e-6)
    np.testing.assert_array_equal(mining_weights(logits, labels, "off").numpy(), np.ones((2, 3)))
    # the hard frame of a well-fitted window (its lowest score) gets the largest weight
    assert int(mining_weights(logits, labels)[0].argmax()) == 2


def _loss_by_loops(x, protos, labels, heads, mining):
    """The release's per-head loss, one frame at a time ([H] 307-329, 340-373, 401-433)."""
    hidden = x.shape[-1]
    out = []
    for w in heads:
        c = protos @ w
        per_window = []
        for b in range(len(x)):
            seq = x[b].mean(0) @ w @ c.T / math.sqrt(hidden)
            pred = int(np.argmax(seq))
            frame_logits = [(x[b, t] @ w) @ c.T / math.sqrt(hidden) for t in range(x.shape[1])]
            score = np.array([fl[pred] for fl in frame_logits])
            sign = {"hard": -1.0 if pred == labels[b] else 1.0, "easy": 1.0 if pred == labels[b] else -1.0}[mining]
            weight = np.exp(sign * score) / np.exp(sign * score).sum()
            ce = [-(fl[labels[b]] - np.log(np.exp(fl).sum())) for fl in frame_logits]
            per_window.append(float(np.dot(weight, ce)))
        out.append(np.mean(per_window))
    return np.array(out)


@pytest.mark.parametrize("mining", ["hard", "easy"])
def test_meta_prototype_loss_by_hand(mining):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 2))      # 3 windows, 4 frames, H = 2
    protos = rng.normal(size=(2, 2))    # K = 2 prototypes
    heads = rng.normal(size=(2, 2, 2))  # M = 2 heads
    labels = np.array([0, 1, 1])
    got = meta_prototype_losses(torch.tensor(x), torch.tensor(protos), torch.tensor(labels), torch.tensor(heads), mining)
    np.testing.assert_allclose(got.numpy(), _loss_by_loops(x, protos, labels, heads, mining), rtol=1e-9)


def test_levels_combine_as_released():
    per_level = {"joint": torch.tensor([1.0, 3.0]), "component": torch.tensor([2.0, 4.0]), "limb": torch.tensor([6.0, 0.0])}
    # [H] 447-448, 459: joint heads summed, the others averaged, the levels averaged
    assert float(hi_mpc_loss(per_level)) == pytest.approx((4.0 + 3.0 + 3.0) / 3)
    assert float(hi_mpc_loss(per_level, joint_heads_summed=False)) == pytest.approx((2.0 + 3.0 + 3.0) / 3)


def test_parameter_count_matches_the_release():
    # Hi-MPC.py 239-255: per level dense(3n, 256) + dense(256, 256) for n = J, 10, 5;
    # 296-305: 8 heads x 3 levels of 256 x 256, query and key one variable
    assert HiMPC(HiMPCConfig(), _spec()).num_parameters() == 1_797_888
    assert HiMPC(HiMPCConfig(), _spec(KINECT_V2_25)).num_parameters() == 1_801_728


def test_the_objective_falls_for_fixed_pseudo_labels(tiny_fold):
    """Gradients reach the encoders and the heads: Adam steps on one batch with its clusters and
    prototypes held fixed lower the Hi-MPC objective."""
    train, _ = tiny_fold
    model = HiMPC(HiMPCConfig(hidden=32, heads=2), _spec())
    inputs = model._levels(train.data[:32])
    labels = torch.as_tensor(np.asarray(train.labels[:32]), dtype=torch.int64)
    with torch.no_grad():
        frames = model.net.frames(inputs)
        protos = {lv: torch.stack([frames[lv][labels == c].mean((0, 1)) for c in range(int(labels.max()) + 1)])
                  for lv in LEVELS}
    opt = torch.optim.Adam(model.net.parameters(), lr=3e-3)

    def objective() -> torch.Tensor:
        f = model.net.frames(inputs)
        return hi_mpc_loss({lv: meta_prototype_losses(f[lv], protos[lv], labels, model.net.heads[lv]) for lv in LEVELS})

    first = float(objective().detach())
    for _ in range(30):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < 0.7 * first
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.net.parameters())


def test_fit_reports_clusters_and_is_seeded(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(epochs=3, batch_size=16, lr=1e-3, eps=0.6, hidden=64, heads=2)
    log: list = []
    model = HiMPC(HiMPCConfig(**settings), _spec())
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1, 2]
    assert all(min(m[f"clusters_{lv}"] for lv in LEVELS) >= 1 and 0 < m["kept"] <= 1 and np.isfinite(m["loss"])
               for _, m in log)
    emb = model.embed(test)
    assert emb.shape == (len(test), 192) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = HiMPC(HiMPCConfig(**settings), _spec())
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "A-B"), ("ks20-retrieval", "all"),
                                           ("synth-gait-retrieval", "A-B"), ("ias", "A")])
def test_hi_mpc_runs_retrieval_and_closed_set_protocols(protocol, fold, tmp_path_factory, tmp_path):
    """Retrieval ranks the embedding; closed-set trains the harness probe on top of it."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "hi-mpc-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=32)
    overrides = {"model": {"epochs": "2", "batch_size": "16", "eps": "0.6", "hidden": "32", "heads": "2"}}
    if protocol.startswith("synth"):
        overrides["data"] = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("hi-mpc", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    result = execute_trial(spec)
    metrics = result["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")
