"""SPC-MGR (plugin folder ``plugins/prototypes``) on small inputs.

The level reductions and graphs are checked against the release's lists (Kali-Hac/SPC-MGR
``utils/process_L3.py`` lines 258-274, 339-460, commit e0ea7da); one attention head and the
cross-level relations against plain loops; the prototype contrastive loss against its formula
computed by hand; the parameter count against the release's variables; and the model runs
through the trial code on the real formats' fixtures and a synthetic protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import reload_saved, trial_context
from reid_bench.api import DataSpec
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25
from reid_bench_prototypes.spc_mgr import (SPCMGR, LevelAttention, SPCMGRConfig, level_groups, neighbour_mask,
                                           pooling_matrix, prototype_contrastive_loss, relation_context)

# process_L3.py 339-460: parts, bodies and hyper-body nodes of the release, per joint count
RELEASED_GROUPS = {
    20: {"part": ([12, 13], [14, 15], [16, 17], [18, 19], [0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]),
         "body": ([12, 13, 14, 15], [16, 17, 18, 19], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]),
         "hyper_body": (list(range(1, 12)), [0], list(range(12, 20)))},
    25: {"part": ([12, 13], [14, 15], [16, 17], [18, 19], [0, 1], [2, 3, 20], [4, 5], [6, 7, 21, 22], [8, 9],
                  [10, 11, 23, 24]),
         "body": ([12, 13, 14, 15], [16, 17, 18, 19], [0, 1, 2, 3, 20], [4, 5, 6, 7, 21, 22], [8, 9, 10, 11, 23, 24]),
         "hyper_body": ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24], [0], list(range(12, 20)))},
    14: {"part": ([11], [12, 13], [8], [9, 10], [1], [0], [5], [6, 7], [2], [3, 4]),
         "body": ([11, 12, 13], [8, 9, 10], [0, 1], [5, 6, 7], [2, 3, 4]),
         "hyper_body": (list(range(8)), [8, 11], [9, 10, 12, 13])},
}


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25, CASIA_14])
def test_levels_are_the_released_joint_groups(layout):
    groups = level_groups(layout)
    for level, expected in RELEASED_GROUPS[layout.num_joints].items():
        assert [sorted(g) for g in groups[level]] == [sorted(g) for g in expected], level
    # a node's position is the mean of its joints
    x = np.random.default_rng(0).normal(size=(layout.num_joints, 3)).astype(np.float32)
    pooled = pooling_matrix(groups["hyper_body"], layout.num_joints) @ x
    np.testing.assert_allclose(pooled[2], x[list(groups["hyper_body"][2])].mean(0), rtol=1e-5)


def test_graph_masks_are_the_released_adjacency_with_self_loops():
    # process_L3.py 259-274, then adj_to_bias with nhood 1 (688-699)
    released = {"part": ([5, 6, 5, 8, 6, 7, 8, 9, 5, 4, 4, 2, 4, 0, 2, 3, 1, 0],
                         [6, 5, 8, 5, 7, 6, 9, 8, 4, 5, 2, 4, 0, 4, 3, 2, 0, 1]),
                "body": ([2, 3, 2, 4, 2, 1, 2, 0], [3, 2, 4, 2, 1, 2, 0, 2]),
                "hyper_body": ([0, 1, 2, 1], [1, 0, 1, 2])}
    model = SPCMGR(SPCMGRConfig(), _spec())
    for level, (rows, cols) in released.items():
        n = max(rows) + 1
        expected = np.eye(n, dtype=bool)
        expected[rows, cols] = True
        np.testing.assert_array_equal(model.net.levels[level].mask.numpy(), expected)
    assert neighbour_mask(3, ((0, 1),))[0, 2] == np.False_


def test_one_attention_head_equals_the_gat_formula_and_sees_only_neighbours():
    torch.manual_seed(0)
    mask = neighbour_mask(4, ((0, 1), (1, 2), (2, 3)))
    layer = LevelAttention(mask, hidden=3, heads=1)
    with torch.no_grad():
        layer.score_src_bias.fill_(0.1)
        layer.out_bias.normal_()
    x = torch.randn(2, 4, 3)
    got = layer(x).detach().numpy()
    w_h, b_h = layer.embed_weight.detach().numpy(), layer.embed_bias.detach().numpy()
    w, a1, a2 = (t.detach().numpy()[0] for t in (layer.head_weight, layer.score_src, layer.score_dst))
    c1, c2 = (float(b.detach()[0]) for b in (layer.score_src_bias, layer.score_dst_bias))
    bias = layer.out_bias.detach().numpy()[0]
    for m in range(2):
        seq = (x[m].numpy() @ w_h + b_h) @ w
        for i in range(4):
            nbrs = [j for j in range(4) if mask[i, j]]
            e = np.array([seq[i] @ a1 + c1 + seq[j] @ a2 + c2 for j in nbrs])
            e = np.where(e > 0, e, 0.2 * e)
            alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            v = alpha @ seq[nbrs] + bias
            np.testing.assert_allclose(got[m, i], np.where(v > 0, v, np.expm1(v)), rtol=1e-4, atol=1e-5)
    # node 3 is no neighbour of node 0: moving it leaves node 0's output alone, node 2's not
    moved = x.clone()
    moved[:, 3] += 5.0
    after = layer(moved).detach().numpy()
    np.testing.assert_allclose(after[:, 0], got[:, 0], atol=1e-6)
    assert not np.allclose(after[:, 2], got[:, 2])


def test_the_short_softmax_is_torchs_softmax_with_its_gradient():
    from reid_bench.torchutil import softmax_last_dim

    torch.manual_seed(0)
    x = torch.randn(64, 8, 10, 10, dtype=torch.float64)
    mask = torch.rand(10, 10) < 0.5
    mask.fill_diagonal_(False)  # every row keeps one entry, as a node keeps itself
    x = x.masked_fill(mask, float("-inf")).requires_grad_()
    grad = torch.randn_like(x)
    ours, = torch.autograd.grad(softmax_last_dim(x), x, grad)
    theirs, = torch.autograd.grad(torch.softmax(x, -1), x, grad)
    torch.testing.assert_close(softmax_last_dim(x), torch.softmax(x, -1), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
    assert (softmax_last_dim(x)[..., mask] == 0).all()


def test_relation_context_by_hand():
    keys = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    queries = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]]])
    got = relation_context(keys, queries)[0].numpy()
    for q, expected_logits in zip(range(3), ([1.0, 2.0], [2.0, 0.0], [0.0, 0.0])):
        w = np.exp(expected_logits) / np.exp(expected_logits).sum()
        np.testing.assert_allclose(got[q], w @ keys[0].numpy(), rtol=1e-6)


def test_fusion_lambda_zero_is_structure_only_and_the_feature_is_144_d():
    spec = _spec()
    x = torch.randn(3, 6, 20, 3)
    torch.manual_seed(1)
    fused = SPCMGR(SPCMGRConfig(), spec).net
    torch.manual_seed(1)
    plain = SPCMGR(SPCMGRConfig(fusion_lambda=0.0), spec).net
    with torch.no_grad():
        a, b = fused(x), plain(x)
        frames = x.reshape(18, 20, 3)
        part = plain.levels["part"](plain.pool_part @ frames)
    assert a.shape == b.shape == (3, 144)
    assert not torch.allclose(a, b)
    # the part level's 10 nodes x 8 come first, averaged over the 6 frames
    np.testing.assert_allclose(b[:, :80].numpy(), part.reshape(3, 6, 80).mean(1).numpy(), rtol=1e-5, atol=1e-6)


def test_prototype_contrastive_loss_by_hand():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    protos = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    t = 0.5
    c = 1 / np.sqrt(2)
    cos = np.array([[1.0, c], [0.0, c], [c, 1.0]])
    labels = [0, 1, 1]
    expected = -np.mean([cos[i, y] / t - np.log(np.exp(cos[i] / t).sum()) for i, y in enumerate(labels)])
    got = prototype_contrastive_loss(feats, protos, torch.tensor(labels), t)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def _spec(layout=KINECT_V1_20, classes: int = 4) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=6)


# Per level ([R] 271-283, [L] 11-29): W_h 3x8 + b_h 8, and per head a 8x8 kernel, two 8x1
# score kernels with biases, an 8-bias: 32 + 8 x 90 = 752; three levels, plus six 8x8
# relation matrices ([R] 307-314): 2,640 for any joint count; 16 heads (KGBD): 4,800.
@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25, CASIA_14], ids=lambda layout: layout.name)
def test_parameter_count_matches_the_release_for_any_joint_count(layout):
    assert SPCMGR(SPCMGRConfig(), _spec(layout)).num_parameters() == 2_640


def test_parameter_count_with_16_heads_matches_the_release():
    assert SPCMGR(SPCMGRConfig(heads=16), _spec()).num_parameters() == 4_800
    assert SPCMGR.protocol_overrides["kgbd-retrieval"]["heads"] == 16


def test_protocol_overrides_name_real_protocols():
    from reid_bench.registry import get_registry

    known = set(get_registry().names("protocols"))
    assert set(SPCMGR.protocol_overrides) | set(SPCMGR.budget_overrides) <= known
    assert set(SPCMGR.protocol_notes) <= set(SPCMGR.protocol_overrides) | set(SPCMGR.budget_overrides)


def test_the_objective_falls_for_fixed_pseudo_labels(tiny_fold):
    """Gradients reach every level and the relation matrices: Adam steps on one batch, with its
    clusters and their prototypes held fixed as within a released epoch, lower the loss."""
    train, _ = tiny_fold
    torch.manual_seed(0)
    model = SPCMGR(SPCMGRConfig(), _spec())
    x = model._inputs(train.data[:24])
    labels = torch.as_tensor(np.asarray(train.labels[:24]), dtype=torch.int64)
    with torch.no_grad():
        f0 = model.net(x)
    protos = torch.stack([f0[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-2)

    def objective() -> torch.Tensor:
        return prototype_contrastive_loss(model.net(x), protos, labels, 0.08)

    first = objective()
    first.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.net.parameters())
    for _ in range(12):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < float(first.detach()) - 0.05


def test_fit_reports_clusters_and_is_seeded(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(epochs=2, batch_size=16, lr=1e-3, eps=0.6)
    log: list = []
    model = SPCMGR(SPCMGRConfig(**settings), _spec())
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1]
    assert all(m["clusters"] >= 1 and 0 < m["kept"] <= 1 and np.isfinite(m["loss"]) for _, m in log)
    # measured at ed2d906, before the faster softmax: a faster step must reproduce them to 1e-4
    np.testing.assert_allclose([m["loss"] for _, m in log], [0.60785188, 0.55740981], rtol=1e-4)
    assert [m["clusters"] for _, m in log] == [5, 4]
    emb = model.embed(test)
    assert emb.shape == (len(test), 144) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_array_equal(reload_saved(model, tmp_path).embed(test), emb)
    again = SPCMGR(SPCMGRConfig(**settings), _spec())
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)


def test_root_centring_subtracts_joint_zero():
    model = SPCMGR(SPCMGRConfig(), _spec())
    x = np.random.default_rng(0).normal(size=(2, 6, 20, 3)).astype(np.float32)
    centred = model._inputs(x).numpy()
    np.testing.assert_allclose(centred[:, :, 0], 0, atol=1e-6)
    np.testing.assert_allclose(centred[:, :, 3] - centred[:, :, 5], x[:, :, 3] - x[:, :, 5], atol=1e-5)
    with pytest.raises(ValueError, match="windows"):
        model._inputs(x[:, :, :19])


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "A-B"), ("ks20-retrieval", "all"),
                                           ("synth-gait-retrieval", "A-B"), ("ias", "A")])
def test_spc_mgr_runs_retrieval_and_closed_set_protocols(protocol, fold, tmp_path_factory, tmp_path):
    """Retrieval ranks the embedding; closed-set trains the harness probe on top of it."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "spc-mgr-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=20)
    overrides = {"model": {"epochs": "1", "batch_size": "32", "eps": "0.6"}}
    if protocol.startswith("synth"):
        overrides["data"] = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("spc-mgr", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    result = execute_trial(spec)
    metrics = result["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")
