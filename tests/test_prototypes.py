"""The unsupervised prototype learners (plugin folder ``plugins/prototypes``) on small inputs.

The k-reciprocal Jaccard distance is checked against a per-row transcription of the released
algorithm (SimMC ``utils/faiss_rerank.py`` lines 30-123); SimMC's losses against their formulas
computed by hand; its parameter count against the release's variables; and the model runs
through the trial code on the real formats' fixtures and a synthetic protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import trial_context
from reid_bench.api import DataSpec
from reid_bench.layouts import KINECT_V1_20, KINECT_V2_25
from reid_bench_prototypes.clustering import dbscan_labels, jaccard_distance, prototypes, pseudo_labels
from reid_bench_prototypes.simmc import SimMC, SimMCConfig, mic_loss, mpc_loss


def _jaccard_row_by_row(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """The release's loops, one query at a time, written plainly (no sparse algebra)."""
    n = len(x)
    inner = x @ x.T
    sq = np.diag(inner)
    l2 = sq[:, None] + sq[None, :] - 2 * inner
    rank = np.argsort(l2, axis=1, kind="stable")[:, :k1]

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, : k + 1]
        backward = rank[forward, : k + 1]
        return forward[np.any(backward == i, axis=1)]

    v = np.zeros((n, n))
    half = int(np.around(k1 / 2))
    for i in range(n):
        own = reciprocal(i, k1)
        expanded = list(own)
        for c in own:
            theirs = reciprocal(c, half)
            if len(np.intersect1d(theirs, own)) > 2 / 3 * len(theirs):
                expanded.extend(theirs)
        idx = np.unique(np.asarray(expanded, dtype=np.int64))  # empty when i is in no kNN list
        weight = np.exp(-(2 - 2 * inner[i, idx]))
        v[i, idx] = weight / weight.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((n, n))
    for i in range(n):
        shared = np.minimum(v[i][None, :], v).sum(axis=1)
        out[i] = 1 - shared / (2 - shared)
    return np.maximum(out, 0)


@pytest.mark.parametrize("n,k1,k2", [(40, 8, 3), (90, 20, 6), (12, 20, 6), (4, 20, 6), (1, 20, 6)])
def test_jaccard_distance_equals_the_released_loops(n, k1, k2):
    rng = np.random.default_rng(n)
    centres = rng.normal(size=(4, 16))
    x = (centres[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, 16))) * 0.3
    got = jaccard_distance(x, k1, k2)
    np.testing.assert_allclose(got, _jaccard_row_by_row(x, min(k1, n), k2), atol=2e-6)
    assert got.shape == (n, n) and np.allclose(np.diag(got), 0, atol=1e-6)


def test_jaccard_distance_with_tied_distances_equals_the_released_loops():
    """Coordinates on a coarse grid make many neighbours tie; the kNN lists must break ties by
    index as the release's stable argsort does."""
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=(70, 3)) * 2) / 2
    got = jaccard_distance(x, 20, 6)
    np.testing.assert_allclose(got, _jaccard_row_by_row(x, 20, 6), atol=2e-6)


@pytest.mark.parametrize("k2", [1, 3])
def test_items_in_no_knn_list_not_even_their_own_get_zero_encodings_as_in_the_release(k2):
    """An item with k1 exact repeats before it is in no kNN list (ties go by column), so its
    k-reciprocal set is empty; the last rows being such items once raised an IndexError. Grid
    coordinates keep every distance exact, so the ties hold on any CPU."""
    rng = np.random.default_rng(3)
    others = np.round(rng.normal(size=(10, 3)) * 4) / 2
    x = np.concatenate((others, np.repeat([[0.5, -1.0, 1.5]], 14, axis=0)))  # the last 4 repeats: empty
    got = jaccard_distance(x, 10, k2)
    np.testing.assert_allclose(got, _jaccard_row_by_row(x, 10, k2), atol=2e-6)
    labels = dbscan_labels(got, 0.6, 4)
    np.testing.assert_array_equal(pseudo_labels(x, 0.6, 4, 10, k2), labels)  # the fits' path
    if k2 == 1:  # a zero encoding shares nothing: distance 1 to everything, itself included
        np.testing.assert_array_equal(got[-4:], 1.0)
        assert labels[10] >= 0 and (labels[10:20] == labels[10]).all() and (labels[-4:] == -1).all()
    else:  # query expansion gives them their repeats' encodings: one cluster of all 14
        assert labels[10] >= 0 and (labels[10:] == labels[10]).all()


@pytest.mark.parametrize("k", [1, 7, 20, 30])
def test_first_k_of_a_stable_argsort_without_sorting_rows(k):
    """The block-minimum bound must keep every entry of a row's first k, ties at the k-th place
    included and taken by column, for any width of the last block."""
    from reid_bench_prototypes.clustering import _stable_first_k

    rng = np.random.default_rng(k)

    def stable(d):
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    d = np.round(rng.random((50, 30)) * 6).astype(np.float32)  # a handful of values: ties everywhere
    np.testing.assert_array_equal(_stable_first_k(d, k), stable(d))
    np.testing.assert_array_equal(_stable_first_k(d.astype(np.float64), k), stable(d))  # the plain sort
    d[3, 4] = np.nan  # not finite: the plain sort decides, as it did
    np.testing.assert_array_equal(_stable_first_k(d, k), stable(d))
    for trial in range(60):  # ties below, at and across the k-th place, some rows all one value
        n, m = int(rng.integers(1, 60)), int(rng.integers(k + 1, 300))
        if trial % 3 == 0:
            d = np.round(rng.random((n, m)) * rng.integers(1, 8)).astype(np.float32)
        elif trial % 3 == 1:  # negative values, and -0.0 beside 0.0 (equal: they tie by column)
            d = (np.round(rng.normal(size=(n, m)) * 2) / 2).astype(np.float32)
            d[d == 0] = np.where(rng.random(int((d == 0).sum())) < 0.5, np.float32(-0.0), np.float32(0.0))
        else:  # distinct values: the bound is tight
            d = rng.normal(size=(n, m)).astype(np.float32)
        np.testing.assert_array_equal(_stable_first_k(d, k, finite=True), stable(d))


@pytest.mark.parametrize("eps", [0.5, 0.6, 0.75, 0.8, 1 / 3, 0.999, 0.9999999, 1.0, 2.0, 1e-6])
def test_the_neighbour_threshold_on_shared_mass_decides_as_the_distances_do(eps):
    """DBSCAN's neighbours come from S >= a threshold instead of from the transformed distances:
    the two must agree on every float32 S, around the boundary above all (where a value rounded
    the other way would move a pair in or out); eps just below 1 falls back to the transform."""
    from reid_bench_prototypes.clustering import _distances_of_shared, _least_shared_within

    least = _least_shared_within(eps)
    assert (least is None) == (eps == 0.9999999)  # its float32 boundary lies outside the window
    if least is None:
        return
    rng = np.random.default_rng(0)
    around = np.float32(least).view(np.int32) + np.arange(-50_000, 50_000, dtype=np.int32)
    s = torch.from_numpy(np.concatenate((rng.random(200_000, dtype=np.float32) * 1.2, [0.0, 1.0],
                                         around[around >= 0].view(np.float32))).astype(np.float32))
    near = s >= least
    np.testing.assert_array_equal(near.numpy(), (_distances_of_shared(s.clone()) <= eps).numpy())
    assert near.any() and (eps >= 1 or not near.all())


def test_pseudo_labels_refuse_diverged_features():
    from reid_bench_prototypes.clustering import pseudo_labels

    x = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    assert pseudo_labels(x, 0.6, 2).shape == (40,) and len(pseudo_labels(x[:0], 0.6, 2)) == 0
    for bad in (np.nan, np.inf):
        x[5, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            pseudo_labels(x, 0.6, 2)


def test_first_k_over_repeated_columns_orders_every_repeat_by_column():
    """With repeated items, each entry stands for several columns: the first k must be those of
    the stable argsort over all the columns, repeats of one entry and ties across entries
    ordered by column."""
    from reid_bench_prototypes.clustering import _stable_first_k

    rng = np.random.default_rng(11)
    for trial in range(40):
        n, m, k = int(rng.integers(1, 40)), int(rng.integers(2, 120)), int(rng.integers(1, 25))
        d = np.round(rng.random((n, m)) * rng.integers(1, 10)).astype(np.float32)
        columns = rng.integers(0, m, int(rng.integers(max(k, m), 3 * m + k)))
        columns[:m] = rng.permutation(m)  # every entry stands for at least one column
        expected = np.argsort(d[:, columns], axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(_stable_first_k(d, k, finite=True, columns=columns), expected)


def test_repeated_windows_cluster_as_with_every_row_computed(monkeypatch):
    """Repeated rows share one row of the Gram matrix and one kNN list: the distances and the
    labels must be those of the whole computation (the repeats' detection switched off)."""
    from reid_bench_prototypes import clustering

    rng = np.random.default_rng(8)
    base = (rng.normal(size=(9, 24))[rng.integers(0, 9, 120)] + 0.4 * rng.normal(size=(120, 24))).astype(np.float32)
    x = base[rng.integers(0, 120, 300)]  # about 40% repeats
    first, inverse = clustering._distinct_rows(x)
    assert len(first) < 0.85 * len(x) and np.array_equal(x[first][inverse], x)
    got = clustering.jaccard_distance(x), clustering.pseudo_labels(x, 0.6, 2)
    monkeypatch.setattr(clustering, "_distinct_rows", lambda rows: (np.arange(len(rows)), np.arange(len(rows))))
    whole = clustering.jaccard_distance(x), clustering.pseudo_labels(x, 0.6, 2)
    np.testing.assert_allclose(got[0], whole[0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[1], whole[1])
    assert got[1].max() >= 2
    monkeypatch.undo()
    for tiny in (x[:1].repeat(3, axis=0), x[[0, 1, 0, 1, 0]]):  # fewer distinct rows than k1
        expected = _jaccard_row_by_row(tiny.astype(np.float64), len(tiny), 6)
        np.testing.assert_allclose(clustering.jaccard_distance(tiny), expected, atol=2e-6)


def test_the_gram_matrix_padded_for_alignment_is_the_plain_product():
    """From 256 rows the Gram matrix is computed on rows padded to a multiple of 16 (MKL is slower
    on unaligned output rows) and sliced back: it must be the plain product of the rows given
    (bit for bit on the CPUs measured; here to float32 rounding, which other CPUs' kernels may
    order differently), at sizes on both sides of the padding."""
    from reid_bench_prototypes.clustering import _gram

    rng = np.random.default_rng(5)
    for n in (255, 256, 257, 300, 1441):
        x = torch.from_numpy(rng.normal(size=(n, 256)).astype(np.float32))
        got = _gram(x)
        assert got.shape == (n, n)
        torch.testing.assert_close(got, torch.mm(x, x.T), rtol=1e-6, atol=1e-4)


def test_pseudo_labels_on_repeated_windows_equal_dbscan_on_the_released_loops():
    """Class-balanced resampling repeats windows, so many kNN lists tie at distance 0 across the
    k-th place: the fast path (float32, partial sorts) must still give the release's clusters."""
    from reid_bench_prototypes.clustering import pseudo_labels

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 32))
    base = centres[rng.integers(0, 12, 150)] + 0.6 * rng.normal(size=(150, 32))
    x = base[rng.integers(0, 150, 260)].astype(np.float32)  # about 40% of the rows are repeats
    expected = dbscan_labels(_jaccard_row_by_row(x.astype(np.float64), 20, 6), eps=0.6, min_samples=4)
    got = pseudo_labels(x, eps=0.6, min_samples=4)
    assert expected.max() >= 3  # several clusters, not one blob
    np.testing.assert_array_equal(got, expected)


def _release_order_sums(v: np.ndarray, columns_ascending: bool = True) -> np.ndarray:
    """The release's float32 sums of minima (lines 94-101): per query i, its nonzero columns in
    ascending order, each adding the minima with every row holding that column."""
    n = len(v)
    out = np.zeros((n, n), dtype=np.float32)
    holders = [np.flatnonzero(v[:, c]) for c in range(v.shape[1])]
    for i in range(n):
        columns = np.flatnonzero(v[i])
        for c in columns if columns_ascending else columns[::-1]:
            out[i, holders[c]] = out[i, holders[c]] + np.minimum(v[i, c], v[holders[c], c])
    return out


def test_minima_sums_add_in_the_releases_order_bit_for_bit():
    """Each S[i, j] is summed in the release's order, so it equals the release's float32 sum
    exactly; the same terms summed in another order differ somewhere, so the test can tell."""
    from reid_bench_prototypes.clustering import _encodings, _row_starts, _upper_minima_sums

    rng = np.random.default_rng(11)
    centres = rng.normal(size=(6, 24))
    x = (centres[rng.integers(0, 6, 180)] + 0.7 * rng.normal(size=(180, 24))).astype(np.float32)
    v = _encodings(x, 20, 6)
    dense = v.toarray()
    packed = _upper_minima_sums(v).numpy()
    starts = _row_starts(len(x))
    got = np.zeros_like(dense)
    for i in range(len(x)):
        got[i, i:] = packed[starts[i]:starts[i + 1]]
    expected = _release_order_sums(dense)
    upper = np.triu(np.ones_like(got, dtype=bool))
    np.testing.assert_array_equal(got[upper], expected[upper])
    np.testing.assert_array_equal(expected, expected.T)  # the lower half repeats the upper one
    assert not np.array_equal(_release_order_sums(dense, columns_ascending=False)[upper], got[upper])
    d = jaccard_distance(x, 20, 6)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(d[upper], np.maximum(1 - expected / (2 - expected), 0)[upper])


def test_pseudo_labels_of_several_sets_equal_one_call_at_a_time():
    """SimMC's views and Hi-MPC's levels are clustered side by side on the trial's threads; each
    result is the one-at-a-time call's, also with more sets than threads and with eps >= 1 (every
    pair is then a neighbour, the pairs that share nothing included)."""
    from reid_bench_prototypes.clustering import pseudo_labels, pseudo_labels_of

    rng = np.random.default_rng(4)
    sets = []
    for k in range(3):
        centres = rng.normal(size=(5 + k, 16))
        sets.append((centres[rng.integers(0, 5 + k, 220)] + 0.3 * rng.normal(size=(220, 16))).astype(np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for eps, min_samples in ((0.6, 4), (1.0, 4)):
            got = pseudo_labels_of(sets, eps, min_samples)
            expected = [pseudo_labels(x, eps, min_samples) for x in sets]
            assert len(got) == 3 and (eps >= 1 or min(g.max() for g in got) >= 3)
            for g, e, x in zip(got, expected, sets):
                np.testing.assert_array_equal(g, e)
                np.testing.assert_array_equal(g, dbscan_labels(jaccard_distance(x, 20, 6), eps, min_samples))
        assert all(np.all(g == 0) for g in pseudo_labels_of(sets, 1.0, 4))
        assert torch.get_num_threads() == 2  # the workers' shares leave the caller's threads alone
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="eps"):
        pseudo_labels_of(sets, 0.0, 4)


@pytest.mark.parametrize("seed", range(4))
def test_dbscan_labels_equal_scikit_learn_label_for_label(seed):
    """Numbering, border points reached by two clusters, noise and duplicates (distance 0 ties),
    on Euclidean and Jaccard matrices; a non-symmetric matrix goes to scikit-learn itself."""
    from sklearn.cluster import DBSCAN

    rng = np.random.default_rng(seed)
    compared = 0
    for trial in range(40):
        n, dim = int(rng.integers(5, 160)), int(rng.integers(2, 8))
        centres = rng.normal(size=(int(rng.integers(1, 6)), dim))
        x = centres[rng.integers(0, len(centres), n)] + rng.uniform(0.1, 0.8) * rng.normal(size=(n, dim))
        if trial % 3 == 0:
            x = np.round(x * 2) / 2  # repeated points
        if trial % 2:
            dist = jaccard_distance(x, 10, 3).astype(np.float64)
        else:
            dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        if trial % 7 == 0:
            dist = dist * rng.uniform(0.9, 1.1, dist.shape)  # not symmetric
        eps = float(np.quantile(dist, rng.uniform(0.02, 0.3)))
        if eps <= 0:
            continue
        min_samples = int(rng.integers(1, 8))
        expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)
        np.testing.assert_array_equal(dbscan_labels(dist, eps, min_samples), expected, err_msg=f"trial {trial}")
        compared += 1
    assert compared > 30
    dist[0, 1] = np.nan  # refused, as scikit-learn refuses it, rather than read as "not near"
    with pytest.raises(ValueError, match="NaN"):
        dbscan_labels(dist, 0.5, 2)


def test_prototypes_sum_in_sample_order_as_numpys_add_at():
    """The prototypes are float64 sums in sample order (``np.add.at``), then means: equal bit
    for bit, outliers and empty clusters included."""
    rng = np.random.default_rng(8)
    for _ in range(10):
        n, dim = int(rng.integers(1, 400)), int(rng.integers(1, 70))
        x = (rng.normal(size=(n, dim)) * rng.uniform(0.01, 100)).astype(np.float32)
        labels = rng.integers(-1, int(rng.integers(1, 40)), n)
        k = labels.max() + 1 if labels.max() >= 0 else 0
        sums = np.zeros((k, dim))
        np.add.at(sums, labels[labels >= 0], x[labels >= 0])
        expected = (sums / np.maximum(np.bincount(labels[labels >= 0], minlength=k), 1)[:, None]).astype(np.float32)
        np.testing.assert_array_equal(prototypes(x, labels), expected)
    assert prototypes(x, np.full(n, -1)).shape == (0, dim)


def test_dbscan_marks_the_stray_point_and_prototypes_are_cluster_means():
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0, 0, 0]) + 0.02 * rng.normal(size=(10, 4))
    b = np.array([0, 1.0, 0, 0]) + 0.02 * rng.normal(size=(10, 4))
    stray = np.array([[0, 0, 0, 3.0]])
    x = np.concatenate([a, b, stray])
    labels = dbscan_labels(jaccard_distance(x, k1=6, k2=2), eps=0.6, min_samples=2)
    assert labels[-1] == -1
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1 and labels[0] != labels[10]
    protos = prototypes(x, labels)
    np.testing.assert_allclose(protos[labels[0]], a.mean(0), rtol=1e-6)
    np.testing.assert_allclose(protos[labels[10]], b.mean(0), rtol=1e-6)


def test_mpc_and_mic_by_hand():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    protos = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    t = 0.5
    # cosines: sample 0 -> (1, 1/sqrt2), sample 1 -> (0, 1/sqrt2); labels 0 and 1
    c = 1 / np.sqrt(2)
    expected = -0.5 * (np.log(np.exp(1 / t) / (np.exp(1 / t) + np.exp(c / t)))
                       + np.log(np.exp(c / t) / (np.exp(0) + np.exp(c / t))))
    got = mpc_loss(feats, protos, torch.tensor([0, 1]), t)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    u1, u2 = torch.tensor([[1.0, 0.0]], requires_grad=True), torch.tensor([[0.0, 1.0]], requires_grad=True)
    v1, v2 = torch.tensor([[1.0, 1.0]], requires_grad=True), torch.tensor([[1.0, 0.0]], requires_grad=True)
    got = mic_loss(u1, u2, v1, v2)
    assert float(got.detach()) == pytest.approx(-0.5 * (1.0 + c), rel=1e-6)
    got.backward()
    assert u1.grad is not None and v1.grad is None and v2.grad is None  # the targets are stop-gradient


def _spec(layout=KINECT_V1_20, classes: int = 4) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=6)


def test_parameter_count_matches_the_release():
    # SimMC.py 214-236 and 264-265: dense(3J, 256), dense(256, 256), W_pred(256, 256) + biases
    assert SimMC(SimMCConfig(), _spec()).num_parameters() == 147_200
    assert SimMC(SimMCConfig(), _spec(KINECT_V2_25)).num_parameters() == 151_040


def test_masks_drop_whole_frames_and_too_many_are_refused():
    model = SimMC(SimMCConfig(), _spec())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        keep = model._mask(6, gen)
        assert keep.dtype == torch.bool and int(keep.sum()) == 4
    with pytest.raises(ValueError, match="masked_frames=6"):
        SimMC(SimMCConfig(masked_frames=6), _spec())


def test_the_objective_falls_for_fixed_pseudo_labels(tiny_fold):
    """The losses' gradients reach the encoder and predictor: Adam steps on one batch with its
    clusters held fixed lower the SimMC objective."""
    train, _ = tiny_fold
    model = SimMC(SimMCConfig(), _spec())
    x = model._inputs(train.data[:32])
    keep1, keep2 = torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool), torch.tensor([0, 1, 1, 1, 0, 1], dtype=torch.bool)
    labels = torch.as_tensor(np.asarray(train.labels[:32]), dtype=torch.int64)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)

    def objective() -> torch.Tensor:
        v1, v2 = model.net(x, keep1), model.net(x, keep2)
        protos = [torch.stack([v[labels == c].mean(0) for c in range(int(labels.max()) + 1)]).detach() for v in (v1, v2)]
        mpc = mpc_loss(v1, protos[0], labels, 0.08) + mpc_loss(v2, protos[1], labels, 0.08)
        return 0.5 * mic_loss(model.net.predictor(v1), model.net.predictor(v2), v1, v2) + 0.5 * mpc

    first = float(objective().detach())
    for _ in range(30):
        opt.zero_grad()
        objective().backward()
        opt.step()
    assert float(objective().detach()) < first - 0.1


def test_fit_reports_clusters_and_is_seeded(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(epochs=3, batch_size=16, lr=1e-3, eps=0.6)
    log: list = []
    model = SimMC(SimMCConfig(**settings), _spec())
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1, 2]
    assert all(m["clusters"] >= 1 and 0 < m["kept"] <= 1 and np.isfinite(m["loss"]) for _, m in log)
    # measured at 7f50cd6, before the encoder ran on the kept frames only: a faster step must
    # reproduce them to 1e-4
    np.testing.assert_allclose([m["loss"] for _, m in log], [0.61251311, 0.04392863, 0.05132797], rtol=1e-4)
    assert [m["clusters"] for _, m in log] == [4, 3, 4]
    emb = model.embed(test)
    assert emb.shape == (len(test), 256) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = SimMC(SimMCConfig(**settings), _spec())
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)


def test_root_centring_uses_the_pelvis():
    model = SimMC(SimMCConfig(), _spec())
    x = np.random.default_rng(0).normal(size=(2, 6, 20, 3)).astype(np.float32)
    centred = model._inputs(x).numpy().reshape(2, 6, 20, 3)
    hip = KINECT_V1_20.joints.index("HipCenter")
    np.testing.assert_allclose(centred[:, :, hip], 0, atol=1e-6)
    np.testing.assert_allclose(centred[:, :, 3] - centred[:, :, 5], x[:, :, 3] - x[:, :, 5], atol=1e-5)


@pytest.mark.parametrize("protocol,fold", [("ias-retrieval", "A-B"), ("ks20-retrieval", "all"),
                                           ("synth-gait-retrieval", "A-B"), ("ias", "A")])
def test_simmc_runs_retrieval_and_closed_set_protocols(protocol, fold, tmp_path_factory, tmp_path):
    """Retrieval ranks the embedding; closed-set trains the harness probe on top of it."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "prototypes-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=32)
    overrides = {"model": {"epochs": "2", "batch_size": "16", "eps": "0.6"}}
    if protocol.startswith("synth"):
        overrides["data"] = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("simmc", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    metrics = execute_trial(spec)["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")
