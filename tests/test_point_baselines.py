"""PointNet++ SSG/MSG and DGCNN (OG-Net's Table II baselines): sizes, shapes, training, a trial."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import cloud_splits, trial_context

torch = pytest.importorskip("torch")

from reid_bench.api import DataSpec  # noqa: E402
from reid_bench.synthetic.clouds import CloudOptions  # noqa: E402
from reid_bench_baselines.dgcnn import DGCNN, DGCNNConfig, _EdgeConv  # noqa: E402
from reid_bench_baselines.pointnet2 import (  # noqa: E402
    PointNet2MSG,
    PointNet2MSGConfig,
    PointNet2SSG,
    PointNet2SSGConfig,
)

TINY_DATA = CloudOptions(train_identities=6, test_identities=6, images_per_identity=4, distractors=2, junk=0, num_points=128)
COMMON = dict(points=48, embed_dim=32, dropout=0.1, epochs=4, warmup_epochs=1, batch_size=8, lr=5e-3,
              test_scales=(1.0, 1.1))
SSG_TINY = dict(COMMON, npoints=(16, 8), nsamples=((8,), (8,)), mlps=(((16, 16, 32),), ((32, 32, 64),)),
                global_mlp=(64, 128), head_dim=64)
MSG_TINY = dict(COMMON, npoints=(16, 8), radii=((0.1, 0.3), (0.2, 0.5)), nsamples=((4, 8), (4, 8)),
                mlps=(((8, 16), (16, 16)), ((16, 32), (16, 32))), global_mlp=(64, 128), head_dim=64)
DGCNN_TINY = dict(COMMON, k=8, widths=(16, 16, 32), proj_dim=64)
CASES = [
    pytest.param(PointNet2SSG, PointNet2SSGConfig, SSG_TINY, id="pointnet2-ssg"),
    pytest.param(PointNet2MSG, PointNet2MSGConfig, MSG_TINY, id="pointnet2-msg"),
    pytest.param(DGCNN, DGCNNConfig, DGCNN_TINY, id="dgcnn"),
]


@pytest.fixture(scope="module")
def splits():
    return cloud_splits(TINY_DATA)


_ctx = trial_context


# ------------------------------------------------------------------------------ default sizes


@pytest.mark.parametrize(
    "cls, exact, paper",
    [(PointNet2SSG, 1_594_880, 1.59), (PointNet2MSG, 1_865_664, 1.87), (DGCNN, 1_366_144, 1.37)],
)
def test_default_parameter_counts_match_ognet_table2(cls, exact, paper):
    model = cls(cls.config_class(), cls.example_spec())
    assert model.num_parameters() == exact
    assert round(exact / 1e6, 2) == paper
    total = sum(p.numel() for p in model.net.parameters())
    assert total - model.num_parameters() == 512 * 751 + 751  # only the identity classifier is left out
    cfg = model.config
    assert (cfg.points, cfg.embed_dim, cfg.batch_size, cfg.lr, cfg.amsgrad) == (4096, 512, 36, 8e-4, True)


NETWORKS = pytest.mark.parametrize("cls", [PointNet2SSG, PointNet2MSG, DGCNN], ids=lambda cls: cls.__name__)


@NETWORKS
def test_default_networks_forward_small_clouds(cls):
    """The default (paper-size) networks on 2 clouds of 40 points: shapes of embedding and logits."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 40) * 0.3
    model = cls(cls.config_class(), DataSpec("pointcloud", num_classes=5, num_points=40))
    z, logits = model.net(x)
    assert z.shape == (2, 512) and logits.shape == (2, 5)
    model.net.eval()
    with torch.no_grad():
        a = model.net.features(x)
        b = model.net.features(x)
    assert torch.equal(a, b) and torch.isfinite(a).all()


@NETWORKS
def test_synthetic_overrides_keep_the_architecture(cls):
    assert set(cls.budget_overrides) == {"synth-market", "synth-market-to-duke"}  # a CPU budget, not a recipe
    cfg = dataclasses.replace(cls.config_class(), **cls.budget_overrides["synth-market"])
    model = cls(cfg, cls.example_spec())
    assert model.num_parameters() == cls(cls.config_class(), cls.example_spec()).num_parameters()


def test_nested_tuple_fields_can_be_set_from_the_command_line():
    from reid_bench.config import apply_overrides

    cfg = apply_overrides(
        PointNet2MSGConfig(), {"nsamples": "[[8, 16, 32], [16, 16, 32]]", "radii": "[[0.1,0.2,0.4],[0.2,0.4,0.8]]"}, "m"
    )
    assert cfg.nsamples == ((8, 16, 32), (16, 16, 32)) and cfg.radii[1] == (0.2, 0.4, 0.8)


# ------------------------------------------------------------------------------ DGCNN EdgeConv


@pytest.mark.parametrize("form", ["dgl", "paper"])
@pytest.mark.parametrize("edge_bn", [True, False])
def test_factorised_edgeconv_equals_the_edge_feature_form(form, edge_bn):
    from reid_bench import pointops

    torch.manual_seed(1)
    fast = _EdgeConv(5, 7, form, edge_bn, factorised=True)
    slow = _EdgeConv(5, 7, form, edge_bn, factorised=False)
    with torch.no_grad():
        fast.bn.weight.copy_(torch.randn(7))  # both signs: the max of BN(e) is BN(min e) where weight < 0
        fast.bn.bias.copy_(torch.randn(7))
        fast.theta.bias.add_(3.0)  # an offset that naive E[e^2] - E[e]^2 would lose precision on
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(3, 20, 5)
    idx = pointops.knn(x, x, 6)
    for train in (True, False):
        fast.train(train)
        slow.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fast(xa, idx), slow(xb, idx)
        torch.testing.assert_close(ya, yb, atol=2e-4, rtol=1e-4)
        g = torch.randn_like(ya)
        (ya * g).sum().backward()
        (yb * g).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=1e-3, rtol=1e-3)
        for pa, pb in zip(fast.parameters(), slow.parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, atol=1e-3, rtol=1e-3)
            pa.grad = pb.grad = None
    torch.testing.assert_close(fast.bn.running_var, slow.bn.running_var)
    # the two message forms are different functions
    other = _EdgeConv(5, 7, "paper" if form == "dgl" else "dgl", edge_bn, factorised=False)
    other.load_state_dict(fast.state_dict())
    assert not torch.allclose(other.messages(x, idx), slow.messages(x, idx))


@pytest.mark.parametrize("switch", ["dynamic_graph", "embed_after_activation", "input_xyz"])
def test_dgcnn_switches_run(switch):
    x = torch.randn(2, 6, 40) * 0.3
    cfg = DGCNNConfig(**dict(DGCNN_TINY, **{switch: True}))
    model = DGCNN(cfg, DataSpec("pointcloud", num_classes=3))
    z, logits = model.net(x)
    assert z.shape == (2, 32) and logits.shape == (2, 3)


def test_dgcnn_parameter_count_with_xyz_input():
    assert DGCNN(DGCNNConfig(input_xyz=True), DGCNN.example_spec()).num_parameters() == 1_366_144 + 2 * 3 * 64


def test_pointnet2_released_activation_switch_runs():
    cfg = PointNet2SSGConfig(**dict(SSG_TINY, mid_activation=False))
    model = PointNet2SSG(cfg, DataSpec("pointcloud", num_classes=3))
    z, _ = model.net(torch.randn(2, 6, 40) * 0.3)
    assert z.shape == (2, 32)


# ------------------------------------------------------------------------------ training


@pytest.mark.parametrize("cls, config_cls, tiny", CASES)
def test_training_lowers_the_loss_and_is_deterministic(cls, config_cls, tiny, splits, tmp_path):
    train, query = splits
    cfg = config_cls(**tiny)
    spec = DataSpec("pointcloud", num_classes=train.num_classes, num_points=train.data.shape[1])
    log: list = []
    model = cls(cfg, spec)
    model.fit(train, _ctx(tmp_path, seed=3, log=log))
    losses = [m["loss"] for _, m in log]
    assert [e for e, _ in log] == list(range(cfg.epochs)) and all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.2, losses

    qf = model.embed(query)
    assert qf.dtype == np.float32 and qf.shape == (len(query), cfg.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(qf, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(qf, model.embed(query))

    again = cls(cfg, spec)
    log2: list = []
    again.fit(train, _ctx(tmp_path, seed=3, log=log2))
    assert [m["loss"] for _, m in log2] == losses
    np.testing.assert_array_equal(again.embed(query), qf)


def test_refuses_unlabelled_training(splits, tmp_path):
    train, query = splits
    model = DGCNN(DGCNNConfig(**DGCNN_TINY), DataSpec("pointcloud", num_classes=train.num_classes))
    with pytest.raises(ValueError):
        model.fit(query, _ctx(tmp_path))


# ------------------------------------------------------------------------------ end to end


def test_trials_run_end_to_end_on_synth_market(tmp_path):
    from reid_bench.registry import PluginEntry, Registry
    from reid_bench.trial import TrialSpec, execute_trial

    registry = Registry()
    registry._scan()
    models = {"pointnet2-ssg": PointNet2SSG, "pointnet2-msg": PointNet2MSG, "dgcnn": DGCNN}
    for name, obj in models.items():
        registry._entries["models"][name] = PluginEntry("models", name, f"{obj.__module__}:{obj.__name__}", "reid-bench", "test")
        registry._loaded[("models", name)] = obj
    data = {"train_identities": "4", "test_identities": "4", "images_per_identity": "4", "distractors": "2",
            "junk": "0", "num_points": "96"}
    tiny = {"pointnet2-ssg": SSG_TINY, "pointnet2-msg": MSG_TINY, "dgcnn": DGCNN_TINY}
    for name in models:
        model_over = {k: json.dumps(v) if isinstance(v, tuple) else str(v)
                      for k, v in dict(tiny[name], epochs=2, points=32).items()}
        spec = TrialSpec(name, "synth-market", "all", 0, overrides={"model": model_over, "data": data}, device="cpu",
                         work_dir=str(tmp_path / "work"), cache_dir=str(tmp_path / "cache"), threads=1)
        result = execute_trial(spec, registry=registry)
        metrics = result["metrics"]
        assert 0.0 <= metrics["rank1"] <= 1.0 and 0.0 <= metrics["mAP"] <= 1.0, (name, metrics)
