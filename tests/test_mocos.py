"""MoCos (plugin folder ``plugins/prototypes``) on small inputs.

The motifs are checked against rows of the release's hand-written matrices (Kali-Hac/MoCos
``MoCos.py`` lines 171-477, commit 64fe918; the whole matrices were compared entry by entry when
the rule in ``motif_matrices`` was written, and differ only where ``released_motif_gaps`` says);
one motif-guided layer against a per-head loop; the combinatorial representations and the two
CSP losses against their formulas computed by hand; the parameter count against the release's
variables (``MoCos.py`` 535-619); and the model runs through the trial code and the CLI.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY_GAIT, reload_saved, trial_context
from reid_bench.api import DataSpec
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25
from reid_bench_prototypes.mocos import (MoCos, MoCosConfig, MotifAttention, combinatorial_representations,
                                         csp_objective, head_masks, motif_matrices, random_keep,
                                         release_profiler_count, window_embedding)
from reid_bench_prototypes.transg import adjacency

TINY = dict(hidden=16, heads=8)  # 8 heads: every motif is in use, 2 dims each


def _spec(layout=KINECT_V1_20, classes: int = 4, window: int = 6) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=window)


def _row(mat: np.ndarray, i: int) -> list[int]:
    return np.flatnonzero(mat[i]).tolist()


# Rows of the release's matrices (for 25 and 14 joints the 2- and 3-hop ones start from a copy
# of the 1-hop one, [M] 190, 207, 383, 413): (layout, motif index 0-4, row, its columns, lines)
RELEASED_ROWS = [
    (KINECT_V1_20, 1, 2, [0, 1, 3, 4, 5, 8, 9], "279"),
    (KINECT_V1_20, 2, 0, [1, 2, 3, 12, 13, 14, 16, 17, 18], "299"),  # no 4, 8: the release's gap
    (KINECT_V1_20, 2, 4, [0, 1, 2, 3, 5, 6, 7, 8, 9], "303"),
    (KINECT_V2_25, 1, 20, [0, 1, 2, 3, 4, 5, 8, 9], "376, 405"),
    (KINECT_V2_25, 2, 20, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 16], "376, 435"),
    (CASIA_14, 1, 1, [0, 2, 3, 5, 6, 8, 9, 11, 12], "175-185, 192"),
    (CASIA_14, 2, 0, [1, 2, 3, 5, 6, 8, 9, 11, 12], "175, 191, 208"),
]
# The limb groups of the gait motifs: 20 joints [M] 321-353, 25 joints 442-477, 14 joints 224-251
RELEASED_LIMBS = {20: ([4, 5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18, 19]),
                  25: ([4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24], [12, 13, 14, 15, 16, 17, 18, 19]),
                  14: ([2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13])}


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25, CASIA_14])
def test_motifs_are_the_released_ones(layout):
    n = layout.num_joints
    mats = motif_matrices(layout)
    assert mats.shape == (5, n, n) and set(np.unique(mats)) <= {0.0, 1.0}
    assert not mats[:, np.arange(n), np.arange(n)].any()  # no self loops anywhere
    np.testing.assert_array_equal(mats[0], adjacency(layout))  # 1-hop: the release's bone graph
    assert (mats[0] <= mats[1]).all() and (mats[1] <= mats[2]).all()
    # the hop rule: 2-hop = (A + A^2 > 0) off the diagonal; 3-hop likewise with A^3
    a = adjacency(layout)
    reach = [(np.linalg.matrix_power(a + np.eye(n), k) > 0) & ~np.eye(n, dtype=bool) for k in (2, 3)]
    np.testing.assert_array_equal(mats[1], reach[0])
    gap = mats[2] != reach[1]
    assert gap.sum() == (2 if n == 20 else 0)
    for lay, m, i, cols, _lines in RELEASED_ROWS:
        if lay is layout:
            assert _row(mats[m], i) == cols
    arms, legs = RELEASED_LIMBS[n]
    limbs = sorted(arms + legs)
    for m, rows in ((3, arms), (4, legs)):
        for i in range(n):
            assert _row(mats[m], i) == ([j for j in limbs if j != i] if i in rows else [])
    assert not (mats[3] == mats[3].T).all()  # arm rows reach the legs, leg rows are empty there


def test_the_released_gap_is_a_switch_and_only_on_kinect_v1():
    plain = motif_matrices(KINECT_V1_20, released_gaps=False)
    kept = motif_matrices(KINECT_V1_20)
    assert np.argwhere(plain != kept).tolist() == [[2, 0, 4], [2, 0, 8]]
    assert kept[2, 4, 0] == 1 and kept[2, 8, 0] == 1  # the shoulders' rows do reach HipCenter ([M] 303, 307)
    np.testing.assert_array_equal(motif_matrices(KINECT_V2_25, released_gaps=False), motif_matrices(KINECT_V2_25))


def test_heads_1_to_5_carry_the_motifs():
    mats = motif_matrices(KINECT_V1_20)
    masks = head_masks(KINECT_V1_20, 8)
    assert masks.shape == (8, 20, 20)
    for head in (0, 6, 7):
        assert (masks[head] == 1).all()
    np.testing.assert_array_equal(masks[1:6], mats)
    few = head_masks(KINECT_V1_20, 3)
    assert (few[0] == 1).all() and np.array_equal(few[1:], mats[:2])
    assert (head_masks(KINECT_V1_20, 8, motifs=False) == 1).all()
    no_roles = dataclasses.replace(KINECT_V1_20, name="bare", roles=())
    with pytest.raises(ValueError, match="shoulder_left.*gait motifs"):
        motif_matrices(no_roles)


def test_motif_attention_is_the_per_head_formula():
    torch.manual_seed(0)
    layer = MotifAttention(hidden=4, heads=2)
    with torch.no_grad():
        layer.query.mul_(0.3)  # keep some scores inside the clipping range
    j = 5
    masks = torch.ones(2, j, j)
    masks[1] = torch.tensor(np.random.default_rng(0).integers(0, 2, size=(j, j)), dtype=torch.float32)
    masks[1, 3] = 0  # an empty motif row
    h = torch.randn(2, 3, j, 4)
    got = layer(h, masks).detach().numpy()
    x, mk = h.numpy(), masks.numpy()
    wq, wk, wv = (p.detach().numpy() for p in (layer.query, layer.key, layer.value))
    for b in range(2):
        for t in range(3):
            outs = []
            for m in range(2):
                q, k, v = x[b, t] @ wq[m], x[b, t] @ wk[m], x[b, t] @ wv[m]
                s = np.clip(q @ k.T * mk[m] / np.sqrt(2), -5, 5)  # scores times the motif, then scaled and clipped
                e = np.exp(s - s.max(1, keepdims=True))
                outs.append((e / e.sum(1, keepdims=True)) @ v)
            np.testing.assert_allclose(got[b, t], np.concatenate(outs, axis=1), rtol=1e-4, atol=1e-5)
            # the empty row attends to every joint alike
            np.testing.assert_allclose(got[b, t, 3, 2:], (x[b, t] @ wv[1]).mean(0), rtol=1e-4, atol=1e-5)


def test_combinatorial_representations_and_csp_by_hand():
    torch.manual_seed(1)
    b, f, j, h = 3, 4, 5, 6
    nodes = torch.randn(b, f, j, h)
    keep_j = torch.tensor([True, False, True, True, False])
    keep_f = torch.tensor([False, True, True, True])
    sub_s, sub_t = combinatorial_representations(nodes, keep_j, keep_f)
    x = nodes.numpy()
    want_s = x[:, :, [0, 2, 3]].mean(2)
    np.testing.assert_allclose(sub_s.numpy(), want_s, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sub_t.numpy(), want_s[:, [1, 2, 3]].mean(1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(window_embedding(nodes).numpy(), x.mean((1, 2)), rtol=1e-6, atol=1e-6)

    # the objective on a one-layer-free "encoder": nodes fed straight through
    cfg = MoCosConfig(hidden=h, fusion_lambda=0.3, t_tracklet=0.5, t_skeleton=2.0)
    net = torch.nn.Module()
    net.encoder = lambda xb, pos: xb  # noqa: E731 - the encoder's output is the input here
    net.skeleton_query = torch.nn.Parameter(torch.randn(h, h) * 0.3)
    net.skeleton_key = torch.nn.Parameter(torch.randn(h, h) * 0.3)
    protos = torch.randn(2, h)
    labels = torch.tensor([0, 1, 1])
    total, ssk, stra = (float(v.detach()) for v in csp_objective(net, nodes, None, protos, labels, keep_j, keep_f, cfg))

    def ce(logits, y):
        logits = logits - logits.max(-1, keepdims=True)
        return np.log(np.exp(logits).sum(-1)) - np.take_along_axis(logits, y[..., None], -1)[..., 0]

    p, y = protos.numpy(), labels.numpy()
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    want_str = ce(unit(sub_t.numpy()) @ unit(p).T / 0.5, y).mean()
    wq, wk = net.skeleton_query.detach().numpy(), net.skeleton_key.detach().numpy()
    logits = (want_s @ wq) @ (p @ wk).T / 2.0  # [b, f, C], every frame, not only the kept ones
    want_ssk = ce(logits, np.repeat(y[:, None], f, 1)).sum(1).mean()
    assert stra == pytest.approx(want_str, rel=1e-5)
    assert ssk == pytest.approx(want_ssk, rel=1e-5)
    assert total == pytest.approx(0.7 * want_ssk + 0.3 * want_str, rel=1e-5)


def test_random_masks_drop_with_the_given_chance_and_never_everything():
    rng = np.random.default_rng(0)
    assert bool(random_keep(6, 0.0, rng).all())
    kept = np.mean([float(random_keep(20, 0.25, rng).float().mean()) for _ in range(400)])
    assert kept == pytest.approx(0.75, abs=0.02)
    assert all(int(random_keep(2, 0.99, rng).sum()) >= 1 for _ in range(50))
    with pytest.raises(ValueError, match="drop probability"):
        random_keep(6, 1.0, rng)


# The release's variables (MoCos.py, default setting H 128, 8 heads, 2 layers, k 10):
# 537 dense 3x128+128 = 512; 539 dense 128x128+128 = 16,512; 544 PE dense 10x128+128 = 1,408;
# 549-556 per layer and head W_Q, W_K, W_V 128x16: 2 x 8 x 3 x 2,048 = 98,304; 593 dense
# 128x128+128 = 16,512; 596 BN gamma+beta 256; 598 dense 128x256+256 = 33,024; 600 dense
# 256x128+128 = 32,896; 602 BN 256: encoder 199,680. 607-611 the sub-skeleton CSP maps f_1,
# f_2 128x128: 32,768. Used in all: 232,448. Each of W_Q/W_K/W_V/f_1/f_2 is a tf.Variable
# whose initial value is another tf.Variable made by the W_head lambda (549, 554-556, 607,
# 610-611), a second trainable variable of the same shape that the loss never reaches:
# 98,304 + 32,768 = 131,072 more. The TF profiler of --model_size 1 (658-666) counts both:
# 232,448 + 131,072 = 363,520, the release's figure. No layer depends on J, f or C.
@pytest.mark.parametrize("layout, window", [(KINECT_V2_25, 6), (KINECT_V1_20, 6), (CASIA_14, 40)],
                         ids=["kinect-v2-25", "kinect-v1-20", "casia-14-window-40"])
def test_parameter_count_matches_the_release(layout, window):
    model = MoCos(MoCosConfig(), _spec(layout, window=window))
    assert model.num_parameters() == 232_448
    assert sum(p.numel() for p in model.net.encoder.parameters()) == 199_680
    net = model.net
    copies = sum(layer.query.numel() + layer.key.numel() + layer.value.numel() for layer in net.encoder.attention) \
        + net.skeleton_query.numel() + net.skeleton_key.numel()
    assert model.num_parameters() + copies == 363_520
    # the BN moving statistics and the motif masks are buffers, not trainable
    assert {name for name, _ in model.net.named_buffers()} >= {"encoder.masks", "encoder.norm1.running_mean"}


def test_the_release_profiler_counts_the_unused_copies_too():
    assert release_profiler_count(MoCosConfig()) == 363_520


def test_settings_are_checked_and_overrides_name_real_protocols():
    from reid_bench.config import ConfigError, Overrides, check_config
    from reid_bench.registry import get_registry
    from reid_bench.trial import resolve_config

    with pytest.raises(ValueError, match="multiple"):
        MoCos(MoCosConfig(hidden=10, heads=4), _spec())
    with pytest.raises(ValueError, match="enc_k=14"):
        MoCos(MoCosConfig(enc_k=14), _spec(CASIA_14))
    with pytest.raises(ValueError, match="windows"):
        MoCos(MoCosConfig(**TINY), _spec())._inputs(np.zeros((2, 6, 19, 3)))
    for field in ("prob_s", "prob_t", "dropout"):
        with pytest.raises(ConfigError, match=field):
            check_config(MoCosConfig(**{field: 1.0}), "model")
    registry = get_registry()
    known = set(registry.names("protocols"))
    assert set(MoCos.protocol_overrides) | set(MoCos.budget_overrides) <= known
    assert set(MoCos.protocol_notes) <= set(MoCos.protocol_overrides) | set(MoCos.budget_overrides)
    assert set(MoCos.fold_overrides) <= set(MoCos.protocol_overrides)
    for protocol, folds in MoCos.fold_overrides.items():
        assert set(folds) <= set(registry.protocol(protocol).folds)
    for name in list(MoCos.protocol_overrides) + list(MoCos.budget_overrides):
        check_config(dataclasses.replace(MoCosConfig(), **MoCos.protocol_overrides.get(name, {}),
                                         **MoCos.budget_overrides.get(name, {})), "model")
    # the release's per-probe settings reach the folds ([M] 94-112)
    ias = resolve_config("mocos", "ias-retrieval", Overrides())
    assert (ias.model.prob_s, ias.model.prob_t, ias.model.fusion_lambda, ias.model.rand_flip) == (0.5, 0.1, 0.75, False)
    assert (ias.per_fold["B-A"].prob_s, ias.per_fold["B-A"].prob_t) == (0.25, 0.25)
    biwi = resolve_config("mocos", "biwi", Overrides())
    assert biwi.model.fusion_lambda == 0.9 and biwi.per_fold["S"].fusion_lambda == 0.25
    assert resolve_config("mocos", "casia-b-cme", Overrides()).model.epochs == 100
    assert resolve_config("mocos", "synth-gait-retrieval", Overrides()).model.epochs == 30


def test_the_objective_falls_with_fixed_prototypes_and_masks(tiny_fold):
    """Gradients reach the encoder and both CSP maps: Adam steps on one batch, prototypes and
    masks held fixed as within a released epoch, lower the objective."""
    train, _ = tiny_fold
    torch.manual_seed(0)
    cfg = MoCosConfig(dropout=0.0, **TINY)
    model = MoCos(cfg, _spec())
    x = model._inputs(train.data[:24])
    labels = torch.as_tensor(np.asarray(train.labels[:24]), dtype=torch.int64)
    with torch.no_grad():
        seq = window_embedding(model.net.encoder(x, model.pos))
    protos = torch.stack([seq[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    rng = np.random.default_rng(0)
    keep_j, keep_f = random_keep(20, 0.5, rng), random_keep(6, 0.25, rng)
    opt = torch.optim.Adam(model.net.parameters(), lr=3e-3)

    def objective() -> torch.Tensor:
        return csp_objective(model.net, x, model.pos, protos, labels, keep_j, keep_f, cfg)[0]

    model.net.train()
    first = objective()
    first.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.net.parameters())
    for _ in range(15):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < 0.8 * float(first.detach())


def test_fit_reports_per_epoch_is_seeded_and_saves(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(epochs=2, batch_size=16, lr=1e-3, **TINY)
    log: list = []
    model = MoCos(MoCosConfig(**settings), _spec())
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1]
    assert all(set(m) == {"loss", "csp_skeleton", "csp_tracklet"} and all(np.isfinite(v) for v in m.values())
               for _, m in log)
    emb = model.embed(test)
    assert emb.shape == (len(test), 16) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_array_equal(reload_saved(model, tmp_path).embed(test), emb)
    again = MoCos(MoCosConfig(**settings), _spec())
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)
    other = MoCos(MoCosConfig(**settings), _spec())
    other.fit(train, trial_context(tmp_path, seed=1))
    assert not np.array_equal(other.embed(test), emb)
    # a model saved on one skeleton's motifs does not load into another's
    from reid_bench.checkpoints import CheckpointError

    with pytest.raises((CheckpointError, RuntimeError, ValueError)):
        MoCos(MoCosConfig(**settings), _spec(KINECT_V2_25)).load_model_state(model.model_state())


class _Stop(Exception):
    """Stands for the process dying right after a checkpoint."""


def test_a_fit_killed_after_a_checkpoint_continues_bit_for_bit(tiny_fold, tmp_path):
    from reid_bench.checkpoints import read_checkpoint, write_checkpoint

    train, test = tiny_fold
    cfg = MoCosConfig(epochs=3, batch_size=16, lr=1e-3, **TINY)
    whole = MoCos(cfg, _spec())
    whole.fit(train, trial_context(tmp_path, seed=2))
    saved = {}

    def die_after_first(model, epoch, total):
        saved["path"] = write_checkpoint(tmp_path / "ckpt-0", model.training_state(epoch), {"kind": "training"})
        raise _Stop

    ctx = trial_context(tmp_path, seed=2)
    ctx.epoch_done = die_after_first
    with pytest.raises(_Stop):
        MoCos(cfg, _spec()).fit(train, ctx)
    ctx = trial_context(tmp_path, seed=2)
    ctx.resume, _ = read_checkpoint(saved["path"])
    resumed = MoCos(cfg, _spec())
    resumed.fit(train, ctx)
    np.testing.assert_array_equal(resumed.embed(test), whole.embed(test))


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "B-A"), ("ks20-retrieval", "all"), ("ias", "A")])
def test_mocos_runs_on_the_real_formats(protocol, fold, tmp_path_factory, tmp_path):
    """The release's datasets' layouts (20 and 25 joints) through the trial code: retrieval ranks
    the embedding, closed-set trains the harness probe on it."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "mocos-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=20)
    overrides = {"model": {"epochs": "1", "batch_size": "32", "hidden": "16", "heads": "8"}}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("mocos", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    metrics = execute_trial(spec)["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")


def test_mocos_runs_end_to_end_through_the_cli(cli, tracking_uri):
    sets = ["epochs=1", "batch_size=32", "hidden=16", "heads=8"]
    args = [a for kv in sets for a in ("--set", kv)]
    result = cli("run", "--model", "mocos", "--protocol", "synth-gait-retrieval", *TINY_GAIT, *args, "--fold", "A-B",
                 "--no-ray", "--seeds", "1", "--device", "cpu", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert trial["status"] == "FINISHED"
    assert 0.0 <= trial["metrics"]["rank1"] <= 1.0 and 0.0 <= trial["metrics"]["mAP"] <= 1.0
