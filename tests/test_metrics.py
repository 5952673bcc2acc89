"""Tests for reid_bench.metrics: hand-worked cases plus a plain-loop reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from reid_bench.metrics import closed_set_metrics, cmc_auc, evaluate_retrieval, roc_auc_micro

# ---------------------------------------------------------------------------
# reference: one query at a time, Market-1501 rules, stable argsort
# ---------------------------------------------------------------------------


def loop_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, filter_same_camera=True):
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    cmcs, aps, inps, trapz = [], [], [], 0.0
    for i in range(num_q):
        order = np.argsort(distmat[i], kind="stable")
        is_match = g_pids[order] == q_pids[i]
        if filter_same_camera:
            is_junk = is_match & (g_camids[order] == q_camids[i])
        else:
            is_junk = np.zeros(num_g, dtype=bool)
        hit = is_match[~is_junk]
        if hit.sum() == 0:
            continue
        # precision at every hit, and the rank of the last (hardest) hit
        n_hits = np.cumsum(hit)
        hit_ranks = np.flatnonzero(hit) + 1
        aps.append(float(np.mean(n_hits[hit_ranks - 1] / hit_ranks)))
        inps.append(hit.sum() / hit_ranks[-1])
        for i, r in enumerate(hit_ranks - 1):  # OG-Net's evaluate_gpu.py, 0-based rank r
            old = 1.0 if r == 0 else i / r
            trapz += (old + (i + 1) / (r + 1)) / 2 / len(hit_ranks)
        curve = (n_hits > 0).astype(np.float64)
        curve = np.concatenate([curve, np.ones(max(0, max_rank - curve.size))])
        cmcs.append(curve[:max_rank])
    if not aps:
        return None
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps), trapz / num_q


def random_problem(rng, kind):
    num_q = int(rng.integers(1, 40))
    num_g = int(rng.integers(5, 250))
    q_pids = rng.integers(0, 8, num_q)
    g_pids = rng.integers(0, 12, num_g)  # ids 8..11 are distractors (never queried)
    q_cams = rng.integers(0, 3, num_q)
    g_cams = rng.integers(0, 3, num_g)  # same pid + same cam -> junk
    same = q_pids[:, None] == g_pids[None, :]
    noise = rng.random((num_q, num_g))
    if kind == "continuous":
        d = noise
    elif kind == "ties":  # integer distances: ties everywhere
        d = rng.integers(0, 6, (num_q, num_g)).astype(np.float64)
    elif kind == "few_ties":
        d = np.round(noise, 2)
    elif kind == "structured":  # matches tend to be near, like a trained model
        d = noise + ~same * rng.random((num_q, num_g)) * 3
    else:  # structured and integer-valued
        d = np.round(3 * (noise + ~same * rng.random((num_q, num_g)) * 3))
    return d, q_pids, g_pids, q_cams, g_cams


# ---------------------------------------------------------------------------
# evaluate_retrieval: hand-worked cases
# ---------------------------------------------------------------------------

# gallery index:   0    1    2    3    4
G_PIDS = np.array([1, 2, 1, 3, 1])
G_CAMS = np.array([0, 1, 1, 0, 0])
# query A: pid 1 cam 0, query B: pid 1 cam 1, query C: pid 4 (not in gallery)
Q_PIDS = np.array([1, 1, 4])
Q_CAMS = np.array([0, 1, 0])
DIST = np.array(
    [
        [0.1, 0.2, 0.3, 0.4, 0.5],  # A: order 0 1 2 3 4
        [0.1, 0.2, 0.05, 0.3, 0.4],  # B: order 2 0 1 3 4
        [0.3, 0.1, 0.2, 0.5, 0.4],  # C: skipped either way
    ]
)


def test_hand_case_with_camera_filter():
    # A: junk = 0 and 4 (pid 1, cam 0). Kept ranking 1 2 3 -> hits [0 1 0].
    #    first hit at rank 2; AP = (1/2)/1 = 0.5; INP = 1 hit / rank 2 = 0.5.
    #    Only 3 kept items, so its CMC [0 1 1] is padded to [0 1 1 1 1].
    # B: junk = 2 (pid 1, cam 1). Kept ranking 0 1 3 4 -> hits [1 0 0 1].
    #    AP = (1/1 + 2/4)/2 = 0.75; INP = 2 hits / rank 4 = 0.5; CMC all ones.
    # C: no pid 4 in the gallery -> skipped, still counted in num_queries.
    res = evaluate_retrieval(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    np.testing.assert_allclose(res.cmc, [0.5, 1, 1, 1, 1])
    assert res.mAP == pytest.approx((0.5 + 0.75) / 2)
    assert res.mINP == pytest.approx(0.5)
    assert res.num_valid_queries == 2
    assert res.num_queries == 3
    assert res.rank(1) == pytest.approx(0.5)
    # trapezoid AP (OG-Net): A: hit at rank 2: (0/1 + 1/2) / 2 = 0.25; B: (1 + 1) / 2 and
    # (1/3 + 2/4) / 2, mean 0.7083; C counts as 0 over the 3 queries
    assert res.as_dict() == pytest.approx(
        {"rank1": 0.5, "rank5": 1.0, "mAP": 0.625, "mINP": 0.5, "map_trapz": (0.25 + (1 + 5 / 12) / 2) / 3,
         "num_valid_queries": 2}
    )
    assert res.cmc.dtype == np.float64


def test_hand_case_without_camera_filter():
    # A: ranking 0 1 2 3 4 -> hits [1 0 1 0 1]: AP = (1/1 + 2/3 + 3/5)/3 = 34/45, INP = 3/5
    # B: ranking 2 0 1 3 4 -> hits [1 1 0 0 1]: AP = (1/1 + 2/2 + 3/5)/3 = 39/45, INP = 3/5
    res = evaluate_retrieval(
        DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3, filter_same_camera=False
    )
    np.testing.assert_allclose(res.cmc, [1, 1, 1])
    assert res.mAP == pytest.approx((34 / 45 + 39 / 45) / 2)
    assert res.mINP == pytest.approx(0.6)
    assert res.num_valid_queries == 2


def test_ties_are_broken_by_gallery_index():
    # Distances [0, 0, 5]: the stable order is 0 1 2 whatever the pids.
    d = np.array([[0.0, 0.0, 5.0]])
    miss_first = evaluate_retrieval(d, [7], [2, 7, 3], [0], [1, 1, 1], max_rank=3)
    np.testing.assert_allclose(miss_first.cmc, [0, 1, 1])  # match is 2nd
    assert miss_first.mAP == pytest.approx(0.5)
    hit_first = evaluate_retrieval(d, [7], [7, 2, 3], [0], [1, 1, 1], max_rank=3)
    np.testing.assert_allclose(hit_first.cmc, [1, 1, 1])
    # Distances [1, 1, 0] with matches at 1 and 2: order 2 0 1 -> hits [1 0 1]
    # AP = (1 + 2/3)/2 = 5/6, INP = 2/3
    res = evaluate_retrieval(np.array([[1, 1, 0]]), [1], [2, 1, 1], [0], [1, 1, 1], max_rank=3)
    assert res.mAP == pytest.approx(5 / 6)
    assert res.mINP == pytest.approx(2 / 3)


def test_junk_before_the_match_does_not_cost_rank():
    # Gallery 0 is the same person in the same camera (junk) and ranked first;
    # gallery 1 is the same person in another camera. After removal the match
    # is Rank-1 and AP = INP = 1.
    res = evaluate_retrieval(np.array([[0.1, 0.2, 0.3]]), [5], [5, 5, 6], [0], [0, 1, 1], max_rank=2)
    np.testing.assert_allclose(res.cmc, [1, 1])
    assert res.mAP == pytest.approx(1.0)
    assert res.mINP == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# evaluate_retrieval: agreement with the loop reference
# ---------------------------------------------------------------------------


KINDS = ["continuous", "ties", "few_ties", "structured", "structured_ties"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.filterwarnings("ignore:max_rank")
def test_matches_loop_reference(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    checked = 0
    for _ in range(15):
        d, qp, gp, qc, gc = random_problem(rng, kind)
        d = d.astype(rng.choice([np.float32, np.float64]))
        filt = bool(rng.integers(0, 2))
        max_rank = int(rng.integers(1, 20))  # may exceed G: then reduced (warning)
        ref = loop_reference(d, qp, gp, qc, gc, max_rank, filt)
        if ref is None:
            continue
        checked += 1
        for chunk in (1, 7, 10_000):
            res = evaluate_retrieval(
                d, qp, gp, qc, gc, max_rank=max_rank, filter_same_camera=filt, chunk_size=chunk
            )
            np.testing.assert_allclose(res.cmc, ref[0], atol=1e-6, rtol=0)
            assert res.mAP == pytest.approx(ref[1], abs=1e-6)
            assert res.mINP == pytest.approx(ref[2], abs=1e-6)
            assert res.map_trapz == pytest.approx(ref[4], abs=1e-6)
            assert res.num_valid_queries == ref[3]
            assert res.num_queries == len(qp)
    assert checked >= 8


def problem_with_a_valid_query(rng, kind):
    """A random problem in which at least one query keeps a true match."""
    while True:
        problem = random_problem(rng, kind)
        if loop_reference(*problem, 10) is not None:
            return problem


def test_torch_inputs_match_numpy_inputs():
    d, qp, gp, qc, gc = problem_with_a_valid_query(np.random.default_rng(3), "structured")
    threads = torch.get_num_threads()
    a = evaluate_retrieval(d, qp, gp, qc, gc, max_rank=5)
    b = evaluate_retrieval(
        torch.from_numpy(d).float(),
        torch.from_numpy(qp),
        torch.from_numpy(gp),
        torch.from_numpy(qc),
        torch.from_numpy(gc),
        max_rank=5,
        chunk_size=3,
    )
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12)
    assert torch.get_num_threads() == threads  # CPU path restores the thread count
    assert a.mAP == pytest.approx(b.mAP, abs=1e-6)
    assert a.mINP == pytest.approx(b.mINP, abs=1e-6)


def test_worker_threads_do_not_change_results():
    d, qp, gp, qc, gc = problem_with_a_valid_query(np.random.default_rng(5), "structured_ties")
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):  # blocks of 2 queries in one thread, then spread over three
            torch.set_num_threads(n)
            results.append(evaluate_retrieval(d, qp, gp, qc, gc, max_rank=5, chunk_size=2))
    finally:
        torch.set_num_threads(threads)
    a, b = results
    np.testing.assert_array_equal(a.cmc, b.cmc)
    np.testing.assert_array_equal(a.query_ap, b.query_ap)
    assert (a.mAP, a.mINP, a.map_trapz) == (b.mAP, b.mINP, b.map_trapz)


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_candidate_sort_equals_whole_row_sort(kind):
    """The CPU path (sort only each row's candidates) agrees with the GPU path (sort whole rows)."""
    from reid_bench.metrics import _count_below

    rng = np.random.default_rng(7)
    d = torch.from_numpy(rng.integers(0, 9, (6, 40)).astype(np.float32) if kind == "ties" else rng.random((6, 40)))
    t = d.gather(1, torch.from_numpy(rng.integers(0, 40, (6, 5))))
    t_max = t.max(1).values
    t_max[2] = -math.inf  # a query without candidates
    placed = t <= t_max[:, None]
    cpu_lt, cpu_le = _count_below(d, t, t_max, compact=True)
    all_lt, all_le = _count_below(d, t, t_max, compact=False)
    assert placed.sum() > 10
    assert torch.equal(cpu_lt[placed], all_lt[placed]) and torch.equal(cpu_le[placed], all_le[placed])
    brute_lt = (d[:, None, :] < t[:, :, None]).sum(-1)
    assert torch.equal(all_lt, brute_lt)


def test_infinite_and_half_precision_distances():
    rng = np.random.default_rng(11)
    for _ in range(10):
        d, qp, gp, qc, gc = random_problem(rng, "structured_ties")
        u = rng.random(d.shape)
        d[u < 0.1], d[u > 0.95] = np.inf, -np.inf
        d = d.astype(np.float16)
        ref = loop_reference(d, qp, gp, qc, gc, 5)
        if ref is None:
            continue
        res = evaluate_retrieval(d, qp, gp, qc, gc, max_rank=5, chunk_size=4)
        np.testing.assert_allclose(res.cmc, ref[0], atol=1e-6, rtol=0)
        assert res.mAP == pytest.approx(ref[1], abs=1e-6)
        assert res.mINP == pytest.approx(ref[2], abs=1e-6)


def test_read_only_numpy_and_integer_distmat():
    d = np.array([[3, 1, 2]], dtype=np.int64)
    d.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning either
        res = evaluate_retrieval(d, [1], [1, 2, 1], [0], [1, 1, 1], max_rank=3)
    # order 1 2 0 -> hits [0 1 1]: AP = (1/2 + 2/3)/2
    assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_max_rank_larger_than_gallery_is_reduced():
    with pytest.warns(UserWarning, match="max_rank"):
        res = evaluate_retrieval(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=50)
    assert len(res.cmc) == 5
    assert "rank10" not in res.as_dict()
    with pytest.raises(ValueError):
        res.rank(6)


def test_all_queries_invalid_raises():
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_retrieval(np.zeros((2, 3)), [1, 2], [3, 4, 5], [0, 0], [1, 1, 1], max_rank=3)
    # the only match is junk -> still nothing valid
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_retrieval(np.zeros((1, 2)), [1], [1, 2], [0], [0, 1], max_rank=2)


@pytest.mark.parametrize(
    "args",
    [
        (np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [0, 0, 0]),  # q_pids too short
        (np.zeros((2, 3)), [1, 2], [1, 2], [0, 0], [0, 0, 0]),  # g_pids too short
        (np.zeros((2, 3)), [1, 2], [1, 2, 3], [0, 0, 0], [0, 0, 0]),  # q_camids
        (np.zeros((2, 3)), [1, 2], [1, 2, 3], [0, 0], [0, 0]),  # g_camids
        (np.zeros(3), [1], [1, 2, 3], [0], [0, 0, 0]),  # not 2-D
        (np.zeros((0, 3)), [], [1, 2, 3], [], [0, 0, 0]),  # empty
    ],
)
def test_bad_shapes_raise(args):
    with pytest.raises(ValueError):
        evaluate_retrieval(*args)


def test_nan_raises():
    d = np.array([[0.1, np.nan]])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_retrieval(d, [1], [1, 2], [0], [1, 1], max_rank=2)


# ---------------------------------------------------------------------------
# cmc_auc / roc_auc_micro
# ---------------------------------------------------------------------------


def test_cmc_auc_is_mean_of_cmc():
    assert cmc_auc([0.5, 0.75, 1.0, 1.0]) == pytest.approx(3.25 / 4)
    with pytest.raises(ValueError):
        cmc_auc([])


def test_roc_auc_micro_hand_case_with_tie():
    # pooled (score, positive?): (0.8, y) (0.2, n) (0.5, n) (0.5, y)
    # positive-vs-negative pairs: 0.8>0.2, 0.8>0.5, 0.5>0.2 win; 0.5=0.5 half
    # AUC = 3.5 / 4
    assert roc_auc_micro([[0.8, 0.2], [0.5, 0.5]], [0, 1]) == pytest.approx(0.875)


def test_roc_auc_micro_equals_pairwise_probability():
    rng = np.random.default_rng(5)
    for _ in range(5):
        n, c = int(rng.integers(2, 30)), int(rng.integers(2, 6))
        scores = np.round(rng.random((n, c)), 1)  # coarse -> many ties
        labels = rng.integers(0, c, n)
        onehot = np.zeros((n, c), dtype=bool)
        onehot[np.arange(n), labels] = True
        pos, neg = scores[onehot], scores[~onehot]
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert roc_auc_micro(scores, labels) == pytest.approx(wins / (pos.size * neg.size))


def test_roc_auc_micro_rejects_bad_input():
    with pytest.raises(ValueError):
        roc_auc_micro([[0.1, 0.2]], [2])  # label out of range
    with pytest.raises(ValueError):
        roc_auc_micro([[0.1, 0.2]], [0, 1])  # length mismatch


# ---------------------------------------------------------------------------
# closed_set_metrics
# ---------------------------------------------------------------------------


def test_closed_set_hand_case():
    scores = np.array(
        [
            [0.7, 0.2, 0.1],  # label 0 -> rank 1
            [0.5, 0.3, 0.2],  # label 1 -> rank 2
            [0.4, 0.4, 0.2],  # label 1 -> tied with class 0 (lower index) -> rank 2
            [0.1, 0.3, 0.6],  # label 0 -> rank 3
        ]
    )
    labels = np.array([0, 1, 1, 0])
    res = closed_set_metrics(scores, labels)
    # ranks 1 2 2 3 -> CMC [1/4, 3/4, 1]; nAUC = (0.25 + 0.75 + 1)/3
    np.testing.assert_allclose(res.cmc, [0.25, 0.75, 1.0])
    assert res.rank1 == pytest.approx(0.25)
    assert res.rank5 == 1.0 and res.rank10 == 1.0  # fewer than 5 classes
    assert res.nAUC == pytest.approx(2 / 3)
    assert res.roc_auc_micro == pytest.approx(roc_auc_micro(scores, labels))
    assert res.sequence_accuracy is None
    assert res.num_windows == 4
    assert set(res.as_dict()) == {"rank1", "rank5", "rank10", "nAUC", "roc_auc_micro", "sequence_accuracy"}


def test_closed_set_tie_favours_lower_class_index():
    res = closed_set_metrics([[0.4, 0.4, 0.2]], [0])
    assert res.rank1 == 1.0


def test_sequence_averaging_fixes_a_wrong_window():
    scores = np.array(
        [
            [0.4, 0.6],  # seq "a", label 0: wrong window
            [0.9, 0.1],  # seq "a": right, and the mean [0.65, 0.35] is right
            [0.3, 0.7],  # seq "b", label 1: right
        ]
    )
    res = closed_set_metrics(scores, [0, 0, 1], sequence_ids=["a", "a", "b"])
    assert res.rank1 == pytest.approx(2 / 3)
    assert res.sequence_accuracy == pytest.approx(1.0)
    assert res.num_sequences == 2


def test_inconsistent_sequence_labels_raise():
    with pytest.raises(ValueError, match="seq7"):
        closed_set_metrics([[0.4, 0.6], [0.9, 0.1]], [0, 1], sequence_ids=["seq7", "seq7"])
