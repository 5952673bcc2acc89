"""GaitTR and GPGait (plugin folder ``plugins/gcn``, from BNU-IVC/FastPoseGait at commit 94da9c8) on small inputs.

The parameter count at the release's default configuration is checked against a count derived by
hand from the release's layer shapes (``fastposegait/modeling/models/gaittr.py`` 24-33,
``components/blocks.py`` 22-30, ``components/units/unit_st.py`` 18-20, 62-66,
``components/units/unit_conv2d.py`` 13-15; ``configs/gaittr/gaittr.yaml`` 37-44); then forward
shapes on the 20-, 25-, 14- and 17-joint layouts, the input streams, a falling loss, seeded and
resumed fits, the settings' checks, the override tables and one run through the CLI.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY_GAIT, fits_by_precision, reload_saved, trial_context
from reid_bench.api import DataSpec, Layout
from reid_bench.layouts import CASIA_14, COCO_17, KINECT_V1_20, KINECT_V2_25
from reid_bench_gcn.ctrgcn import CTRGCNConfig
from reid_bench_gcn.gaittr import GaitTR, GaitTRConfig, GaitTRNet, stream_inputs
from reid_bench_gcn.gpgait import GPGait, GPGaitConfig, GPGaitNet, body_groups
from reid_bench_gcn.graph import mirror_joints, parent_joints
from reid_bench_gcn.stgcn import STGCN, STGCNConfig
from reid_bench_gcn.training import batch_hard_triplet, part_cross_entropy, pk_indices

# ---- GaitTR by hand: C = 10 inputs (5 streams x 2D), V = 17 COCO joints, widths 64-64-128-256, 128 out ----
# block cin -> cout (blocks.py 22-30): tcn UnitConv2D cin->cin (9x1) 9*cin^2 + cin, BN 2*cin
# (unit_conv2d.py 13-15); st (unit_st.py 18-20, 62-66): BN 2*cout, data BN 2*cin*V, qkv 1x1
# cin*(2*cout/4 + cout) + 1.5*cout, attn_out cout^2 + cout; where cin != cout a residual 1x1
# conv + BN cin*cout + cout + 2*cout and a down UnitConv2D (k = 1) of the same size.
#   block 1 10->64:   tcn 900+10+20 = 930;  st 128 + 340 + 1,056 + 4,160 = 5,684;  res + down 2 x 832  =   8,278
#   block 2 64->64:   tcn 36,864+64+128 = 37,056;  st 128 + 2,176 + 6,240 + 4,160 = 12,704          =  49,760
#   block 3 64->128:  tcn 37,056;  st 256 + 2,176 + 12,480 + 16,512 = 31,424;  res + down 2 x 8,576  =  85,632
#   block 4 128->256: tcn 147,456+128+256 = 147,840;  st 512 + 4,352 + 49,536 + 65,792 = 120,192;
#                     res + down 2 x 33,536                                                          = 335,104
#   blocks 478,774; data BN 2 x 10*17 = 340 (gaittr.py 25); fcn Conv1d 256*128 + 128 = 32,896 (gaittr.py 33).
GAITTR_RELEASE = 478_774 + 340 + 32_896  # 512,010
# here on kinect-v2-25: C = 15 (5 streams x 3D), V = 25
#   block 1 15->64:   tcn 2,025+15+30 = 2,070;  st 128 + 750 + 1,536 + 4,160 = 6,574;  res + down 2 x 1,152 = 10,948
#   block 2: 37,056 + (128 + 3,200 + 6,240 + 4,160)                                                  =  50,784
#   block 3: 37,056 + (256 + 3,200 + 12,480 + 16,512) + 17,152                                       =  86,656
#   block 4: 147,840 + (512 + 6,400 + 49,536 + 65,792) + 67,072                                      = 337,152
#   blocks 485,540; data BN 2 x 15*25 = 750; fcn 32,896.
GAITTR_KINECT_V2 = 485_540 + 750 + 32_896  # 519,186

# ---- GPGait by hand (gpgait.py 18-24, 65-118; unit_pagcn.py 12-30; blocks.py 103-115; head.py 52-92;
# gpgait.yaml 41-49): COCO 2D, in_c 2-64-64-128-256, share_num 3, 74 classes, 19 parts.
# PAGCN cin -> cout on V joints, inter = cout / 4: conv_a, conv_b 3 x 2 x (cin*inter + inter); conv_d
# 3 x (cin*cout + cout); PA 3*V*V; BN 2*cout; residual 1x1 conv + BN cin*cout + 3*cout where cin != cout.
#   pose / bone branch, V = 17 (PA 867): data BN 68
#     2->64 2,179; 64->64 19,715; 64->128 47,139; 128->256 183,523 x 4 (3 part branches + global)
#     = 68 + 69,033 + 734,092 = 803,193 each
#   angle branch, V = 12 (PA 432), 1 channel: data BN 24; 1->64 1,392; 64->64 19,280; 64->128 46,704;
#     128->256 183,088 x 2 (upper/lower + global) = 433,576
#   head: separate FCs 19*256*256 = 1,245,184; BNNeck BN 2*256*19 = 9,728; class weights 19*256*74 = 359,936
GPGAIT_HEAD_74 = 359_936
GPGAIT_RELEASE = 2 * 803_193 + 433_576 + 1_245_184 + 9_728 + GPGAIT_HEAD_74  # 3,654,810
COCO_GROUPS = {"arms": [[5, 7, 9], [6, 8, 10]], "legs": [[11, 13, 15], [12, 14, 16]], "head": [0, 1, 2, 3, 4]}

TINY_GPGAIT = dict(channels=(8, 8, 8, 16))
TINY_GAITTR = dict(channels=(8, 8, 16, 32), heads=2, embed_dim=16)
LAYOUTS = [KINECT_V1_20, KINECT_V2_25, CASIA_14, COCO_17]


def _spec(layout: Layout = KINECT_V1_20, classes: int = 4, window: int = 6) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=window)


# ------------------------------------------------------------------------------ parameters


def test_gaittr_parameter_counts():
    assert sum(p.numel() for p in GaitTRNet(10, 17).parameters()) == GAITTR_RELEASE == 512_010
    assert GaitTR(GaitTRConfig(), GaitTR.example_spec()).num_parameters() == GAITTR_KINECT_V2 == 519_186
    # 20 joints: the three V-sized batch norms shrink (data BN 2*15*V, st data BN 2*cin*V per block)
    per_joint = 2 * 15 + 2 * (15 + 64 + 64 + 128)
    assert GaitTR(GaitTRConfig(), _spec()).num_parameters() == GAITTR_KINECT_V2 - 5 * per_joint


def test_gpgait_parameter_counts():
    net = GPGaitNet(17, COCO_17.edges, COCO_GROUPS, 74, coords=2)
    assert sum(p.numel() for p in net.parameters()) == GPGAIT_RELEASE == 3_654_810
    assert body_groups(COCO_17) == COCO_GROUPS  # the release's partitions from coco-17's bodies and roles
    # here on coco-17 in 3D, class weights excluded: per pose / bone branch one more input channel,
    # data BN +2*17 = 34, first layer conv_a, conv_b +6*16, conv_d +3*64, residual +64: 352
    model = GPGait(GPGaitConfig(), _spec(COCO_17, classes=74))
    assert model.num_parameters() == GPGAIT_RELEASE - GPGAIT_HEAD_74 + 2 * (34 + 352) == 3_295_646


# ------------------------------------------------------------------------------ inputs and layout tables


def test_streams_parents_and_mirror():
    x = torch.arange(2 * 5 * 4 * 3, dtype=torch.float32).view(2, 5, 4, 3) ** 1.5
    parent = np.array([0, 0, 1, 1])
    s = stream_inputs(x, 0, parent)
    assert s.shape == (2, 15, 5, 4)
    torch.testing.assert_close(s[:, 0:3], x.permute(0, 3, 1, 2))  # stream-major: joints first
    torch.testing.assert_close(s[:, 3:6], (x - x[:, :, :1]).permute(0, 3, 1, 2))
    torch.testing.assert_close(s[:, 6:9, :3], (x[:, 1:4] - x[:, :3]).permute(0, 3, 1, 2))
    torch.testing.assert_close(s[:, 9:12, :3], (x[:, 2:] - x[:, :3]).permute(0, 3, 1, 2))
    assert (s[:, 6:12, 3:] == 0).all()  # the release's last two velocity frames stay zero
    torch.testing.assert_close(s[:, 12:15, :, 3], (x[:, :, 3] - x[:, :, 1]).permute(0, 2, 1))
    # parents point one hop towards the centre (kinect-v1: ShoulderCenter); the centre is its own
    assert list(parent_joints(20, KINECT_V1_20.edges, 2)) == [1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0,
                                                                16, 17, 18]
    # COCO's left-right swap as the release's invers_arr (transform.py 220)
    assert list(mirror_joints(COCO_17)) == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    m = mirror_joints(KINECT_V2_25)
    assert m[4] == 8 and m[21] == 23 and m[22] == 24 and m[20] == 20 and (m[m] == np.arange(25)).all()
    assert (mirror_joints(CASIA_14)[[2, 5, 0]] == [5, 2, 0]).all()


def test_losses_and_the_pk_sampler():
    emb = torch.tensor([[0.0], [0.1], [1.0], [1.2]])[:, :, None]  # [n, c=1, p=1]
    y = torch.tensor([0, 0, 1, 1])
    # hardest positive 0.1 / 0.2, nearest negative 0.9 / 0.8 -> relu(0.1 - 0.9 + 1) = 0.2 ...
    expected = np.mean([0.1 - 0.9 + 1, 0.1 - 1.0 + 1, 0.2 - 0.9 + 1, 0.2 - 1.1 + 1])
    assert float(batch_hard_triplet(emb, y, 1.0)) == pytest.approx(expected, rel=1e-5)
    assert float(batch_hard_triplet(emb, y, 0.0)) == 0.0  # no non-zero term: 0
    logits = torch.zeros(4, 3, 2)
    assert float(part_cross_entropy(logits, y, 16.0)) == pytest.approx(np.log(3), rel=1e-6)
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 9)
    idx = pk_indices(labels, 2, 4, torch.Generator().manual_seed(0))
    assert len(idx) == 8 and all((labels[idx[i * 4:(i + 1) * 4]] == labels[idx[i * 4]]).all() for i in range(2))
    assert len(pk_indices(labels, 8, 3, torch.Generator().manual_seed(0))) == 9  # all 3 identities


# ------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
@pytest.mark.parametrize("cls,cfg,dim", [(GaitTR, GaitTRConfig(**TINY_GAITTR), 16),
                                         (GPGait, GPGaitConfig(**TINY_GPGAIT), 19 * 16)], ids=["gaittr", "gpgait"])
def test_forward_shapes_on_each_layout(cls, cfg, dim, layout):
    model = cls(cfg, _spec(layout, classes=5, window=7))
    windows = np.random.default_rng(0).normal(size=(3, 7, layout.num_joints, 3))
    x = model._inputs(windows)
    assert x.shape == (3, 7, layout.num_joints, 3)
    assert model.features(x).shape == (3, dim) and torch.isfinite(model.features(x)).all()
    assert model.augment(x, torch.Generator().manual_seed(0)).shape == x.shape
    with pytest.raises(ValueError, match=rf"expects windows \[N, f, {layout.num_joints}, 3\]"):
        model._inputs(windows[:, :, :-1])


@pytest.mark.parametrize("cls,cfg", [(GaitTR, GaitTRConfig(**TINY_GAITTR)), (GPGait, GPGaitConfig(**TINY_GPGAIT))],
                         ids=["gaittr", "gpgait"])
def test_the_loss_falls_on_a_fixed_batch(cls, cfg):
    torch.manual_seed(0)
    model = cls(cfg, _spec())
    x, y = torch.randn(16, 6, 20, 3), torch.arange(16) % 4
    opt = torch.optim.Adam(model.net.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, _ = model.loss_of(model.net, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("cls,cfg", [
    (GaitTR, GaitTRConfig(iterations=6, epoch_iterations=3, per_identity=4, **TINY_GAITTR)),
    (GPGait, GPGaitConfig(iterations=6, epoch_iterations=3, per_identity=4, **TINY_GPGAIT)),
    (STGCN, STGCNConfig(epochs=2, batch_size=16, base_channels=8))], ids=["gaittr", "gpgait", "stgcn"])
def test_bfloat16_training_is_a_named_switch(cls, cfg, tiny_fold, tmp_path):
    """``train_precision=bfloat16`` on the GCN models where it is faster: training forward passes
    run in bf16 (none does by default), losses stay finite, embeddings stay float32 and differ
    from the float32 fit's. CTR-GCN does not offer it (slower under autocast: see the README)."""
    train, test = tiny_fold
    fits = fits_by_precision(lambda precision: cls(dataclasses.replace(cfg, train_precision=precision),
                                                   _spec(classes=train.num_classes)), train, tmp_path)
    assert all(np.isfinite(losses).all() for _, losses, _ in fits.values())
    assert torch.bfloat16 not in fits["float32"][0] and torch.bfloat16 in fits["bfloat16"][0]
    emb = fits["bfloat16"][2].embed(test)
    assert emb.dtype == np.float32 and np.isfinite(emb).all() and not np.array_equal(emb, fits["float32"][2].embed(test))
    assert "train_precision" not in {f.name for f in dataclasses.fields(CTRGCNConfig)}


# ------------------------------------------------------------------------------ fitting


@pytest.mark.parametrize("cls,cfg", [
    (GaitTR, GaitTRConfig(iterations=6, epoch_iterations=2, per_identity=4, **TINY_GAITTR)),
    (GPGait, GPGaitConfig(iterations=6, epoch_iterations=2, per_identity=4, **TINY_GPGAIT))], ids=["gaittr", "gpgait"])
def test_seeded_fit_is_reproducible_resumable_and_saved(cls, cfg, tiny_fold, tmp_path):
    from reid_bench.checkpoints import read_checkpoint, write_checkpoint

    train, test = tiny_fold
    spec = _spec(classes=train.num_classes)
    log: list = []
    whole = cls(cfg, spec)
    whole.fit(train, trial_context(tmp_path, seed=3, log=log))
    assert [e for e, _ in log] == [0, 1, 2]
    assert log[0][1]["lr"] == pytest.approx(cfg.lr / cfg.div_factor)  # one-cycle starts at max_lr / div
    emb = whole.embed(test)
    assert emb.shape == (len(test), whole.embedding_dim(test)) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = cls(cfg, spec)
    again.fit(train, trial_context(tmp_path, seed=3))
    np.testing.assert_array_equal(again.embed(test), emb)
    np.testing.assert_array_equal(reload_saved(whole, tmp_path).embed(test), emb)
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


# ------------------------------------------------------------------------------ settings


def test_settings_are_checked_with_clear_errors():
    with pytest.raises(ValueError, match="gaittr: every channel width must split into heads=8"):
        GaitTRConfig(channels=(48, 64))
    with pytest.raises(ValueError, match="gaittr: temporal_kernel must be odd"):
        GaitTRConfig(temporal_kernel=4)
    with pytest.raises(ValueError, match=r"gaittr: pct_start=0.6 must lie in \(0, 0.5\] with three_phase=true"):
        GaitTRConfig(pct_start=0.6)
    with pytest.raises(ValueError, match="gaittr: per_identity=1 leaves the triplet loss no positive"):
        GaitTRConfig(per_identity=1)
    with pytest.raises(ValueError, match="gaittr: iterations=2 is too short"):
        GaitTRConfig(iterations=2)
    with pytest.raises(ValueError, match="gpgait: shared=4 must leave at least one of the 4 layers"):
        GPGaitConfig(shared=4)
    bare = Layout("stick", ("a", "b", "c"), ((0, 1), (1, 2)), ((0,), (1,), (2,)), ((0, 1, 2),))
    assert GaitTR(GaitTRConfig(**TINY_GAITTR), _spec(bare)).net is not None  # no role needed
    with pytest.raises(ValueError, match="gpgait: layout 'stick' needs bodies recognisable as arms and legs"):
        GPGait(GPGaitConfig(**TINY_GPGAIT), _spec(bare))


@pytest.mark.parametrize("cls", [GaitTR, GPGait], ids=["gaittr", "gpgait"])
def test_override_tables_name_real_protocols(cls):
    from reid_bench.registry import get_registry

    protocols = set(get_registry().names("protocols"))
    named = set(cls.protocol_overrides) | set(cls.budget_overrides)
    assert named and named <= protocols, named - protocols
    assert set(cls.protocol_notes) == set(cls.budget_overrides)
    for values in cls.budget_overrides.values():
        cls.config_class(**values)


@pytest.mark.parametrize("model,sets", [
    ("gaittr", ["channels=[8,8,16,32]", "heads=2", "embed_dim=16", "iterations=4", "epoch_iterations=2",
                "per_identity=2"]),
    ("gpgait", ["channels=[8,8,8,16]", "iterations=4", "epoch_iterations=2", "per_identity=2"])])
def test_runs_end_to_end_through_the_cli(model, sets, cli, tracking_uri):
    args = [a for kv in sets for a in ("--set", kv)]
    result = cli("run", "--model", model, "--protocol", "synth-gait-retrieval", *TINY_GAIT, *args, "--fold", "A-B",
                 "--no-ray", "--seeds", "1", "--device", "cpu", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert trial["status"] == "FINISHED"
    assert 0.0 <= trial["metrics"]["rank1"] <= 1.0 and 0.0 <= trial["metrics"]["mAP"] <= 1.0
