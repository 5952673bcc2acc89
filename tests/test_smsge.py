"""SM-SGE plugin: graphs, relations, shapes, training, determinism, ablation switches, end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_bench.api import DataSpec, SampleSet, TrialContext
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25

REPO = Path(__file__).resolve().parent.parent


import reid_bench_smsge.graphs as G  # noqa: E402
import reid_bench_smsge.model as M  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks on a shared 2-core machine: extra OpenMP threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
# The harness recipe (pool "last", per-batch subsequences, shuffled batches) unless a test says otherwise.
TINY = dict(d_t=4, heads=2, hidden=16, epochs=2, batch_size=8, recipe="harness")


def tiny_cfg(**kw) -> "M.SMSGEConfig":
    return M.SMSGEConfig(**{**TINY, **kw})


def windows(n=16, f=6, layout=KINECT_V1_20, seed=0, classes=4) -> SampleSet:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.3, (classes, 1, layout.num_joints, 3)).astype(np.float32)
    labels = np.arange(n) % classes
    drift = np.linspace(0, 0.05, f, dtype=np.float32)[None, :, None, None]
    data = base[labels] + drift + rng.normal(0, 0.02, (n, f, layout.num_joints, 3)).astype(np.float32)
    return SampleSet("skeleton", data.astype(np.float32), labels, labels, np.zeros(n), np.arange(n), layout=layout)


def ctx(tmp_path=None, seed=0) -> TrialContext:
    return TrialContext(device="cpu", seed=seed, checkpoint_dir=tmp_path or Path("/nonexistent-smsge"))


def make(cfg, layout=KINECT_V1_20, f=6):
    return M.SMSGE(cfg, DataSpec("skeleton", num_classes=4, layout=layout, window=f))


# ------------------------------------------------------------------------------------ graphs


@pytest.mark.parametrize(
    "layout, counts",
    [(KINECT_V1_20, (39, 20, 10, 5)), (KINECT_V2_25, (49, 25, 10, 5)), (CASIA_14, (27, 14, 10, 5))],
)
def test_node_counts_per_scale(layout, counts):
    graphs = G.build_graphs(layout)
    assert tuple(graphs[s].num_nodes for s in G.SCALES) == counts
    for s in G.SCALES:
        g = graphs[s]
        assert g.pool.shape == (g.num_nodes, layout.num_joints)
        np.testing.assert_allclose(g.pool.sum(1), 1.0, rtol=1e-6)  # positions are means of joints
        assert (g.adjacency == g.adjacency.T).all() and not np.diag(g.adjacency).any()
        np.testing.assert_array_equal(g.mask, (g.adjacency > 0) | np.eye(g.num_nodes, dtype=bool))
        # every scale graph is connected
        reach = G.neighbourhood_mask(g.adjacency, g.num_nodes)
        assert reach.all()


def test_hyper_joint_and_group_adjacency_kinect_v1():
    graphs = G.build_graphs(KINECT_V1_20)
    h = graphs["hyper"]
    j = KINECT_V1_20.num_joints
    assert not h.adjacency[:j, :j].any() and not h.adjacency[j:, j:].any()  # joints link through midpoints
    assert (h.adjacency[j:].sum(1) == 2).all()
    a, b = KINECT_V1_20.edges[5]
    assert h.pool[j + 5, a] == h.pool[j + 5, b] == 0.5
    # parts: torso-legs, torso-head, head-arms, limb chains (the released p_pairs: 9 links); bodies: a star
    assert graphs["part"].adjacency.sum() / 2 == 9
    assert graphs["body"].adjacency.sum() / 2 == 4 and graphs["body"].adjacency[2].sum() == 4
    x = np.random.default_rng(0).normal(size=(j, 3)).astype(np.float32)
    np.testing.assert_allclose(graphs["part"].pool @ x, [x[list(p)].mean(0) for p in KINECT_V1_20.parts], rtol=1e-5)
    # two hops on the joint scale
    two = G.build_graphs(KINECT_V1_20, nhood=2)["joint"].mask
    assert two[0, 2] and not graphs["joint"].mask[0, 2]


# ------------------------------------------------------------------------------------ relations


def test_structural_relations_are_normalised_over_the_neighbourhood():
    graphs = G.build_graphs(KINECT_V1_20)
    for t1 in (1.0, 0.5):
        layer = M.StructuralRelations(M.SMSGEConfig(t1=t1), graphs["hyper"].mask)
        coefs, fts = layer.relations(torch.randn(3, 39, 8))
        assert coefs.shape == (3, 8, 39, 39) and fts.shape == (3, 8, 39, 8)
        torch.testing.assert_close(coefs.sum(-1), torch.ones(3, 8, 39))
        assert (coefs[:, :, ~layer.mask] == 0).all()
        assert layer(torch.randn(3, 39, 8)).shape == (3, 39, 8)


def test_collaborative_relations_rows_sum_to_one_and_temperature_sharpens():
    fine, coarse = torch.randn(2, 39, 8), torch.randn(2, 5, 8)
    rel, feat = M.collaborative_relations(fine, coarse, 1.0)
    assert rel.shape == (2, 39, 5) and feat.shape == (2, 39, 8)
    torch.testing.assert_close(rel.sum(-1), torch.ones(2, 39))
    sharp, _ = M.collaborative_relations(fine, coarse, 0.1)
    assert sharp.max(-1).values.mean() > rel.max(-1).values.mean()


# ------------------------------------------------------------------------------------ shapes


def test_shapes_through_every_stage():
    model = make(tiny_cfg())
    net = model.net
    x = torch.as_tensor(windows(5).data)
    pos = net.node_positions(x)
    assert {s: tuple(v.shape) for s, v in pos.items()} == {
        "hyper": (5, 6, 39, 3), "joint": (5, 6, 20, 3), "part": (5, 6, 10, 3), "body": (5, 6, 5, 3)}
    feats = net.frame_features(pos)
    assert {s: v.shape[-1] for s, v in feats.items()} == {"hyper": 39 * 4, "joint": 80, "part": 40, "body": 20}
    assert net.states(x).shape == (5, 6, 4 * 16)
    frames = [torch.tensor([1, 4]), torch.arange(6)]
    losses = net.losses(x, frames)
    assert set(losses) == set(G.SCALES) and all(v.ndim == 0 and v > 0 for v in losses.values())
    assert M.subsequence_lengths(model.cfg, 6) == [1, 2, 3, 4, 5]
    assert model.embed(windows(5)).shape == (5, 64)
    assert make(tiny_cfg(pool="concat")).embed(windows(3)).shape == (3, 6 * 64)
    assert make(tiny_cfg(pool="last")).embed(windows(3)).dtype == np.float32
    assert model.embed(windows(0)).shape == (0, 64)


# ------------------------------------------------------------------------------------ training


def test_loss_decreases_on_a_small_batch():
    torch.manual_seed(0)
    net = make(tiny_cfg()).net
    x = torch.as_tensor(windows(4).data)
    frames = M.sample_subsequences([2, 5], 6, 1, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    first = None
    for _ in range(15):
        loss = sum(net.losses(x, frames).values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.75 * first


def test_fit_is_deterministic_on_cpu_for_a_fixed_seed(tmp_path):
    train = windows(20)
    a, b, c = (make(tiny_cfg()) for _ in range(3))
    a.fit(train, ctx(tmp_path / "a", seed=3))
    b.fit(train, ctx(tmp_path / "b", seed=3))
    c.fit(train, ctx(tmp_path / "c", seed=4))
    assert a.history == b.history and len(a.history) == 2
    np.testing.assert_array_equal(a.embed(train), b.embed(train))
    assert not np.array_equal(a.embed(train), c.embed(train))


def test_view_normalisation_removes_the_walking_direction():
    data = windows(4).data
    ang = np.deg2rad(55.0)
    c, s = np.cos(ang), np.sin(ang)
    x, y, z = data[..., 0], data[..., 1], data[..., 2]
    turned = np.stack([c * x + s * z, y, -s * x + c * z], axis=-1).astype(np.float32)
    a, b = M.canonical_yaw(data, KINECT_V1_20), M.canonical_yaw(turned, KINECT_V1_20)
    np.testing.assert_allclose(a, b, atol=1e-5)
    side = (a[:, :, 16] - a[:, :, 12] + a[:, :, 8] - a[:, :, 4]).mean(1)
    np.testing.assert_allclose(side[:, 2], 0.0, atol=1e-5)
    assert (side[:, 0] > 0).all()
    plain, norm = make(tiny_cfg()), make(tiny_cfg(view_normalise=True))
    norm.net.load_state_dict(plain.net.state_dict())
    sset = windows(4)
    turned_set = dataclasses.replace(sset, data=turned)
    np.testing.assert_allclose(norm.embed(sset), norm.embed(turned_set), atol=1e-4)
    assert not np.allclose(plain.embed(sset), plain.embed(turned_set), atol=1e-4)


# ------------------------------------------------------------------------------------ ablations


def _heads(model):
    return sorted(model.net.heads.keys())


def _full_model_has_every_scale_and_cross_scale_head():
    full = make(tiny_cfg())
    assert full.net.scales == G.SCALES and len(full.net.heads) == 10 and len(full.net.mgrn.fuse) == 10


def _single_scale_keeps_the_joints():
    joint = make(tiny_cfg(multi_scale=False))
    assert joint.net.scales == ("joint",) and joint.embed(windows(2)).shape == (2, 16)


def _chosen_scales_in_canonical_order():
    sub = make(tiny_cfg(scales="body,joint"))
    assert sub.net.scales == ("joint", "body") and _heads(sub) == ["body__body", "joint__body", "joint__joint"]


def _no_cross_scale_keeps_the_self_heads():
    nocross = make(tiny_cfg(cross_scale=False))
    assert _heads(nocross) == sorted(f"{s}__{s}" for s in G.SCALES)


def _no_relations_is_the_per_scale_embedding():
    nostruct = make(tiny_cfg(structural=False, collaborative=False))
    nodes = {s: torch.randn(2, n, 3) for s, n in nostruct.net.sizes.items()}
    out = nostruct.net.mgrn(nodes)
    for s in G.SCALES:  # no relations at all: just the per-scale embedding W_h
        torch.testing.assert_close(out[s], nostruct.net.mgrn.embed[s](nodes[s]))
    assert len(nostruct.net.mgrn.structural) == 0 and len(nostruct.net.mgrn.fuse) == 0


def _collaborative_off_is_lambda_zero():
    """Collaborative off == lambda_C = 0 with the same weights."""
    torch.manual_seed(1)
    on = make(tiny_cfg(fusion_lambda=0.0))
    torch.manual_seed(1)
    off = make(tiny_cfg(collaborative=False))
    off.net.load_state_dict({k: v for k, v in on.net.state_dict().items() if ".fuse." not in k})
    x = torch.as_tensor(windows(2).data)
    torch.testing.assert_close(on.net.states(x), off.net.states(x))
    on.net.mgrn.cfg = dataclasses.replace(on.net.mgrn.cfg, fusion_lambda=1.0)
    assert not torch.allclose(on.net.states(x), off.net.states(x))


def _no_subsequences_is_the_whole_window():
    assert M.subsequence_lengths(make(tiny_cfg(subsequences=False)).cfg, 6) == [6]


def _released_lengths_are_every_prefix():
    assert M.subsequence_lengths(make(tiny_cfg(lengths="released")).cfg, 6) == [1, 2, 3, 4, 5, 6]


def _no_graph_encoder_feeds_raw_coordinates():
    raw = make(tiny_cfg(graph_encoder=False))
    assert raw.net.mgrn is None and raw.net.lstm["hyper"].input_size == 39 * 3


def _baseline_variant_is_one_joint_lstm():
    base = make(tiny_cfg(variant="baseline"))
    assert base.net.scales == ("joint",) and base.net.mgrn is None and _heads(base) == ["joint__joint"]
    assert base.net.lstm["joint"].input_size == 60 and M.subsequence_lengths(base.cfg, 6) == [6]


def _zero_pad_step_adds_a_step():
    pad = make(tiny_cfg(zero_pad_step=True))
    x = torch.as_tensor(windows(2).data)
    assert pad.net.states(x, True).shape[1] == 7 and pad.embed(windows(2)).shape == (2, 64)


def _normal_init_draws_heads_from_a_unit_normal():
    normal = make(M.SMSGEConfig(normal_init=True))
    w = normal.net.heads["hyper__hyper"][0].weight
    assert 0.9 < float(w.detach().std()) < 1.1
    assert not normal.net.mgrn.embed["joint"].bias.detach().any()  # the released b_h = 0


def _torch_embed_init_is_pytorch_default():
    torch_default = make(tiny_cfg(normal_init=False, embed_init="torch")).net.mgrn.embed["joint"]
    assert float(torch_default.weight.detach().abs().max()) <= 3 ** -0.5  # U(+-1/sqrt(3))


def _normal_embed_init_leaves_the_heads():
    released_wh = make(tiny_cfg(normal_init=False, embed_init="normal")).net
    wh = torch.cat([m.weight.detach().flatten() for m in released_wh.mgrn.embed.values()])
    assert 0.7 < float(wh.std()) < 1.3 and not released_wh.mgrn.embed["body"].bias.detach().any()
    head = released_wh.heads["hyper__hyper"][0].weight.detach()
    assert float(head.std()) < 0.2  # embed_init leaves the heads at PyTorch's default


def _unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scales"):
        make(tiny_cfg(scales="joint,limb"))


# One entry per switch or setting; each builds its own (tiny) models, so a failure names its switch.
ABLATION_CHECKS = {
    "full": _full_model_has_every_scale_and_cross_scale_head,
    "single-scale": _single_scale_keeps_the_joints,
    "scales-body-joint": _chosen_scales_in_canonical_order,
    "no-cross-scale": _no_cross_scale_keeps_the_self_heads,
    "no-relations": _no_relations_is_the_per_scale_embedding,
    "collaborative-off-is-lambda-0": _collaborative_off_is_lambda_zero,
    "no-subsequences": _no_subsequences_is_the_whole_window,
    "released-lengths": _released_lengths_are_every_prefix,
    "no-graph-encoder": _no_graph_encoder_feeds_raw_coordinates,
    "baseline": _baseline_variant_is_one_joint_lstm,
    "zero-pad-step": _zero_pad_step_adds_a_step,
    "normal-init": _normal_init_draws_heads_from_a_unit_normal,
    "embed-init-torch": _torch_embed_init_is_pytorch_default,
    "embed-init-normal": _normal_embed_init_leaves_the_heads,
    "unknown-scale": _unknown_scale_is_refused,
}


@pytest.mark.parametrize("check", list(ABLATION_CHECKS.values()), ids=list(ABLATION_CHECKS))
def test_ablation_switch_changes_what_it_should(check):
    check()


@pytest.mark.parametrize("variant", ["no-multiscale", "no-structural", "no-collaborative", "no-cross-scale",
                                     "no-subsequence"])
def test_ablation_variant_is_no_larger_than_the_full_model(variant):
    assert make(tiny_cfg(variant=variant)).num_parameters() <= make(tiny_cfg()).num_parameters()


def test_per_scale_adam_and_fixed_subsequences_train(tmp_path):
    train = windows(16)
    one, four, fixed = make(tiny_cfg()), make(tiny_cfg(per_scale_adam=True)), make(tiny_cfg(fixed_subsequences=True))
    for m in (one, four, fixed):
        m.fit(train, ctx(tmp_path, seed=0))
        assert np.isfinite(m.history).all()
    assert one.history[-1] != four.history[-1] and one.history[-1] != fixed.history[-1]


def test_default_ias_configuration_parameter_count():
    """Paper: 5.58M, which includes the 1024-1024-11 recognition MLP (1,060,875) and TF's single
    LSTM bias. Here: MGRN 3,648 + LSTMs 3,768,320 (8,192 of them PyTorch's second bias) + MSR
    heads 757,379 = 4,529,347; 4,529,347 - 8,192 + 64 (an unused TF fusion matrix) + 1,060,875
    = 5,582,094."""
    model = M.SMSGE(M.SMSGEConfig(), M.SMSGE.example_spec())
    net = model.net
    assert sum(p.numel() for p in net.mgrn.parameters()) == 3_648
    assert sum(p.numel() for p in net.lstm.parameters()) == 3_768_320
    assert sum(p.numel() for p in net.heads.parameters()) == 757_379
    assert model.num_parameters() == 4_529_347
    recognition_mlp = 1024 * 1024 + 1024 + 1024 * 11 + 11
    assert round((model.num_parameters() - 8_192 + 64 + recognition_mlp) / 1e6, 2) == 5.58


def test_protocol_overrides_follow_the_released_code():
    from reid_bench.config import Overrides
    from reid_bench.registry import Registry
    from reid_bench.trial import resolve_config

    reg = _registry(Registry())
    ias = resolve_config("smsge", "ias", Overrides(), reg).model
    assert (ias.lr, ias.batch_size, ias.epochs, ias.hidden) == (0.0025, 64, 120, 256)
    ks20 = resolve_config("smsge", "ks20", Overrides(), reg).model
    assert (ks20.lr, ks20.batch_size, ks20.epochs) == (0.0005, 64, 200)
    kgbd = resolve_config("smsge", "kgbd", Overrides(), reg).model
    assert (kgbd.lr, kgbd.batch_size, kgbd.hidden) == (0.0025, 256, 128)
    casia = resolve_config("smsge", "casia-b", Overrides(), reg).model
    assert (casia.lr, casia.batch_size) == (0.0005, 128)
    base = resolve_config("smsge", "synth-gait", Overrides(model={"variant": "baseline"}), reg).model
    assert base.variant == "baseline"
    # the ablation rows share synth-gait's recipe (chosen on synth-gait-dev): only the variant and
    # the switches it forces differ
    synth = resolve_config("smsge", "synth-gait", Overrides(), reg).model
    assert (synth.recipe, synth.epochs, synth.normal_init, synth.pool, synth.view_normalise) == (
        "harness", 6, True, "last", True)
    forced = {k: getattr(synth, k) for k in M.VARIANTS["baseline"]}
    assert dataclasses.replace(base, variant=synth.variant, **forced) == synth
    # settings chosen on the development twin must be the ones synth-gait runs
    assert resolve_config("smsge", "synth-gait-dev", Overrides(), reg).model == synth
    for name in M.SMSGE.protocol_overrides:
        assert name in reg.names("protocols"), name


def _registry(registry):
    from reid_bench.registry import PluginEntry

    registry._scan()
    registry._entries["models"]["smsge"] = PluginEntry("models", "smsge", "reid_bench_smsge.model:SMSGE", "reid-bench-smsge", "test")
    registry._loaded[("models", "smsge")] = M.SMSGE
    return registry


def test_smsge_runs_the_ias_protocol_end_to_end(tmp_path):
    from formats_kinect import write_ias_lab

    from reid_bench.registry import Registry
    from reid_bench.trial import TrialSpec, execute_trial

    registry = _registry(Registry())
    write_ias_lab(tmp_path / "data", persons=4, frames=12)
    sets = {k: str(v) for k, v in TINY.items()}
    spec = TrialSpec("smsge", "ias", "B", 0, overrides={"model": sets, "probe": {"epochs": "5"}},
                     data_root=str(tmp_path / "data"), device="cpu", work_dir=str(tmp_path / "work"),
                     cache_dir=str(tmp_path / "cache"))
    result = execute_trial(spec, registry=registry)
    assert 0.0 <= result["metrics"]["rank1"] <= 1.0 and "nAUC" in result["metrics"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    model = make(tiny_cfg())
    model.fit(windows(16), TrialContext(device="cuda", seed=0, checkpoint_dir=Path("/nonexistent-smsge")))
    assert model.embed(windows(4)).shape == (4, 64)


# ------------------------------------------------------------------------------------ the released recipe

# Values read from Kali-Hac/SM-SGE at e30b99401b385995c691c95369cb448ed9151d25 (file:line).
RELEASED = {
    "per_scale_adam": True,        # SM-SGE.py:872-879, one Adam per scale loss
    "normal_init": True,           # SM-SGE.py:314-318, 639-650: tf.random_normal weights, zero biases
    "embed_init": "normal",        # SM-SGE.py:314-318: W_h [3, 8] ~ N(0, 1)
    "lengths": "released",         # SM-SGE.py:125, 463-471: subsequence lengths 1..f
    "fixed_subsequences": True,    # SM-SGE.py:463-471: drawn once while building the graph
    "zero_pad_step": True,         # SM-SGE.py:513-531: prefixes 1..f+1 (the last reads past the window)
    "pool": "concat",              # SM-SGE.py:885-906: the prefixes' outputs feed the classifier
    "balanced_batches": True,      # utils/process_i.py:75, 500-535: class_samp_gen, used unshuffled
    "part_graph": "released",      # utils/process_i.py:183-186
    "probe": "released",
}
RELEASED_PER_DATASET = {  # SM-SGE.py:94-123 (IAS always takes the split-B branch: batch 64)
    "ias": {"lr": 0.0025, "batch_size": 64, "epochs": 120, "hidden": 256},
    "kgbd": {"lr": 0.0025, "batch_size": 256, "epochs": 160, "hidden": 128},
    "ks20": {"lr": 0.0005, "batch_size": 64, "epochs": 200, "hidden": 256},
    "casia-b": {"lr": 0.0005, "batch_size": 128, "epochs": 160, "hidden": 256},
}
RELEASED_PROBE = {  # SM-SGE.py:1058-1137: 4 D_h hidden, N(0, 1), Adam 0.0025 (CASIA-B 0.0005), no decay
    "ias": {"hidden": 1024, "lr": 0.0025, "batch_size": 64},
    "kgbd": {"hidden": 512, "lr": 0.0025, "batch_size": 256},
    "ks20": {"hidden": 1024, "lr": 0.0025, "batch_size": 64},
    "casia-b": {"hidden": 1024, "lr": 0.0005, "batch_size": 128},
}


@pytest.mark.parametrize("protocol", sorted(RELEASED_PER_DATASET))
def test_released_recipe_is_the_default_on_the_papers_protocols(protocol):
    from reid_bench.config import Overrides
    from reid_bench.registry import Registry
    from reid_bench.trial import resolve_config

    reg = _registry(Registry())
    resolved = resolve_config("smsge", protocol, Overrides(), reg)
    model, probe = dataclasses.asdict(resolved.model), dataclasses.asdict(resolved.probe)
    assert {k: model[k] for k in RELEASED} == RELEASED and model["recipe"] == "released"
    assert {k: model[k] for k in RELEASED_PER_DATASET[protocol]} == RELEASED_PER_DATASET[protocol]
    f = reg.protocol(protocol).window
    assert {k: probe[k] for k in RELEASED_PROBE[protocol]} == RELEASED_PROBE[protocol]
    assert (probe["init"], probe["weight_decay"], probe["standardize"], probe["chunks"], probe["balanced"],
            probe["shuffle"], probe["scores"]) == ("normal", 0.0, False, f + 1, True, False, "logits")
    harness = resolve_config("smsge", protocol, Overrides(model={"recipe": "harness"}), reg)
    flipped = dataclasses.asdict(harness.model)
    assert all(flipped[k] == M.RECIPES["harness"][k] for k in RELEASED)  # one switch selects the other set
    assert dataclasses.asdict(harness.probe) == dataclasses.asdict(type(harness.probe)())
    kept = resolve_config("smsge", protocol, Overrides(model={"recipe": "harness", "pool": "mean"}), reg)
    assert kept.model.pool == "mean"  # an explicit value outlives the recipe


def test_class_balanced_order_follows_class_samp_gen():
    from reid_bench.samples import class_balanced_order

    labels = np.array([1, 0, 0, 1, 1, 0, 2, 2, 1, 0, 0])  # class 0: 1, 2, 5, 9, 10; 1: 0, 3, 4, 8; 2: 6, 7
    order = class_balanced_order(labels, batch_size=6, rng=np.random.default_rng(0))
    # 2 * (11 // 6) = 2 groups of 6 // 3 = 2 windows per class, classes in sorted order
    assert order[:6].tolist() == [1, 2, 0, 3, 6, 7]
    assert order[6:8].tolist() == [5, 9] and order[8:10].tolist() == [4, 8]
    assert len(order) == 12 and set(order[10:12].tolist()) <= {6, 7}  # class 2 is used up: drawn again
    np.testing.assert_array_equal(order, class_balanced_order(labels, 6, np.random.default_rng(0)))


def test_released_probe_sums_the_prefix_logits(tmp_path):
    from reid_bench.probe import ProbeConfig, train_probe_and_score

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 4))
    y = np.repeat(np.arange(3), 20)
    x = np.concatenate([centres[y] + 0.1 * rng.normal(0, 1, (60, 4)) for _ in range(3)], axis=1)  # 3 chunks
    cfg = ProbeConfig(hidden=8, epochs=30, lr=0.01, weight_decay=0.0, standardize=False, init="normal", chunks=3,
                      balanced=True, shuffle=False, scores="logits", batch_size=6)
    scores = train_probe_and_score(x, y, x, cfg, seed=0)
    assert scores.shape == (60, 3) and (scores.argmax(1) == y).mean() > 0.9
    assert not np.allclose(np.exp(scores).sum(1), 1.0)  # raw logits, not probabilities
    with pytest.raises(ValueError, match="does not divide"):
        train_probe_and_score(x[:, :11], y, x[:, :11], cfg, seed=0)


def test_structural_relations_equal_the_masked_dense_softmax_bit_for_bit():
    """Scoring only the mask's pairs must give the release's masked n x n softmax exactly."""
    torch.manual_seed(0)
    for name, graph in G.build_graphs(KINECT_V1_20, part_graph="released").items():
        layer = M.StructuralRelations(M.SMSGEConfig(t1=0.5), graph.mask)
        h = torch.randn(7, graph.num_nodes, 8)
        fts = torch.einsum("bnd,pde->bpne", h, layer.w)
        s1 = torch.einsum("bpne,pe->bpn", fts, layer.a1) + layer.b1[:, None]
        s2 = torch.einsum("bpne,pe->bpn", fts, layer.a2) + layer.b2[:, None]
        logits = torch.nn.functional.leaky_relu(s1[..., :, None] + s2[..., None, :], 0.2) / 0.5
        expected = torch.softmax(logits.masked_fill(~layer.mask, float("-inf")), dim=-1)
        coefs, _ = layer.relations(h)
        assert torch.equal(coefs, expected), name


def test_structural_relation_weights_are_glorot_per_head():
    layer = M.StructuralRelations(M.SMSGEConfig(), G.build_graphs(KINECT_V1_20)["joint"].mask)
    w, a = layer.w.detach(), layer.a1.detach()
    assert float(w.abs().max()) <= (6 / 16) ** 0.5 and float(w.abs().max()) > 0.5  # not (6/128)**0.5 = 0.22
    assert float(a.abs().max()) <= (6 / 9) ** 0.5 and float(a.abs().max()) > 0.5


def test_casia_part_graph_links_the_head_to_the_arms_in_the_release():
    released = G.build_graphs(CASIA_14, part_graph="released")["part"].adjacency
    bones = G.build_graphs(CASIA_14, part_graph="bones")["part"].adjacency
    head, torso, upper_arms = 5, 4, (6, 8)
    assert all(released[head, a] == 1 and released[torso, a] == 0 for a in upper_arms)
    assert all(bones[torso, a] == 1 and bones[head, a] == 0 for a in upper_arms)
    for layout in (KINECT_V1_20, KINECT_V2_25):  # on the Kinect layouts the two graphs are the same
        np.testing.assert_array_equal(G.build_graphs(layout, part_graph="released")["part"].adjacency,
                                      G.build_graphs(layout, part_graph="bones")["part"].adjacency)


def test_table4_rows_are_cumulative():
    switches = ("scales", "graph_encoder", "structural", "collaborative", "cross_scale", "subsequences")
    rows = {name: {k: getattr(M.effective_config(tiny_cfg(variant=name)), k) for k in switches}
            for name in M.TABLE4_ROWS}
    assert M.TABLE4_ROWS[0] == "baseline" and M.TABLE4_ROWS[-1] == "full"
    assert rows["baseline"] == {"scales": "joint", "graph_encoder": False, "structural": False,
                                "collaborative": False, "cross_scale": False, "subsequences": False}
    assert rows["sr"] == dict(rows["baseline"], graph_encoder=True, structural=True)
    assert rows["mg-sr"] == dict(rows["sr"], scales="hyper,joint,part,body")
    assert rows["mg-sr-csi"] == dict(rows["mg-sr"], cross_scale=True)
    assert rows["mg-sr-csi-ssr"] == dict(rows["mg-sr-csi"], subsequences=True)
    assert rows["mg-sr-cr"] == dict(rows["mg-sr"], collaborative=True)
    assert rows["mg-sr-cr-csi"] == dict(rows["mg-sr-cr"], cross_scale=True)
    assert rows["full"] == dict(rows["mg-sr-cr-csi"], subsequences=True)


def test_released_recipe_trains_on_the_balanced_set_in_order(tmp_path):
    model = make(tiny_cfg(recipe="released"))
    assert model.cfg.balanced_batches and model.cfg.pool == "concat" and model.cfg.zero_pad_step
    train = windows(16)
    model.fit(train, ctx(tmp_path, seed=0))
    assert np.isfinite(model.history).all()
    assert model.embed(windows(2)).shape == (2, 7 * 4 * 16)  # f + 1 prefixes of 4 scales


# Measured at commit 115572b (before any speed-up of the training step): the mean MSR loss of
# the first two epochs on fixed synthetic windows, seed 0, one thread. A faster training step
# must reproduce them (issue 17's target); a change that alters the recipe changes them on purpose
# and says so. The tolerance grows with the epoch because CPUs' kernels round differently and the
# recipe amplifies that about tenfold an epoch: the pins come from an Intel AVX-512 machine, which
# an AMD Zen 4 one matched to 1.2e-6 over these two epochs but 1.5e-4 at the third; oneDNN held to
# AVX2, MKL's compatible branch or ATen without SIMD moved them by up to 1.7e-5 and 4.4e-4.
PINNED_LOSSES = {"harness": [66.701616, 35.688944], "released": [69.491438, 27.173679]}
EPOCH_RTOL = [1e-4, 1e-3]


@pytest.mark.parametrize("recipe", sorted(PINNED_LOSSES))
def test_the_ias_training_loss_at_a_fixed_seed_is_pinned(recipe):
    from reid_bench.config import Overrides
    from reid_bench.trial import resolve_config

    rng = np.random.default_rng(0)
    n = 192
    labels = np.arange(n) % 11
    centres = rng.normal(0, 0.3, (11, 1, 20, 3))
    data = (centres[labels] + rng.normal(0, 0.05, (n, 6, 20, 3))).astype(np.float32)
    train = SampleSet("skeleton", data, labels, labels, np.zeros(n), np.arange(n) // 8, layout=KINECT_V1_20)
    cfg = resolve_config("smsge", "ias", Overrides(model={"recipe": recipe})).model
    cfg = dataclasses.replace(cfg, epochs=2)
    model = M.SMSGE(cfg, DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6))
    model.fit(train, TrialContext(device="cpu", seed=0, checkpoint_dir=None))
    assert len(model.history) == 2
    for epoch, (got, pinned, rtol) in enumerate(zip(model.history, PINNED_LOSSES[recipe], EPOCH_RTOL), 1):
        assert got == pytest.approx(pinned, rel=rtol), f"epoch {epoch}: {got} against {pinned}"
