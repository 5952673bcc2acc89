"""ST-GCN and CTR-GCN (plugin folder ``plugins/gcn``) on small inputs.

Parameter counts are checked against counts derived by hand from the releases' layer shapes
(yysijie/st-gcn ``net/st_gcn.py`` 35-67, 143-187 and ``net/utils/tgcn.py`` 48-55;
Uason-Chen/CTR-GCN ``model/ctrgcn.py`` 72-135, 150-164, 179-233, 252-266, 273-303); the graphs
against the releases' NTU RGB+D joint lists (st-gcn ``net/utils/graph.py`` 51-61, CTR-GCN
``graph/ntu_rgb_d.py`` 7-15); then shapes on the 20-, 25- and 14-joint layouts, a falling loss,
seeded and resumed fits, the settings' checks, and one run each through the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY_GAIT, reload_saved, trial_context
from reid_bench.api import DataSpec, Layout
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25
from reid_bench_gcn.ctrgcn import CTRGCN, CTRGCNConfig, CTRGCNNet
from reid_bench_gcn.graph import (centre_joint, ctrgcn_adjacency, geodesic_distances, inward_links,
                                  layout_stgcn_adjacency, stgcn_adjacency)
from reid_bench_gcn.stgcn import STGCN, STGCNConfig, STGCNNet
from reid_bench_gcn.topology import aggregate, strided_outer_sum_order
from reid_bench_gcn.training import learning_rate_factor, rotation_matrices

# graph.py 54-58 / ntu_rgb_d.py 9-12: NTU RGB+D's bones, 1-based, each pointing towards joint 21
NTU_INWARD_1BASED = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
                     (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23),
                     (23, 8), (24, 25), (25, 12)]
NTU_INWARD = [(i - 1, j - 1) for i, j in NTU_INWARD_1BASED]
NTU_CENTRE = 21 - 1  # graph.py 61

# ---- ST-GCN by hand (C = 3 inputs, V = 25 joints, K = 3 spatial subsets, 60 NTU classes) ----
# a block cin -> cout: gcn 1x1 conv cin x K*cout + K*cout bias (tgcn.py 48-55); tcn BN 2*cout,
# (9x1) conv 9*cout^2 + cout, BN 2*cout (st_gcn.py 159-171); a residual 1x1 conv + BN
# cin*cout + cout + 2*cout where width or stride changes (st_gcn.py 179-187); edge importance
# K*V*V = 1,875 per block (st_gcn.py 58-62).
#   block 1  3->64, no residual:       768 +  37,184                 =    37,952
#   blocks 2-4 64->64:              12,480 +  37,184                 =    49,664 x 3 =   148,992
#   block 5  64->128, stride 2:     24,960 + 148,096 +  8,576         =   181,632
#   blocks 6-7 128->128:            49,536 + 148,096                 =   197,632 x 2 =   395,264
#   block 8  128->256, stride 2:    99,072 + 591,104 + 33,536         =   723,712
#   blocks 9-10 256->256:          197,376 + 591,104                 =   788,480 x 2 = 1,576,960
#   blocks 3,064,512; edge importance 10 x 1,875 = 18,750; data BN 2 x 3*25 = 150 (st_gcn.py 42);
#   classifier 1x1 conv 256*60 + 60 = 15,420 (st_gcn.py 67).
STGCN_BLOCKS, STGCN_IMPORTANCE_25, STGCN_DATA_BN_25, STGCN_FC_60 = 3_064_512, 18_750, 150, 15_420
STGCN_NTU = STGCN_BLOCKS + STGCN_IMPORTANCE_25 + STGCN_DATA_BN_25 + STGCN_FC_60  # 3,098,832

# ---- CTR-GCN by hand (C = 3, V = 25, 3 subsets, M = 2 persons, 60 classes) ----
# CTRGC cin -> cout, R = 8 for cin = 3 else cin/8: conv1, conv2 cin*R + R; conv3 cin*cout + cout;
# conv4 R*cout + cout (ctrgcn.py 150-164). unit_gcn: 3 CTRGC, down 1x1 conv + BN where
# cin != cout, adjacency PA 3*V*V = 1,875, alpha 1, BN 2*cout (196-233). Temporal module on
# cout, b = cout/4: two branches 1x1 (cout*b + b) + BN 2b + (5x1) conv 5b^2 + b + BN 2b, one
# 1x1 + BN + max pool + BN 2b, one 1x1 + BN (72-124). Unit residual 1x1 conv + BN (179-193, 266).
#   l1  3->64, no residual:   gcn 3*896 + 384 + 1,876 + 128 = 5,076; tcn 6,976     =  12,052
#   l2-4 64->64:              gcn 3*5,776 + 1,876 + 128 = 19,332; tcn 6,976       =  26,308 x 3 =  78,924
#   l5  64->128, stride 2:    gcn 3*10,512 + 8,576 + 1,876 + 256 = 42,244;
#                             tcn 27,264; residual 8,576                          =  78,084
#   l6-7 128->128:            gcn 3*22,816 + 1,876 + 256 = 70,580; tcn 27,264    =  97,844 x 2 = 195,688
#   l8  128->256, stride 2:   gcn 3*41,504 + 33,536 + 1,876 + 512 = 160,436;
#                             tcn 107,776; residual 33,536                        = 301,748
#   l9-10 256->256:           gcn 3*90,688 + 1,876 + 512 = 274,452; tcn 107,776 = 382,228 x 2 = 764,456
#   units 1,430,952; data BN 2 x 2*3*25 = 300 (288); fc 256*60 + 60 = 15,420 (302).
CTRGCN_UNITS_25 = 1_430_952
CTRGCN_NTU = CTRGCN_UNITS_25 + 300 + 15_420  # 1,446,672: the paper's "1.46M" rounded up

TINY_STGCN = dict(base_channels=8)
TINY_CTRGCN = dict(base_channels=8)


def _spec(layout: Layout = KINECT_V1_20, classes: int = 4, window: int = 6) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=window)


# ------------------------------------------------------------------------------ parameters


def test_parameter_counts_at_the_releases_defaults():
    """The release's model on its NTU graph (3 channels, 60 classes), then here on kinect-v2-25
    without the classifier (what `reid-bench info` reports)."""
    a = torch.from_numpy(stgcn_adjacency(25, NTU_INWARD, NTU_CENTRE, "spatial")).float()
    assert a.shape == (3, 25, 25)
    assert sum(p.numel() for p in STGCNNet(a, 3, 60).parameters()) == STGCN_NTU == 3_098_832
    c = torch.from_numpy(ctrgcn_adjacency(25, NTU_INWARD)).float()
    assert sum(p.numel() for p in CTRGCNNet(c, 3, 60, CTRGCNConfig(), persons=2).parameters()) == CTRGCN_NTU == 1_446_672
    # here: one person (data BN over 3*25 inputs), the classifier excluded
    assert STGCN(STGCNConfig(), STGCN.example_spec()).num_parameters() == STGCN_NTU - STGCN_FC_60 == 3_083_412
    assert CTRGCN(CTRGCNConfig(), CTRGCN.example_spec()).num_parameters() == CTRGCN_UNITS_25 + 150 == 1_431_102
    # 20 joints: edge importance / adjacency 3*20*20 per block, data BN 2*3*20
    assert STGCN(STGCNConfig(), _spec()).num_parameters() == STGCN_BLOCKS + 10 * 1_200 + 120
    assert CTRGCN(CTRGCNConfig(), _spec()).num_parameters() == CTRGCN_UNITS_25 - 10 * (1_875 - 1_200) + 120


# ------------------------------------------------------------------------------ graphs


def test_spatial_partition_on_the_ntu_graph():
    a = stgcn_adjacency(25, NTU_INWARD, NTU_CENTRE, "spatial")
    deg = np.ones(25)
    for i, j in NTU_INWARD:
        deg[i] += 1
        deg[j] += 1
    np.testing.assert_allclose(a[0], np.diag(1 / deg))  # root at hop 0: the self links, column-normalised
    np.testing.assert_allclose(a.sum(0).sum(0), 1.0)  # every column of the whole neighbourhood sums to 1
    # the release compares distances limited to one hop: only bones at the centre's neighbours
    # split into close and further (8 entries of the further subset), the rest are "root"
    assert (a[2] > 0).sum() == 8
    geodesic = stgcn_adjacency(25, NTU_INWARD, NTU_CENTRE, "spatial-geodesic")
    assert (geodesic[2] > 0).sum() == 24  # one direction of every bone
    np.testing.assert_allclose(geodesic.sum(0), a.sum(0))
    # further: from the nearer joint v to the farther w
    dist = geodesic_distances(25, NTU_INWARD)[:, NTU_CENTRE]
    v, w = np.nonzero(geodesic[2])
    assert (dist[v] < dist[w]).all()
    assert stgcn_adjacency(25, NTU_INWARD, NTU_CENTRE, "uniform").shape == (1, 25, 25)
    assert stgcn_adjacency(25, NTU_INWARD, NTU_CENTRE, "distance").shape == (2, 25, 25)


def test_ctrgcn_graph_orients_bones_as_the_release():
    """Orienting NTU's bones towards joint 21 by hop distance gives the release's inward list."""
    assert sorted(inward_links(25, NTU_INWARD, NTU_CENTRE)) == sorted(NTU_INWARD)
    c = ctrgcn_adjacency(25, NTU_INWARD)
    np.testing.assert_array_equal(c[0], np.eye(25))
    assert c[1][1, 0] == 1.0 and c[2][0, 1] > 0  # SpineBase -> SpineMid inward; back outward


@pytest.mark.parametrize("layout,centre", [(KINECT_V1_20, 2), (KINECT_V2_25, 20), (CASIA_14, 1)])
def test_layouts_centre_on_their_neck(layout, centre):
    assert centre_joint(layout) == centre
    a = layout_stgcn_adjacency(layout)
    assert a.shape == (3, layout.num_joints, layout.num_joints)
    np.testing.assert_allclose(a.sum(0).sum(0), 1.0, rtol=1e-6)


# ------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25, CASIA_14], ids=lambda lay: lay.name)
@pytest.mark.parametrize("cls,cfg", [(STGCN, STGCNConfig(**TINY_STGCN)), (CTRGCN, CTRGCNConfig(**TINY_CTRGCN))],
                         ids=["stgcn", "ctrgcn"])
def test_forward_shapes_on_each_layout(cls, cfg, layout):
    model = cls(cfg, _spec(layout, classes=5, window=7))
    x = torch.randn(3, 3, 7, layout.num_joints)
    assert model.net(x).shape == (3, 5)
    assert model.net.features(x).shape == (3, 32)
    windows = np.random.default_rng(0).normal(size=(3, 7, layout.num_joints, 3))
    assert model._inputs(windows).shape == (3, 3, 7, layout.num_joints)
    with pytest.raises(ValueError, match=rf"expects windows \[N, f, {layout.num_joints}, 3\]"):
        model._inputs(windows[:, :, :-1])


@pytest.mark.parametrize("net_of", [
    lambda: STGCN(STGCNConfig(**TINY_STGCN), _spec()).net,
    lambda: CTRGCN(CTRGCNConfig(**TINY_CTRGCN), _spec()).net], ids=["stgcn", "ctrgcn"])
def test_the_loss_falls_on_a_fixed_batch(net_of):
    torch.manual_seed(0)
    net = net_of()
    x, y = torch.randn(16, 3, 6, 20), torch.arange(16) % 4
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def _einsum_aggregation(refined, alpha, adjacency, values):
    return torch.einsum("ncuv,nctv->nctu", refined * alpha + adjacency[None, None], values)


@pytest.mark.parametrize("learned_adjacency", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n,channels,frames,joints", [
    (64, 256, 2, 20), (32, 64, 6, 25), (16, 24, 3, 14), (5, 7, 1, 3), (3, 2000, 2, 5)])
def test_topology_aggregation_gives_autograds_gradients_bit_for_bit(n, channels, frames, joints, threads,
                                                                      learned_adjacency):
    """CTR-GCN's refined-topology product with its faster backward against the release's plain
    ops under autograd: output and all four gradients equal bit for bit (none for a fixed
    adjacency, ``adaptive=false``), on the 20-, 25- and 14-joint graphs, fewer than four joints,
    and 1 and 2 threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(n + channels + frames + joints)
        inputs = [torch.randn(n, channels, joints, joints, generator=gen), torch.randn(1, generator=gen),
                  torch.randn(3, joints, joints, generator=gen), torch.randn(n, channels, frames, joints, generator=gen)]
        upstream = torch.randn(n, channels, frames, joints, generator=gen)
        results = []
        for function in (_einsum_aggregation, aggregate):
            leaves = [t.clone().requires_grad_(i != 2 or learned_adjacency) for i, t in enumerate(inputs)]
            refined, alpha, adjacency, values = leaves
            out = function(refined, alpha, adjacency[1], values)  # a subset of the stacked adjacency, as the model
            out.backward(upstream)
            results.append([out] + [leaf.grad for leaf in leaves])
        for name, plain, fast in zip(["output", "refined", "alpha", "adjacency", "values"], *results):
            if name == "adjacency" and not learned_adjacency:
                assert plain is None and fast is None
            else:
                assert torch.equal(plain, fast), name
    finally:
        torch.set_num_threads(previous)


def test_the_adjacency_gradient_sums_in_the_strided_kernels_order():
    """Where the order matters: a plain sum of the contiguous gradient differs in the last bits;
    the emulated order does not (including more than 2^20 rows, where the kernel's blocks grow)."""
    gen = torch.Generator().manual_seed(0)
    for shape in [(64, 256, 20, 20), (1100, 1000, 2, 2), (3, 5, 4, 4)]:
        grad = torch.randn(*shape, generator=gen)
        autograds = grad.transpose(-1, -2).contiguous().transpose(-1, -2).sum((0, 1))
        assert torch.equal(strided_outer_sum_order(grad), autograds), shape
        assert not torch.equal(grad.sum((0, 1)), autograds), shape


def test_learning_rate_schedules_and_rotation():
    assert [learning_rate_factor(e, (10, 50), 0.1, 0) for e in (0, 9, 10, 49, 50)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01])
    assert [learning_rate_factor(e, (35, 55), 0.1, 5) for e in (0, 4, 5, 35, 55)] == pytest.approx(
        [0.2, 1, 1, 0.1, 0.01])
    rot = rotation_matrices(torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(rot[1], np.eye(3), atol=1e-7)
    np.testing.assert_allclose(rot[0] @ rot[0].T, np.eye(3), atol=1e-6)


# ------------------------------------------------------------------------------ fitting


@pytest.mark.parametrize("cls,cfg", [
    (STGCN, STGCNConfig(epochs=3, batch_size=16, lr_steps=(2,), **TINY_STGCN)),
    (CTRGCN, CTRGCNConfig(epochs=3, batch_size=16, warm_up_epochs=1, lr_steps=(2,), **TINY_CTRGCN))],
    ids=["stgcn", "ctrgcn"])
def test_seeded_fit_is_reproducible_resumable_and_saved(cls, cfg, tiny_fold, tmp_path):
    from reid_bench.checkpoints import read_checkpoint, write_checkpoint

    train, test = tiny_fold
    spec = _spec(classes=train.num_classes)
    log: list = []
    whole = cls(cfg, spec)
    whole.fit(train, trial_context(tmp_path, seed=3, log=log))
    assert [e for e, _ in log] == [0, 1, 2]
    assert log[1][1]["lr"] == pytest.approx(cfg.lr * learning_rate_factor(1, cfg.lr_steps, 0.1, cfg.warm_up_epochs))
    emb = whole.embed(test)
    assert emb.shape == (len(test), 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = cls(cfg, spec)
    again.fit(train, trial_context(tmp_path, seed=3))
    np.testing.assert_array_equal(again.embed(test), emb)
    np.testing.assert_array_equal(reload_saved(whole, tmp_path).embed(test), emb)
    # killed after the first epoch's checkpoint, continued: the same weights bit for bit
    saved = {}

    def die_after_first(model, epoch, total):
        saved["path"] = write_checkpoint(tmp_path / "ckpt-0", model.training_state(epoch), {"kind": "training"})
        raise KeyboardInterrupt

    ctx = trial_context(tmp_path, seed=3)
    ctx.epoch_done = die_after_first
    with pytest.raises(KeyboardInterrupt):
        cls(cfg, spec).fit(train, ctx)
    ctx = trial_context(tmp_path, seed=3)
    ctx.resume, _ = read_checkpoint(saved["path"])
    resumed = cls(cfg, spec)
    resumed.fit(train, ctx)
    np.testing.assert_array_equal(resumed.embed(test), emb)


#: The seeded fits' per-epoch training losses in float64. In float32, CTR-GCN's fit here is
#: rounding noise after a step: its first graph unit's batch norm (scale 1e-6, [M] 33-35) gets
#: its weight's gradient through a cancellation that leaves it 2% off, so CPUs whose kernels round
#: differently (an Intel AVX-512 machine and an AMD Zen 4 one; oneDNN or MKL on other code paths)
#: gave third-epoch losses 10-30% apart, and ST-GCN's up to 2%. In float64 the same kernel changes
#: (oneDNN held to AVX2, MKL's compatible branch, ATen without SIMD, no oneDNN) moved them by under
#: 1e-12. The float32 kernels written for speed are checked against autograd bit for bit above
#: (``test_topology_aggregation_gives_autograds_gradients_bit_for_bit``).
PINNED_LOSSES = {"stgcn": [1.9276760628307454, 1.5135941577833787, 1.4097989964192004],
                 "ctrgcn": [4.169037750458919, 2.998467741216004, 3.0032084988590686]}


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("cls,cfg", [
    (STGCN, STGCNConfig(epochs=3, batch_size=16, lr_steps=(2,), base_channels=16)),
    (CTRGCN, CTRGCNConfig(epochs=3, batch_size=16, warm_up_epochs=1, lr_steps=(2,), base_channels=16))],
    ids=["stgcn", "ctrgcn"])
def test_seeded_training_losses_are_pinned(cls, cfg, tiny_fold, tmp_path, float64_default):
    train, _ = tiny_fold
    log: list = []
    model = cls(cfg, _spec(classes=train.num_classes))
    model.fit(train, trial_context(tmp_path, seed=5, log=log))
    assert {t.dtype for t in (*model.net.parameters(), *model.net.buffers()) if t.is_floating_point()} == {torch.float64}
    losses = [metrics["loss"] for _, metrics in log]
    np.testing.assert_allclose(losses, PINNED_LOSSES[cls.name], rtol=1e-9, err_msg=repr(losses))


# ------------------------------------------------------------------------------ settings


def test_settings_are_checked_with_clear_errors():
    with pytest.raises(ValueError, match="stgcn: temporal_kernel must be odd"):
        STGCNConfig(temporal_kernel=8)
    with pytest.raises(ValueError, match=r"stgcn: lr_steps must be in increasing order, got \[50, 10\]"):
        STGCNConfig(lr_steps=(50, 10))
    with pytest.raises(ValueError, match="ctrgcn: base_channels=10 must be a multiple of 4"):
        CTRGCNConfig(base_channels=10)
    with pytest.raises(ValueError, match="ctrgcn: base_channels=4 below rel_reduction=8"):
        CTRGCNConfig(base_channels=4)
    with pytest.raises(ValueError, match="nesterov=true needs momentum > 0"):
        CTRGCNConfig(momentum=0.0)
    bare = Layout("stick", ("a", "b", "c"), ((0, 1), (1, 2)), ((0,), (1,), (2,)), ((0, 1, 2),))
    with pytest.raises(ValueError, match=r"layout 'stick' has no joint for role 'spine', which ctrgcn needs"):
        CTRGCN(CTRGCNConfig(**TINY_CTRGCN), _spec(bare))
    assert STGCN(STGCNConfig(**TINY_STGCN), _spec(bare)).net is not None  # no role needed: centre of the graph


@pytest.mark.parametrize("cls", [STGCN, CTRGCN], ids=lambda cls: cls.__name__)
def test_override_tables_name_real_protocols(cls):
    from reid_bench.registry import get_registry

    protocols = set(get_registry().names("protocols"))
    named = set(cls.protocol_overrides) | set(cls.budget_overrides)
    assert named and named <= protocols, named - protocols
    assert set(cls.protocol_notes) == set(cls.budget_overrides)
    for values in cls.budget_overrides.values():
        cls.config_class(**values)  # a valid configuration


@pytest.mark.parametrize("model,sets", [("stgcn", ["base_channels=8", "epochs=1", "batch_size=16"]),
                                        ("ctrgcn", ["base_channels=8", "epochs=1", "batch_size=16"])])
def test_runs_end_to_end_through_the_cli(model, sets, cli, tracking_uri):
    args = [a for kv in sets for a in ("--set", kv)]
    result = cli("run", "--model", model, "--protocol", "synth-gait-retrieval", *TINY_GAIT, *args, "--fold", "A-B",
                 "--no-ray", "--seeds", "1", "--device", "cpu", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert trial["status"] == "FINISHED"
    assert 0.0 <= trial["metrics"]["rank1"] <= 1.0 and 0.0 <= trial["metrics"]["mAP"] <= 1.0
