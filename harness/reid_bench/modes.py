"""Evaluation modes and the metrics they report, as data.

Every metric is declared once here (:data:`METRICS`): its name, its label on boards and tables,
whether it is a fraction shown in percent, which way is better, which mode reports it and
whether a board shows it as a column. Results (the schema's metric names), boards, the site and
the CLI's summary read these specs; adding a metric is one :class:`MetricSpec` and its
computation in the mode's evaluator. Each mode (:data:`EVALUATORS`) is one evaluator that turns
a fitted model and a fold into those metrics, so ``trial.evaluate`` holds no branch per mode.

Imports nothing heavy: the API module, the registry and the results checker read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

CLOSED_SET = "closed-set"
RETRIEVAL = "retrieval"


def _ranks_within(k: int) -> Callable[[dict[str, Any]], np.ndarray | None]:
    """Per-query Rank-k hits: whether the query's true class (closed-set) or first true match
    (retrieval) is within the first k."""

    def values(per_query: dict[str, Any]) -> np.ndarray | None:
        ranks = per_query.get("true_class_rank", per_query.get("first_match_rank"))
        return None if ranks is None else (np.asarray(ranks, dtype=np.int64) <= k).astype(np.float64)

    return values


def _average_precisions(per_query: dict[str, Any]) -> np.ndarray | None:
    return None if per_query.get("ap") is None else np.asarray(per_query["ap"], dtype=np.float64)


@dataclass(frozen=True)
class MetricSpec:
    """One metric as every reader of results needs it."""

    name: str
    #: Column header on boards, the site and the CLI's summary.
    label: str
    #: The evaluation modes whose trials report it.
    modes: tuple[str, ...]
    #: A fraction in [0, 1] that tables show in percent.
    percent: bool = True
    higher_is_better: bool = True
    #: Shown as a column of its modes' board tables (the rest only in JSON and the site).
    board_column: bool = False
    #: The per-query values whose mean is the metric (for the paired bootstrap), from a trial's
    #: ``per_query`` outcomes; None where the metric is not a mean over queries.
    per_query: Callable[[dict[str, Any]], np.ndarray | None] | None = None


#: Every metric a trial reports, in the order tables show them.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("rank1", "Rank-1", (CLOSED_SET, RETRIEVAL), board_column=True, per_query=_ranks_within(1)),
    MetricSpec("rank5", "Rank-5", (CLOSED_SET, RETRIEVAL), board_column=True, per_query=_ranks_within(5)),
    MetricSpec("rank10", "Rank-10", (CLOSED_SET, RETRIEVAL), per_query=_ranks_within(10)),
    MetricSpec("mAP", "mAP", (RETRIEVAL,), board_column=True, per_query=_average_precisions),
    MetricSpec("map_trapz", "mAP (trapz)", (RETRIEVAL,)),
    MetricSpec("mINP", "mINP", (RETRIEVAL,)),
    MetricSpec("nAUC", "nAUC", (CLOSED_SET,), board_column=True),
    MetricSpec("roc_auc_micro", "ROC-AUC-micro", (CLOSED_SET,)),
    MetricSpec("sequence_accuracy", "Seq-acc", (CLOSED_SET,)),
)
_BY_NAME = {spec.name: spec for spec in METRICS}
METRIC_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def metric(name: str) -> MetricSpec | None:
    return _BY_NAME.get(name)


def label(name: str) -> str:
    """A metric's label; an unknown name (a curve, a custom score) stands for itself."""
    spec = _BY_NAME.get(name)
    return spec.label if spec else name


def is_percent(name: str) -> bool:
    spec = _BY_NAME.get(name)
    return bool(spec and spec.percent)


def metrics_of(mode: str) -> tuple[str, ...]:
    return tuple(s.name for s in METRICS if mode in s.modes)


def board_columns(mode: str) -> list[str]:
    return [s.name for s in METRICS if mode in s.modes and s.board_column]


class ModeEvaluator:
    """How one evaluation mode scores a fitted model on a fold: metrics, CMC curve, per-query
    outcomes (the result's ``metrics``, ``cmc`` and ``per_query``)."""

    name: str

    def evaluate(self, protocol: Any, fold: Any, embed: Callable[[Any], np.ndarray], probe_cfg: Any, seed: int,
                 device: str, scoring: Any) -> dict[str, Any]:
        raise NotImplementedError


class ClosedSetEvaluator(ModeEvaluator):
    """A probe classifier trained on the frozen training features scores the test windows."""

    name = CLOSED_SET

    def evaluate(self, protocol: Any, fold: Any, embed: Callable[[Any], np.ndarray], probe_cfg: Any, seed: int,
                 device: str, scoring: Any) -> dict[str, Any]:
        from reid_bench import metrics
        from reid_bench.probe import train_probe_and_score

        assert fold.test is not None
        train_f, test_f = embed(fold.train), embed(fold.test)
        scores = train_probe_and_score(train_f, fold.train.labels, test_f, probe_cfg, seed=seed, device=device)
        res = metrics.closed_set_metrics(scores, fold.test.labels, sequence_ids=fold.test.group)
        return {"metrics": res.as_dict(), "cmc": np.asarray(res.cmc).tolist(),
                "per_query": {"true_class_rank": res.window_rank.astype(int).tolist()}}


class RetrievalEvaluator(ModeEvaluator):
    """Queries ranked against the gallery by distance, as the protocol's scoring says (distance,
    item, Rank-k denominator)."""

    name = RETRIEVAL

    def evaluate(self, protocol: Any, fold: Any, embed: Callable[[Any], np.ndarray], probe_cfg: Any, seed: int,
                 device: str, scoring: Any) -> dict[str, Any]:
        import torch

        from reid_bench import metrics
        from reid_bench.scoring import retrieval_items

        assert fold.query is not None and fold.gallery is not None
        q, q_pids, q_cams = retrieval_items(embed(fold.query), fold.query, scoring)
        g, g_pids, g_cams = retrieval_items(embed(fold.gallery), fold.gallery, scoring)
        distmat = torch.cdist(torch.from_numpy(q).double(), torch.from_numpy(g).double())
        res = metrics.evaluate_retrieval(
            distmat, q_pids, g_pids, q_cams, g_cams, max_rank=min(protocol.max_rank, len(g)),
            filter_same_camera=protocol.filter_same_camera
        )
        cmc = np.asarray(res.cmc, dtype=np.float64)
        if scoring.rank_over == "all" and res.num_queries:  # a query without a true match is a miss
            cmc = cmc * res.num_valid_queries / res.num_queries
        out = res.as_dict()
        out.update({f"rank{k}": float(cmc[k - 1]) for k in (1, 5, 10) if k <= len(cmc)})
        return {"metrics": {k: v for k, v in out.items() if k != "num_valid_queries"}, "cmc": cmc.tolist(),
                "num_valid_queries": int(res.num_valid_queries), "num_queries": int(res.num_queries),
                "per_query": {"first_match_rank": res.query_first_rank.astype(int).tolist(),
                              "ap": [round(float(v), 6) for v in res.query_ap]}}


EVALUATORS: dict[str, ModeEvaluator] = {e.name: e for e in (ClosedSetEvaluator(), RetrievalEvaluator())}
MODES: tuple[str, ...] = tuple(EVALUATORS)


def evaluator(mode: str) -> ModeEvaluator:
    try:
        return EVALUATORS[mode]
    except KeyError:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}") from None
