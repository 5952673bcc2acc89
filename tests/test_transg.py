"""TranSG (plugin folder ``plugins/prototypes``) on small inputs.

The joint graphs are checked against the release's adjacency lists (Kali-Hac/TranSG
``utils/process_SG.py`` lines 239-244, 306-320, commit 7176262) and the positional encoding
against its eigen-decomposition (lines 105-115, 324-333); one attention layer against a per-head
loop; the two graph prototype contrastive losses and both prompted reconstructions against
their formulas computed by hand; the parameter count against the release's variables
(``TranSG.py`` 256-340); and the model runs through the trial code on the real formats' fixtures
and a synthetic protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import reload_saved, trial_context
from reid_bench.api import DataSpec
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25
from reid_bench_prototypes.transg import (FullRelationAttention, TranSG, TranSGConfig, adjacency, gpc_sequence_loss,
                                          gpc_skeleton_loss, graph_representations, laplacian_positional_encoding,
                                          random_keep, structure_prompted_loss, trajectory_prompted_loss,
                                          transg_objective)

# process_SG.py 239-244 (25 joints), 306-309 (14), 315-320 (20): the release's joint pairs
RELEASED_PAIRS = {
    20: ([3, 2, 2, 8, 8, 9, 10, 9, 11, 10, 4, 2, 4, 5, 5, 6, 6, 7, 1, 2, 1, 0, 16, 0, 12, 0, 16, 17, 12, 13, 17, 18,
          19, 18, 13, 14, 14, 15],
         [2, 3, 8, 2, 9, 8, 9, 10, 10, 11, 2, 4, 5, 4, 6, 5, 7, 6, 2, 1, 0, 1, 0, 16, 0, 12, 17, 16, 13, 12, 18, 17,
          18, 19, 14, 13, 15, 14]),
    25: ([3, 2, 20, 8, 8, 9, 10, 9, 11, 10, 4, 20, 4, 5, 5, 6, 6, 7, 1, 20, 1, 0, 16, 0, 12, 0, 16, 17, 12, 13, 17,
          18, 19, 18, 13, 14, 14, 15, 2, 20, 11, 23, 10, 24, 7, 21, 6, 22],
         [2, 3, 8, 20, 9, 8, 9, 10, 10, 11, 20, 4, 5, 4, 6, 5, 7, 6, 20, 1, 0, 1, 0, 16, 0, 12, 17, 16, 13, 12, 18,
          17, 18, 19, 14, 13, 15, 14, 20, 2, 23, 11, 24, 10, 21, 7, 22, 6]),
    14: ([0, 1, 1, 2, 2, 3, 3, 4, 1, 5, 5, 6, 6, 7, 1, 8, 8, 9, 9, 10, 1, 11, 11, 12, 12, 13],
         [1, 0, 2, 1, 3, 2, 4, 3, 5, 1, 6, 5, 7, 6, 8, 1, 9, 8, 10, 9, 11, 1, 12, 11, 13, 12]),
}

TINY = dict(hidden=16, heads=2)


def _spec(layout=KINECT_V1_20, classes: int = 4, window: int = 6) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=window)


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25, CASIA_14])
def test_graph_and_laplacian_encoding_are_the_released_ones(layout):
    n = layout.num_joints
    rows, cols = RELEASED_PAIRS[n]
    released = np.zeros((n, n))
    released[rows, cols] = 1.0
    np.testing.assert_array_equal(adjacency(layout), released)
    # the release: I - D^-1/2 A D^-1/2, np.linalg.eig, ascending, columns 1..k
    deg = released.sum(1)
    lap = np.eye(n) - released / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]
    values = np.sort(np.real(np.linalg.eig(lap)[0]))
    pe = laplacian_positional_encoding(released, 10)
    assert pe.shape == (n, 10)
    np.testing.assert_allclose(pe.T @ pe, np.eye(10), atol=1e-5)  # orthonormal eigenvectors
    np.testing.assert_allclose(lap @ pe, pe * values[1:11][None, :], atol=1e-5)  # of eigenvalues 1..10
    np.testing.assert_allclose(np.sqrt(deg) @ pe, 0, atol=1e-4)  # the trivial one (eigenvalue 0) left out
    with pytest.raises(ValueError, match="enc_k"):
        laplacian_positional_encoding(released, n)


def test_attention_layer_is_the_per_head_formula_over_all_joints():
    torch.manual_seed(0)
    layer = FullRelationAttention(hidden=4, heads=2)
    with torch.no_grad():
        layer.query.mul_(0.3)  # keep some scores inside the clipping range
    h = torch.randn(2, 3, 5, 4)
    got = layer(h).detach().numpy()
    x = h.numpy()
    wq, wk, wv = (p.detach().numpy() for p in (layer.query, layer.key, layer.value))
    for b in range(2):
        for t in range(3):
            outs = []
            for m in range(2):
                q, k, v = x[b, t] @ wq[m], x[b, t] @ wk[m], x[b, t] @ wv[m]
                s = np.clip(q @ k.T / np.sqrt(2), -5, 5)
                a = np.exp(s - s.max(1, keepdims=True))
                outs.append((a / a.sum(1, keepdims=True)) @ v)
            np.testing.assert_allclose(got[b, t], np.concatenate(outs, axis=1), rtol=1e-4, atol=1e-5)
    # full relations: moving one joint changes every joint's output; frames stay apart
    moved = h.clone()
    moved[:, 0, 4] += 3.0
    after = layer(moved).detach().numpy()
    assert not np.allclose(after[:, 0, 0], got[:, 0, 0])
    np.testing.assert_allclose(after[:, 1:], got[:, 1:], atol=1e-6)


def test_graph_prototype_contrast_by_hand():
    # sequence level: cross-entropy of cos / t1
    seq = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    protos = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    t = 0.5
    c = 1 / np.sqrt(2)
    expected = -0.5 * ((1 / t - np.log(np.exp(1 / t) + np.exp(c / t))) + (c / t - np.log(1 + np.exp(c / t))))
    assert float(gpc_sequence_loss(seq, protos, torch.tensor([0, 1]), t)) == pytest.approx(expected, rel=1e-6)
    # skeleton level: raw products through the two maps, / t2, summed over frames, mean over windows
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one window, two frames
    w_q, w_k = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.eye(2)
    t2 = 2.0
    logits = np.array([[2.0 * 2, 2.0 * 1], [0.0, 1.0]]) / t2  # <f W_q, p>: frame x prototype
    ce = [np.log(np.exp(row).sum()) - row[1] for row in logits]  # label 1
    got = gpc_skeleton_loss(frames, protos, torch.tensor([1]), w_q, w_k, t2)
    assert float(got) == pytest.approx(sum(ce), rel=1e-6)


@torch.no_grad()
def test_prompted_reconstructions_by_hand_and_their_masks():
    rng = np.random.default_rng(0)
    for _ in range(5):
        keep = random_keep(20, 10, rng)
        assert keep.dtype == torch.bool and int(keep.sum()) == 10
        assert int(random_keep(6, 2, rng).sum()) == 4
    b, f, j, h = 2, 3, 4, 2
    nodes = torch.randn(b, f, j, h)
    target = torch.randn(b, f, j, 3)
    keep_joints = torch.tensor([True, False, True, False])
    keep_frames = torch.tensor([True, True, False])
    dec_s, dec_t = nn.Linear(h, 3 * j), nn.Linear(h, 3 * f)
    got_s = structure_prompted_loss(nodes, keep_joints, dec_s, target)
    got_t = trajectory_prompted_loss(nodes, keep_frames, dec_t, target)
    x, y = nodes.numpy(), target.numpy()
    ws, bs = dec_s.weight.detach().numpy(), dec_s.bias.detach().numpy()
    wt, bt = dec_t.weight.detach().numpy(), dec_t.bias.detach().numpy()
    pred_s = x[:, :, [0, 2]].mean(2) @ ws.T + bs  # [b, f, 3j], joint-major xyz
    assert float(got_s) == pytest.approx(np.abs(pred_s - y.reshape(b, f, -1)).mean() / b, rel=1e-5)
    pred_t = x[:, [0, 1]].mean(1) @ wt.T + bt  # [b, j, 3f], frame-major xyz per joint
    traj = y.transpose(0, 2, 1, 3).reshape(b, j, -1)
    assert float(got_t) == pytest.approx(np.abs(pred_t - traj).mean() / b, rel=1e-5)
    # the masked joints / frames do not prompt
    nodes_j = nodes.clone()
    nodes_j[:, :, 1] += 10.0
    assert float(structure_prompted_loss(nodes_j, keep_joints, dec_s, target)) == pytest.approx(float(got_s), rel=1e-6)
    nodes_f = nodes.clone()
    nodes_f[:, 2] += 10.0
    assert float(trajectory_prompted_loss(nodes_f, keep_frames, dec_t, target)) == pytest.approx(float(got_t), rel=1e-6)


def test_parameter_count_matches_the_release():
    # TranSG.py 258-308 (encoder): 3x128+128, 128x128+128, PE 10x128+128, 2 layers x 8 heads x
    # Q, K, V 128x16, 128x128+128, BN 2x128, 128x256+256, 256x128+128, BN 2x128 = 199,680;
    # 316-322 structure decoder 128x128+128 + 128x3J+3J; 365-371 trajectory decoder
    # 128x64+64 + 64x3f+3f; 334-340 the two 128x128 skeleton-level GPC maps.
    model = TranSG(TranSGConfig(), _spec())
    assert model.num_parameters() == 266_126
    assert sum(p.numel() for p in model.net.encoder.parameters()) == 199_680
    assert TranSG(TranSGConfig(), _spec(KINECT_V2_25)).num_parameters() == 266_126 + 128 * 15 + 15
    casia = TranSG(TranSGConfig(trajectory_masked=10), _spec(CASIA_14, window=40))
    assert casia.num_parameters() == 266_126 - 128 * 18 - 18 + 64 * 102 + 102


@pytest.mark.parametrize("running", [False, True], ids=["release-frozen", "running-stats"])
def test_batch_norm_running_statistics_move_only_when_switched_on(running):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 20, 3) * 3 + 1
    model = TranSG(TranSGConfig(bn_running_stats=running, **TINY), _spec())
    model.net.train()
    model.net.encoder(x, model.pos)
    bn = model.net.encoder.norm1
    assert (not torch.allclose(bn.running_mean, torch.zeros(16))) == running


def test_batch_norm_statistics_stay_put_as_in_the_release():
    """The release never runs the BN update ops: inference normalises with mean 0, variance 1."""
    torch.manual_seed(0)
    model = TranSG(TranSGConfig(**TINY), _spec())
    model.net.eval()
    bn = model.net.encoder.norm2
    z = torch.randn(5, 16)
    np.testing.assert_allclose(bn(z).detach().numpy(), (z / np.sqrt(1 + 1e-3)).numpy(), rtol=1e-5, atol=1e-6)


def test_settings_are_checked_and_overrides_name_real_protocols():
    from reid_bench.registry import get_registry

    with pytest.raises(ValueError, match="structure_masked=14"):
        TranSG(TranSGConfig(structure_masked=14), _spec(CASIA_14))
    with pytest.raises(ValueError, match="trajectory_masked=6"):
        TranSG(TranSGConfig(trajectory_masked=6), _spec())
    with pytest.raises(ValueError, match="multiple"):
        TranSG(TranSGConfig(hidden=10, heads=4), _spec())
    known = set(get_registry().names("protocols"))
    assert set(TranSG.protocol_overrides) | set(TranSG.budget_overrides) <= known
    assert set(TranSG.protocol_notes) <= set(TranSG.protocol_overrides) | set(TranSG.budget_overrides)


def test_the_objective_falls_with_fixed_prototypes_and_masks(tiny_fold):
    """Gradients reach the encoder, both decoders and the GPC maps: Adam steps on one batch,
    prototypes and masks held fixed as within a released epoch, lower the total objective."""
    train, _ = tiny_fold
    torch.manual_seed(0)
    cfg = TranSGConfig(dropout=0.0, **TINY)
    model = TranSG(cfg, _spec())
    x = model._inputs(train.data[:24])
    labels = torch.as_tensor(np.asarray(train.labels[:24]), dtype=torch.int64)
    with torch.no_grad():
        _, seq = graph_representations(model.net.encoder(x, model.pos))
    protos = torch.stack([seq[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    rng = np.random.default_rng(0)
    keep_j, keep_f = random_keep(20, 10, rng), random_keep(6, 2, rng)
    opt = torch.optim.Adam(model.net.parameters(), lr=3e-3)

    def objective() -> torch.Tensor:
        return transg_objective(model.net, x, model.pos, protos, labels, keep_j, keep_f, cfg)[0]

    model.net.train()
    first = objective()
    first.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.net.parameters())
    for _ in range(15):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < 0.8 * float(first.detach())


def test_fit_reports_per_epoch_and_is_seeded(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(epochs=2, batch_size=16, lr=1e-3, **TINY)
    log: list = []
    model = TranSG(TranSGConfig(**settings), _spec())
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1]
    assert all(set(m) == {"loss", "gpc", "stpr"} and all(np.isfinite(v) for v in m.values()) for _, m in log)
    emb = model.embed(test)
    assert emb.shape == (len(test), 16) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_array_equal(reload_saved(model, tmp_path).embed(test), emb)
    again = TranSG(TranSGConfig(**settings), _spec())
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)
    other = TranSG(TranSGConfig(**settings), _spec())
    other.fit(train, trial_context(tmp_path, seed=1))
    assert not np.array_equal(other.embed(test), emb)


def test_root_centring_subtracts_joint_zero():
    model = TranSG(TranSGConfig(**TINY), _spec())
    x = np.random.default_rng(0).normal(size=(2, 6, 20, 3)).astype(np.float32)
    centred = model._inputs(x).numpy()
    np.testing.assert_allclose(centred[:, :, 0], 0, atol=1e-6)
    np.testing.assert_allclose(centred[:, :, 3] - centred[:, :, 5], x[:, :, 3] - x[:, :, 5], atol=1e-5)
    with pytest.raises(ValueError, match="windows"):
        model._inputs(x[:, :, :19])


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "A-B"), ("ks20-retrieval", "all"),
                                           ("synth-gait-retrieval", "A-B"), ("ias", "A")])
def test_transg_runs_retrieval_and_closed_set_protocols(protocol, fold, tmp_path_factory, tmp_path):
    """Retrieval ranks the embedding; closed-set trains the harness probe on top of it."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "transg-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=20)
    overrides = {"model": {"epochs": "1", "batch_size": "32", "hidden": "16", "heads": "2"}}
    if protocol.startswith("synth"):
        overrides["data"] = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("transg", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    metrics = execute_trial(spec)["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")
