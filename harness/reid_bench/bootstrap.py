"""Ties told from wins: a paired bootstrap over test queries (and seeds) for a board's rows.

On the small test sets of this field (IAS: 28 test sequences) a few points of Rank-1 are noise.
For each row, the difference of its main score to the top row's is resampled: the test queries
are drawn with replacement once per resample and shared by both rows (the pairing: both are
scored on the same queries), and each row's seeds are drawn with replacement on their own (seeds
of two models share nothing). A row whose 95% percentile interval contains zero is tied with the
top. The same resamples give an interval for the row's score minus its published value.

Only main scores that are means over queries can be resampled this way (Rank-k: the share of
queries whose first true match / true class is within rank k; mAP: the mean of per-query APs);
for others (nAUC) nothing is computed. Fixed seeds make the intervals, and so the boards,
byte-identical from the same results.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from reid_bench.modes import metric

RESAMPLES = 2000


def per_query(trial: dict[str, Any], main_score: str) -> np.ndarray | None:
    """The per-query values whose mean is the trial's main score, or None."""
    spec = metric(main_score)
    if spec is None or spec.per_query is None:
        return None
    return spec.per_query(trial.get("per_query") or {})


def query_matrix(trials: list[dict[str, Any]], main_score: str) -> np.ndarray | None:
    """[seeds, queries] of one row, or None when a trial lacks per-query values or they differ in count."""
    rows = [per_query(t, main_score) for t in trials]
    if not rows or any(r is None for r in rows) or len({len(r) for r in rows}) != 1 or len(rows[0]) == 0:
        return None
    return np.stack(rows)


def _row_scores(matrix: np.ndarray, queries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The row's score in each resample: the mean over drawn seeds of the mean over drawn queries."""
    per_seed = matrix[:, queries].mean(axis=2)  # [seeds, resamples]
    seeds = rng.integers(0, matrix.shape[0], size=(queries.shape[0], matrix.shape[0]))  # [resamples, seeds]
    return np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)


def interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def compare(section: str, matrices: list[np.ndarray | None], top: int, papers: list[float | None],
            resamples: int = RESAMPLES) -> list[dict[str, Any] | None]:
    """For each row (None where it has no matrix): its difference to row ``top`` and to its paper
    value (points, i.e. x 100), each with a 95% interval, and whether it ties with the top.

    ``section`` seeds the generator (protocol, version, fold), so the result depends only on the data.
    Rows must share the query count of the top row to be paired with it."""
    out: list[dict[str, Any] | None] = [None] * len(matrices)
    ref = matrices[top] if 0 <= top < len(matrices) else None
    if ref is None:
        return out
    n_queries = ref.shape[1]
    rng = np.random.default_rng([resamples, zlib.crc32(section.encode())])
    queries = rng.integers(0, n_queries, size=(resamples, n_queries))
    scores: list[np.ndarray | None] = []
    for m in matrices:  # in row order, each row its own seed draws
        scores.append(_row_scores(m, queries, rng) if m is not None and m.shape[1] == n_queries else None)
    for i, (m, s) in enumerate(zip(matrices, scores)):
        if s is None:
            continue
        point = 100.0 * (m.mean() - ref.mean())
        lo, hi = interval(100.0 * (s - scores[top]))
        entry: dict[str, Any] = {"vs_top": {"difference": round(point, 4), "ci95": [round(lo, 4), round(hi, 4)],
                                            "tied": bool(i != top and lo <= 0.0 <= hi)}}
        if papers[i] is not None:
            plo, phi = interval(100.0 * s - papers[i])
            entry["vs_paper"] = {"difference": round(100.0 * m.mean() - papers[i], 4),
                                 "ci95": [round(plo, 4), round(phi, 4)], "consistent": bool(plo <= 0.0 <= phi)}
        out[i] = entry
    return out
