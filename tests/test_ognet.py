"""OG-Net plugin: parameter counts of the three defaults, shapes, switches, determinism, a tiny
training step, and one tiny end-to-end trial on the market3d protocol."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from conftest import cloud_splits, reload_saved, trial_context
import torch

from reid_bench.api import DataSpec
from reid_bench.synthetic.clouds import CloudOptions
from reid_bench_ognet.model import OGNet, OGNetConfig, OGNetDeep, OGNetSmall
from reid_bench_ognet.network import NetConfig, OGNetNetwork

TINY = CloudOptions(train_identities=4, test_identities=4, images_per_identity=4, distractors=2, junk=1, num_points=192)
# tiny cost settings: the architecture's code paths, not its size
# The harness input (points from all vertices) unless a test asks for the release's.
FAST = dict(points=128, init_points=32, epochs=2, batch_size=8, warmup_epochs=1, embed_batch=16,
            input="harness")


@pytest.fixture(scope="module")
def splits():
    return cloud_splits(TINY)


_ctx = trial_context


def _small_cfg(cls=OGNetConfig, **kw):
    base = dict(FAST, widths=(8, 16, 16, 32), embed_dim=16) if cls is OGNetConfig else dict(FAST)
    base.update(kw)
    return cls(**base)


# ------------------------------------------------------------------------------ sizes and shapes


@pytest.mark.parametrize(
    "model_cls, expected, paper",
    [(OGNet, 1_951_738, 1.95e6), (OGNetSmall, 1_200_833, 1.20e6), (OGNetDeep, 2_470_498, 2.47e6)],
)
def test_default_parameter_counts_match_the_paper(model_cls, expected, paper):
    model = model_cls(model_cls.config_class(), model_cls.example_spec())
    n = model.num_parameters()
    assert n == expected
    assert round(n / 1e6, 2) == round(paper / 1e6, 2)
    # the identity classifier (751 Market identities) is excluded
    total = sum(p.numel() for p in model.net.parameters())
    assert total - n == 512 * 751 + 751


def test_default_schedule_and_branches():
    net = OGNetNetwork(NetConfig(), 10)
    assert [g.npoint for g in net.groupings.values()] == [768, 384, 192, 96]
    assert all(len(g.branches) == 3 and g.sizes == (8, 16, 32) for g in net.groupings.values())
    deep = OGNetNetwork(OGNetDeep.config_class().net_config(), 10)
    assert [g.npoint for g in deep.groupings.values()] == [768, 384, 192, 96]
    assert len(deep.convs) == 14 and deep.mix.shape == (7,)


def test_forward_shapes_and_embedding(splits, tmp_path):
    train, query = splits
    model = OGNet(_small_cfg(), DataSpec("pointcloud", num_classes=train.num_classes, num_points=192))
    xyz, rgb = torch.randn(3, 128, 3) * 0.3, torch.rand(3, 128, 3) - 0.5
    f, logits = model.net(xyz, rgb)
    assert f.shape == (3, 16) and logits.shape == (3, train.num_classes)
    model.fit(train, _ctx(tmp_path))
    z = model.embed(query)
    assert z.shape == (len(query), 16) and z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, model.embed(query))  # evenly spaced points at test: deterministic
    np.testing.assert_array_equal(reload_saved(model, tmp_path).embed(query), z)


def test_clouds_smaller_than_the_point_budget_repeat_points(splits, tmp_path):
    """192-point clouds with points=256: every cloud is fed at the network's fixed size."""
    train, query = splits
    model = OGNet(_small_cfg(points=256, epochs=1), DataSpec("pointcloud", num_classes=train.num_classes))
    xyz, rgb = model._train_batch(np.ascontiguousarray(train.data[:, :, :6]), np.arange(4), torch.Generator())
    assert xyz.shape == (4, 256, 3) and rgb.shape == (4, 256, 3)
    model.fit(train, _ctx(tmp_path))
    z = model.embed(query)
    assert z.shape == (len(query), 16) and np.isfinite(z).all()


@pytest.mark.parametrize("grouping", ["ball", "knn"])
@pytest.mark.parametrize("aggregation", ["gated", "max", "sum"])
def test_switches_and_factorised_path_agree(grouping, aggregation):
    torch.manual_seed(0)
    cfg = NetConfig(widths=(8, 16), init_points=24, grouping=grouping, aggregation=aggregation, embed_dim=8)
    a = OGNetNetwork(cfg, 5).eval()
    b = copy.deepcopy(a)
    b.cfg = dataclasses.replace(cfg, factorised=False)
    for g in b.groupings.values():
        g.factorised = False
    xyz, rgb = torch.randn(2, 96, 3) * 0.3, torch.rand(2, 96, 3) - 0.5
    fa, fb = a.features(xyz, rgb), b.features(xyz, rgb)
    assert fa.shape == (2, 8)
    torch.testing.assert_close(fa, fb, rtol=1e-3, atol=1e-3)
    n_gates = sum(1 for n, _ in a.named_parameters() if n.endswith(".gate"))
    assert n_gates == (2 if aggregation == "gated" else 0)


def test_switches_change_the_output():
    torch.manual_seed(0)
    xyz, rgb = torch.randn(2, 96, 3) * 0.3, torch.rand(2, 96, 3) - 0.5
    outs = {}
    for key, kw in {"base": {}, "knn": {"grouping": "knn"}, "local": {"non_local": False}}.items():
        torch.manual_seed(1)
        net = OGNetNetwork(NetConfig(widths=(8, 16), init_points=24, embed_dim=8, **kw), 5).eval()
        outs[key] = net.features(xyz, rgb)
    assert not torch.allclose(outs["base"], outs["knn"])
    assert not torch.allclose(outs["base"], outs["local"])
    with pytest.raises(ValueError):
        OGNetNetwork(NetConfig(aggregation="mean"), 5)
    with pytest.raises(ValueError):
        OGNetNetwork(NetConfig(grouping="radius"), 5)


# ------------------------------------------------------------------------------ training


def test_training_is_deterministic(splits, tmp_path):
    train, query = splits
    spec = DataSpec("pointcloud", num_classes=train.num_classes, num_points=192)
    z = []
    for _ in range(2):
        model = OGNet(_small_cfg(epochs=1), spec)
        model.fit(train, _ctx(tmp_path, seed=3))
        z.append(model.embed(query))
    np.testing.assert_array_equal(z[0], z[1])


@pytest.mark.parametrize("circle", [False, True])
def test_training_lowers_the_loss(splits, tmp_path, circle):
    train, _ = splits
    torch.manual_seed(0)
    model = OGNet(_small_cfg(circle=circle), DataSpec("pointcloud", num_classes=train.num_classes))
    net = model.net = OGNetNetwork(model.config.net_config(), train.num_classes)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, amsgrad=True)
    gen = torch.Generator().manual_seed(0)
    data = train.data[:, :, :6]
    idx = np.arange(8)
    xyz, rgb = model._train_batch(data, idx, gen)
    y = torch.as_tensor(train.labels[idx])
    from reid_bench_ognet.model import CircleLoss

    losses = []
    for _ in range(6):
        f, logits = net(xyz, rgb)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if circle:
            loss = loss + CircleLoss(0.25, 64)(torch.nn.functional.normalize(f, dim=1), y) / len(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_fit_reports_epochs_and_lr_schedule(splits, tmp_path):
    train, _ = splits
    log: list = []
    model = OGNetSmall(_small_cfg(OGNetSmall.config_class, widths=(8, 16), embed_dim=8, epochs=3, warmup_epochs=2),
                       DataSpec("pointcloud", num_classes=train.num_classes))
    model.fit(train, _ctx(tmp_path, log=log))
    assert [e for e, _ in log] == [0, 1, 2]
    lrs = [m["lr"] for _, m in log]
    assert lrs[0] < lrs[1]  # warm-up
    assert np.isfinite([m["loss"] for _, m in log]).all()


@pytest.mark.parametrize("cls", [OGNet, OGNetSmall, OGNetDeep], ids=lambda cls: cls.__name__)
def test_protocol_overrides_are_config_fields(cls):
    names = {f.name for f in dataclasses.fields(cls.config_class)}
    for proto, values in cls.protocol_overrides.items():
        assert set(values) <= names, proto


def test_ognet_deep_defaults_to_nine_neighbours_and_shortcuts():
    assert OGNetDeep.config_class().k == 9 and OGNetDeep.config_class().shortcut


# ------------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("protocol", ["market3d", "market3d-to-duke3d"])
def test_cli_runs_ognet_on_the_market3d_protocols(cli, tracking_uri, tmp_path, protocol):
    """`reid-bench run --model ognet` on OG-Net-release fixtures: the paper-size network, few points."""
    import json

    from conftest import mlflow_runs
    from formats_pointclouds import write_duke3d, write_market3d

    write_market3d(tmp_path / "data", identities=3, images=2, points=(64, 128))
    if protocol.endswith("duke3d"):
        write_duke3d(tmp_path / "data", identities=3, images=2, points=(64, 128))
    sets = ["points=64", "init_points=16", "epochs=1", "batch_size=4", "warmup_epochs=1"]
    args = [a for kv in sets for a in ("--set", kv)]
    result = cli("run", "--model", "ognet", "--protocol", protocol, *args, "--data-root", str(tmp_path / "data"),
                 "--no-ray", "--seeds", "1", "--device", "cpu", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert trial["status"] == "FINISHED" and 0.0 <= trial["metrics"]["mAP"] <= 1.0
    _, runs = mlflow_runs(tracking_uri)
    child = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"][0]
    assert child.info.status == "FINISHED"
    assert child.data.metrics["num_parameters"] == 1_951_738  # the paper-size network ran


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(splits, tmp_path):
    train, query = splits
    model = OGNet(_small_cfg(epochs=1), DataSpec("pointcloud", num_classes=train.num_classes))
    ctx = _ctx(tmp_path)
    ctx.device = "cuda"
    model.fit(train, ctx)
    z = model.embed(query)
    assert z.shape == (len(query), 16) and np.isfinite(z).all()


def test_augmentation_ranges(splits):
    train, _ = splits
    data = np.ascontiguousarray(train.data[:, :, :6])
    idx = np.arange(6)
    model = OGNet(_small_cfg(jitter=0.0, flip=False, scale_min=1.0, scale_max=1.0, random_subset=0.0),
                  DataSpec("pointcloud", num_classes=train.num_classes))
    xyz, rgb = model._train_batch(data, idx, torch.Generator().manual_seed(0))
    tx, trgb = next(model._test_batches(data[idx]))
    assert torch.equal(xyz, tx) and torch.equal(rgb, trgb)  # no augmentation: the test view
    assert torch.allclose(tx.mean(dim=1), torch.zeros(3), atol=0.05)  # centred (on the whole cloud)
    model.config.jitter = 0.01
    xj, _ = model._train_batch(data, idx, torch.Generator().manual_seed(0))
    assert (xj - tx).abs().max() <= 0.01 + 1e-6  # clipped jitter
    model.config.colour_jitter = 0.2
    _, rj = model._train_batch(data, idx, torch.Generator().manual_seed(0))
    assert not torch.equal(rj, trgb)


# ------------------------------------------------------------------------------ the release's input


def test_released_input_takes_half_of_the_coloured_vertices():
    from reid_bench_ognet.model import released_index

    rgb = np.full((10, 3), 0.3)
    rgb[[1, 4, 7]] = 1.0  # pure white: no texture
    even = released_index(rgb, 5, random=False, rng=np.random.default_rng(0))
    # coloured: 0 2 3 5 6 8 9; linspace(0, 6, 5) = 0, 1.5, 3, 4.5, 6 -> positions 0 1 3 4 6
    assert even.tolist() == [0, 2, 5, 6, 9]
    rand = released_index(rgb, 5, random=True, rng=np.random.default_rng(1))
    assert len(rand) == 5 and not set(rand) & {1, 4, 7} and 9 not in rand  # the release never picks the last one
    few = released_index(rgb, 9, random=False, rng=np.random.default_rng(0))
    assert set(few) >= {0, 2, 3, 5, 6, 8, 9} and len(few) == 9  # all coloured, then white ones


def test_released_input_in_a_batch(splits):
    train, _ = splits
    data = np.ascontiguousarray(train.data[:4, :, :6]).copy()
    data[0, :10, 3:6] = 1.0
    model = OGNet(_small_cfg(input="released", slim=0.5, epochs=1), DataSpec("pointcloud", num_classes=train.num_classes))
    xyz, rgb = model._train_batch(data, np.arange(4), torch.Generator().manual_seed(0))
    assert xyz.shape == (4, round(data.shape[1] * 0.5), 3)
    assert float(rgb[0].max()) <= 0.5 and not bool((rgb[0] == 0.5).all(-1).any())  # white became grey (0)
    (test_xyz, _), = list(model._test_batches(data[:2]))
    (again, _), = list(model._test_batches(data[:2]))
    torch.testing.assert_close(test_xyz, again)  # deterministic at test time


def test_class_sampler_draws_every_identity(splits):
    train, _ = splits
    model = OGNet(_small_cfg(class_sampler=3, epochs=1), DataSpec("pointcloud", num_classes=train.num_classes))
    labels = torch.as_tensor(train.labels)
    order = model._class_sampler_order(labels, torch.Generator().manual_seed(0))
    classes = len(torch.unique(labels))
    passes = -(-len(labels) // (classes * 3))
    assert len(order) == passes * classes * 3
    assert (torch.bincount(labels[order], minlength=classes) == 3 * passes).all()


def test_release_settings_per_dataset():
    from reid_bench.config import Overrides
    from reid_bench.trial import resolve_config

    deep = resolve_config("ognet-deep", "market3d", Overrides()).model
    assert (deep.batch_size, deep.lr, deep.epochs, deep.input, deep.slim) == (30, 6e-4, 1000, "released", 0.5)
    og = resolve_config("ognet", "market3d", Overrides()).model
    assert (og.class_sampler, og.lr, og.epochs, og.batch_size) == (3, 1e-3, 1500, 36)
    assert resolve_config("ognet-deep", "msmt3d", Overrides()).model.batch_size == 30
    assert resolve_config("ognet-small", "cuhk03np3d", Overrides()).model.weight_decay == 1e-3
    assert resolve_config("ognet", "synth-market", Overrides()).model.input == "harness"
