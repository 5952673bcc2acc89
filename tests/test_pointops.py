"""Point operations against brute-force references on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_bench import pointops


def _cloud(b=2, n=50, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, c, generator=g)


def test_square_distance_matches_cdist():
    a, r = _cloud(2, 7, 5, 1), _cloud(2, 11, 5, 2)
    ref = torch.cdist(a.double(), r.double()).pow(2)
    assert torch.allclose(pointops.square_distance(a, r).double(), ref, atol=1e-5)


@pytest.mark.parametrize("chunk, method", [(1024, "brute"), (7, "brute"), (1024, "kdtree"), (7, "auto")])
def test_knn_brute_force(chunk, method):
    x = _cloud(2, 40, 3, 3)
    idx = pointops.knn(x, x, 5, chunk=chunk, method=method)
    assert idx.shape == (2, 40, 5) and idx.dtype == torch.long
    for bi in range(2):
        d = ((x[bi, :, None] - x[bi, None]) ** 2).sum(-1).numpy()
        for i in range(40):
            expect = np.argsort(d[i], kind="stable")[:5]
            assert idx[bi, i, 0] == i  # itself first
            np.testing.assert_allclose(np.sort(d[i, idx[bi, i].numpy()]), d[i, expect], atol=1e-6)
            assert np.all(np.diff(d[i, idx[bi, i].numpy()]) >= -1e-6)  # nearest first


@pytest.mark.parametrize("method", ["brute", "kdtree"])
def test_knn_query_differs_from_ref(method):
    q, r = _cloud(1, 9, 3, 4), _cloud(1, 30, 3, 5)
    idx = pointops.knn(q, r, 3, chunk=4, method=method)
    d = torch.cdist(q, r)
    assert torch.equal(idx, d.topk(3, largest=False).indices)


def test_knn_takes_the_kdtree_for_xyz_on_cpu_and_distances_for_features(monkeypatch):
    calls = []
    real = pointops.square_distance
    monkeypatch.setattr(pointops, "square_distance", lambda a, b: calls.append(a.shape) or real(a, b))
    xyz, feats = _cloud(2, 64, 3, 6), _cloud(2, 64, 8, 7)
    tree = pointops.knn(xyz, xyz, 6)
    assert calls == []  # no distance matrix for 3-D points on CPU
    assert torch.equal(tree, pointops.knn(xyz, xyz, 6, method="brute"))
    calls.clear()
    pointops.knn(feats, feats, 6)
    assert calls == [(2, 64, 8)]  # features: the distances
    with pytest.raises(ValueError, match="method must be auto, brute or kdtree"):
        pointops.knn(xyz, xyz, 6, method="ball")


def _fps_reference(pts: np.ndarray, m: int, start: int) -> list[int]:
    chosen = [start]
    dist = np.full(len(pts), np.inf)
    for _ in range(m - 1):
        dist = np.minimum(dist, ((pts - pts[chosen[-1]]) ** 2).sum(-1))
        chosen.append(int(dist.argmax()))
    return chosen


def test_farthest_point_sample_reference():
    x = _cloud(3, 60, 3, 6)
    idx = pointops.farthest_point_sample(x, 12)
    assert idx.shape == (3, 12)
    for bi in range(3):
        assert idx[bi].tolist() == _fps_reference(x[bi].numpy(), 12, 0)
        assert len(set(idx[bi].tolist())) == 12


def test_farthest_point_sample_random_start_is_seeded():
    x = _cloud(4, 60, 3, 7)
    a = pointops.farthest_point_sample(x, 8, torch.Generator().manual_seed(1))
    b = pointops.farthest_point_sample(x, 8, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    for bi in range(4):
        assert a[bi].tolist() == _fps_reference(x[bi].numpy(), 8, int(a[bi, 0]))


def test_gather_shapes_and_values():
    x = _cloud(2, 10, 4, 8)
    idx = torch.randint(0, 10, (2, 3, 5))
    out = pointops.gather(x, idx)
    assert out.shape == (2, 3, 5, 4)
    assert torch.equal(out[1, 2, 4], x[1, idx[1, 2, 4]])
    assert pointops.gather(x, idx[:, 0]).shape == (2, 5, 4)


def test_ball_query_reference():
    x = _cloud(2, 80, 3, 9)
    q = x[:, :20]
    radius, k = 0.2, 6
    idx = pointops.ball_query(q, x, radius, k, chunk=7)
    assert idx.shape == (2, 20, 6)
    for bi in range(2):
        d = ((q[bi, :, None] - x[bi, None]) ** 2).sum(-1).numpy()
        for i in range(20):
            inside = np.nonzero(d[i] <= radius**2)[0][:k].tolist()
            expect = inside + [inside[0]] * (k - len(inside))
            assert idx[bi, i].tolist() == expect


def test_ball_query_empty_ball_takes_nearest():
    r = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]])
    q = torch.tensor([[[1.9, 0.0, 0.0]]])
    assert pointops.ball_query(q, r, 0.05, 4).tolist() == [[[2, 2, 2, 2]]]
    # k larger than the cloud pads with the first hit
    assert pointops.ball_query(q, r, 5.0, 5).tolist() == [[[0, 1, 2, 0, 0]]]


def test_ball_query_multi_computes_distances_once_for_every_radius(monkeypatch):
    x = _cloud(2, 80, 3, 11)
    q = x[:, :20]
    radii, ks = (0.1, 0.2, 0.4), (4, 8, 100)  # the last asks for more points than the cloud has
    separate = [pointops.ball_query(q, x, r, k, chunk=7) for r, k in zip(radii, ks)]
    calls = []
    real = pointops.square_distance
    monkeypatch.setattr(pointops, "square_distance", lambda a, b: calls.append(a.shape[1]) or real(a, b))
    together = pointops.ball_query_multi(q, x, radii, ks, chunk=7)
    assert calls == [7, 7, 6]  # one distance block per chunk of queries, shared by the three radii
    assert [t.shape for t in together] == [(2, 20, 4), (2, 20, 8), (2, 20, 100)]
    for a, b in zip(together, separate):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="3 radii but 2 sizes"):
        pointops.ball_query_multi(q, x, radii, ks[:2])


def test_edge_features():
    x = _cloud(2, 12, 3, 10)
    idx = pointops.knn(x, x, 4)
    e = pointops.edge_features(x, idx)
    assert e.shape == (2, 12, 4, 6)
    b, i, j = 1, 5, 2
    assert torch.allclose(e[b, i, j, :3], x[b, idx[b, i, j]] - x[b, i])
    assert torch.allclose(e[b, i, j, 3:], x[b, i])
    assert torch.allclose(e[..., 0, :3], torch.zeros(()))  # first neighbour is the point itself


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = _cloud(2, 300, 3, 11)
    xc = x.cuda()
    assert torch.equal(pointops.knn(xc, xc, 8, chunk=64).cpu(), pointops.knn(x, x, 8, chunk=64, method="brute"))
    assert torch.equal(pointops.farthest_point_sample(xc, 20).cpu(), pointops.farthest_point_sample(x, 20))
    assert torch.equal(pointops.ball_query(xc[:, :50], xc, 0.2, 8).cpu(), pointops.ball_query(x[:, :50], x, 0.2, 8))


def test_even_index_spreads_over_the_cloud_and_keeps_small_clouds_whole():
    from reid_bench.pointops import even_index

    idx = even_index(4096, 1024)
    assert len(idx) == 1024 and idx[0] == 0 and idx[-1] == 4092
    assert np.all(np.diff(idx) == 4)
    assert np.array_equal(even_index(100, 256), np.arange(100))
    assert len(np.unique(even_index(1000, 300))) == 300


def test_even_index_can_repeat_points_to_a_fixed_size():
    from reid_bench.pointops import even_index

    idx = even_index(5, 12, repeat=True)
    assert len(idx) == 12 and set(idx.tolist()) == set(range(5)) and np.all(np.diff(idx) >= 0)
    assert np.array_equal(even_index(4096, 1024, repeat=True), even_index(4096, 1024))
