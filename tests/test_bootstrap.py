"""The paired bootstrap that tells ties from wins on a board (reid_bench.bootstrap)."""

from __future__ import annotations

import numpy as np

from reid_bench.bootstrap import compare, per_query, query_matrix


def _hits(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(n) < rate).astype(float)


def test_per_query_values_average_to_the_main_score():
    closed = {"per_query": {"true_class_rank": [1, 2, 1, 7, 1]}}
    assert per_query(closed, "rank1").tolist() == [1, 0, 1, 0, 1]
    assert per_query(closed, "rank5").mean() == 0.8
    retrieval = {"per_query": {"first_match_rank": [1, 3], "ap": [1.0, 0.25]}}
    assert per_query(retrieval, "mAP").tolist() == [1.0, 0.25] and per_query(retrieval, "rank1").tolist() == [1, 0]
    assert per_query(retrieval, "nAUC") is None and per_query({}, "rank1") is None
    assert query_matrix([retrieval, {"per_query": {"ap": [0.5]}}], "mAP") is None  # query counts differ


def test_identical_models_tie_and_a_clearly_better_one_does_not():
    rng = np.random.default_rng(0)
    base = np.stack([_hits(0.5, 300, rng) for _ in range(3)])
    better = np.stack([np.maximum(row, _hits(0.6, 300, rng)) for row in base])  # ~80%: never worse per query
    results = compare("board/v1/A", [better, base.copy(), base], top=0, papers=[None, None, None])
    assert results[0]["vs_top"] == {"difference": 0.0, "ci95": [0.0, 0.0], "tied": False}  # the top itself
    worse = results[1]["vs_top"]
    assert worse["difference"] < -20 and worse["ci95"][1] < 0 and not worse["tied"]
    # the two copies of the same model: same queries drawn for both; they tie with each other
    same = compare("board/v1/A", [base, base.copy()], top=0, papers=[None, None])[1]["vs_top"]
    assert same["difference"] == 0.0 and same["tied"] and same["ci95"][0] <= 0.0 <= same["ci95"][1]


def test_a_small_gap_on_few_queries_is_a_tie_and_the_same_gap_on_many_is_not():
    rng = np.random.default_rng(1)

    def pair(n: int):
        top = np.stack([_hits(0.62, n, rng) for _ in range(3)])
        other = np.stack([_hits(0.55, n, rng) for _ in range(3)])
        return compare(f"n{n}", [top, other], top=0, papers=[None, None])[1]["vs_top"]

    assert pair(40)["tied"]  # IAS-sized test sets: a few points are noise
    assert not pair(20000)["tied"]


def test_the_paper_interval_and_determinism():
    rng = np.random.default_rng(2)
    m = np.stack([_hits(0.7, 200, rng) for _ in range(2)])
    first = compare("s", [m], top=0, papers=[70.0])[0]
    assert first["vs_paper"]["consistent"] and first["vs_paper"]["ci95"][0] < 0 < first["vs_paper"]["ci95"][1]
    far = compare("s", [m], top=0, papers=[95.0])[0]["vs_paper"]
    assert not far["consistent"] and far["ci95"][1] < 0
    assert compare("s", [m], top=0, papers=[70.0]) == compare("s", [m], top=0, papers=[70.0])  # byte-stable boards


def test_rows_without_per_query_values_or_with_other_queries_get_nothing():
    rng = np.random.default_rng(3)
    top = np.stack([_hits(0.5, 50, rng)])
    out = compare("s", [top, None, np.stack([_hits(0.5, 49, rng)])], top=0, papers=[None, None, None])
    assert out[1] is None and out[2] is None
    assert compare("s", [None, top], top=0, papers=[None, None]) == [None, None]
