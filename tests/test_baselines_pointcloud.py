"""Point-cloud baselines: CloudHistogram (hand-made) and PointNetLite (learned), on tiny sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from reid_bench.api import DataSpec, TrialContext
from reid_bench.samples import clouds_to_sampleset, label_map
from reid_bench.synthetic.clouds import CloudOptions, generate_clouds

TINY = CloudOptions(train_identities=8, test_identities=12, images_per_identity=5, distractors=4, junk=2, num_points=256)


@pytest.fixture(scope="module")
def splits():
    records = generate_clouds(TINY)
    train_recs = [r for r in records if r.subset == "train"]
    labels = label_map(r.person for r in train_recs)
    train = clouds_to_sampleset(train_recs, labels)
    query = clouds_to_sampleset([r for r in records if r.subset == "query"], labels)
    gallery = clouds_to_sampleset([r for r in records if r.subset == "gallery" and r.person != -1], labels)
    return train, query, gallery


def _ctx(tmp_path: Path, seed: int = 0, log: list | None = None) -> TrialContext:
    def report(epoch, **metrics):
        if log is not None:
            log.append((epoch, metrics))

    return TrialContext(device="cpu", seed=seed, checkpoint_dir=tmp_path / "ckpt", report=report)


def _rank1_map(qf, gf, query, gallery) -> tuple[float, float]:
    from reid_bench.metrics import evaluate_retrieval

    dist = np.sqrt(np.maximum(2.0 - 2.0 * qf @ gf.T, 0.0))
    res = evaluate_retrieval(dist, query.person, gallery.person, query.camera, gallery.camera, max_rank=10)
    return float(res.cmc[0]), float(res.mAP)


def _spec(train) -> DataSpec:
    return DataSpec("pointcloud", num_classes=train.num_classes, num_points=train.data.shape[1])


# -------------------------------------------------------------------------------- CloudHistogram


def test_cloud_hist_features(splits, tmp_path):
    from reid_bench_baselines.cloud_hist import CloudHistogram, CloudHistogramConfig

    train, query, gallery = splits
    model = CloudHistogram(CloudHistogramConfig(), _spec(train))
    assert model.modality == "pointcloud" and model.num_parameters() == 0
    with pytest.raises(RuntimeError):
        model.embed(query)
    model.fit(train, _ctx(tmp_path))
    qf = model.embed(query)
    assert qf.dtype == np.float32 and qf.shape[0] == len(query) and qf.ndim == 2
    assert np.isfinite(qf).all()
    np.testing.assert_allclose(np.linalg.norm(qf, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(qf, model.embed(query))  # nothing random


def test_cloud_hist_beats_chance(splits, tmp_path):
    from reid_bench_baselines.cloud_hist import CloudHistogram, CloudHistogramConfig

    train, query, gallery = splits
    model = CloudHistogram(CloudHistogramConfig(), _spec(train))
    model.fit(train, _ctx(tmp_path))
    r1, mean_ap = _rank1_map(model.embed(query), model.embed(gallery), query, gallery)
    rng = np.random.default_rng(0)
    chance = []
    for _ in range(3):
        qf = rng.standard_normal((len(query), 16))
        gf = rng.standard_normal((len(gallery), 16))
        qf /= np.linalg.norm(qf, axis=1, keepdims=True)
        gf /= np.linalg.norm(gf, axis=1, keepdims=True)
        chance.append(_rank1_map(qf, gf, query, gallery))
    chance_r1, chance_map = np.mean(chance, axis=0)
    assert r1 > 2 * chance_r1 and mean_ap > 2 * chance_map, (r1, mean_ap, chance_r1, chance_map)
    assert r1 < 1.0 or mean_ap < 1.0  # not trivially solved


# -------------------------------------------------------------------------------- PointNetLite

FAST = dict(points=64, epochs=5, batch_size=8, lr=5e-3)


def test_pointnet_lite_learns_and_is_deterministic(splits, tmp_path):
    torch = pytest.importorskip("torch")
    from reid_bench_baselines.pointnet_lite import PointNetLite, PointNetLiteConfig

    train, query, gallery = splits
    cfg = PointNetLiteConfig(**FAST)
    log: list = []
    model = PointNetLite(cfg, _spec(train))
    model.fit(train, _ctx(tmp_path, seed=3, log=log))
    losses = [m["loss"] for _, m in log]
    assert [e for e, _ in log] == list(range(cfg.epochs))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.3, losses

    qf = model.embed(query)
    assert qf.dtype == np.float32 and qf.shape == (len(query), cfg.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(qf, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(qf, model.embed(query))  # eval mode, evenly spaced points

    again = PointNetLite(cfg, _spec(train))
    log2: list = []
    again.fit(train, _ctx(tmp_path, seed=3, log=log2))
    assert [m["loss"] for _, m in log2] == losses
    np.testing.assert_array_equal(again.embed(query), qf)

    other = PointNetLite(cfg, _spec(train))
    other.fit(train, _ctx(tmp_path, seed=4))
    assert not np.array_equal(other.embed(query), qf)

    # the identity classifier is not part of the counted embedding network
    total = sum(p.numel() for p in model.net.parameters())
    head = sum(p.numel() for p in model.net.classifier.parameters())
    assert model.num_parameters() == total - head > 0
    assert torch.is_tensor(next(model.net.parameters()))


def test_pointnet_lite_refuses_unlabelled_training(splits, tmp_path):
    pytest.importorskip("torch")
    from reid_bench_baselines.pointnet_lite import PointNetLite, PointNetLiteConfig

    train, query, _ = splits
    bad = dataclasses.replace(query)  # query labels are -1 (identities unseen in training)
    with pytest.raises(ValueError):
        PointNetLite(PointNetLiteConfig(**FAST), _spec(train)).fit(bad, _ctx(tmp_path))


# -------------------------------------------------------------------------------- shared input pipeline


def test_cloud_training_train_batch_is_seeded_and_augments_within_bounds(splits):
    import torch

    from reid_bench_baselines.cloud_training import test_batches, train_batch
    from reid_bench_baselines.pointnet_lite import PointNetLiteConfig

    train = splits[0]
    data = np.asarray(train.data, dtype=np.float32)[..., :6]
    idx = torch.arange(6)
    plain = PointNetLiteConfig(points=64, flip=False, scale_min=1.0, scale_max=1.0, jitter=0.0, colour_jitter=0.0)
    a = train_batch(plain, data, idx, torch.Generator().manual_seed(3))
    b = train_batch(plain, data, idx, torch.Generator().manual_seed(3))
    assert a.shape == (6, 6, 64) and torch.equal(a, b)
    assert torch.allclose(a[:, :3].mean(2), torch.zeros(6, 3), atol=1e-5)  # xyz centred per subset
    assert float(a[:, 3:].min()) >= -0.5 and float(a[:, 3:].max()) <= 0.5  # rgb - 0.5
    # points come from the cloud: every subset point is one of the cloud's points
    cloud0 = torch.from_numpy(data[0, :, 3:6]) - 0.5
    assert all(bool((cloud0 == p).all(1).any()) for p in a[0, 3:].T[:10])

    aug = dataclasses.replace(plain, flip=True, scale_min=0.75, scale_max=1.33, jitter=0.01)
    c = train_batch(aug, data, idx, torch.Generator().manual_seed(3))
    assert torch.equal(c[:, 3:], a[:, 3:])  # same subset (same first draws), colours untouched
    ratio = c[:, :3].abs().amax(2) / a[:, :3].abs().amax(2).clamp_min(1e-6)
    assert float(ratio.min()) > 0.7 and float(ratio.max()) < 1.4

    t1 = torch.cat(list(test_batches(dataclasses.replace(plain, embed_batch=4), data)))
    t2 = torch.cat(list(test_batches(dataclasses.replace(plain, embed_batch=64), data)))
    assert t1.shape == (len(data), 6, 64) and torch.equal(t1, t2)


def test_shared_training_loop_reports_validation_accuracy_and_learning_rate(splits, tmp_path):
    from reid_bench_baselines.pointnet_lite import PointNetLite, PointNetLiteConfig

    train = splits[0]
    log: list = []
    ctx = _ctx(tmp_path, log=log)
    ctx.validation = train  # labelled: accuracy on it is reported every epoch
    cfg = PointNetLiteConfig(points=64, epochs=3, batch_size=8)
    PointNetLite(cfg, _spec(train)).fit(train, ctx)
    assert [e for e, _ in log] == [0, 1, 2]
    assert all(0.0 <= m["val_acc"] <= 1.0 and m["lr"] > 0 for _, m in log)
    assert log[-1][1]["lr"] < log[0][1]["lr"]  # one-cycle schedule: annealed by the last epoch
