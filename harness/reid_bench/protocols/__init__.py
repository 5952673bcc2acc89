"""Reusable protocol shapes: closed-set by session, skeleton retrieval by session, cloud retrieval.

A concrete protocol is mostly data: which dataset, which sessions or subsets form each fold,
the window length, the main score and the papers' numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from reid_bench.api import DataAccess, FoldData, Protocol, RetrievalScoring, SkeletonSequence
from reid_bench.protocols.splits import window_counts, window_splits
from reid_bench.samples import clouds_to_sampleset, label_map


def closed_set_windows(fold: str, records: list[SkeletonSequence], train_recs: list[SkeletonSequence],
                       test_recs: list[SkeletonSequence], window: int, center_joint: int | None):
    """SM-SGE's closed-set cut: train windows with stride f/2, non-overlapping test windows, labels
    from the training identities (every test identity must be one of them)."""
    unseen = sorted({r.person for r in test_recs} - {r.person for r in train_recs})
    if unseen:
        raise ValueError(f"fold {fold!r}: closed-set test identities missing from training: {unseen}")
    cut = window_splits({"train": train_recs, "test": test_recs}, window, records, center_joint)
    return cut["train"], cut["test"]


class SkeletonProtocol(Protocol):
    """What every skeleton protocol declares: one dataset (with options) cut into windows of
    ``window`` frames, centred per frame on ``center_joint`` (None: raw coordinates)."""

    modality: ClassVar[str] = "skeleton"
    dataset: ClassVar[str]
    data_options: ClassVar[dict[str, Any]] = {}
    window: ClassVar[int] = 6
    center_joint: ClassVar[int | None] = 0


class SkeletonClosedSet(SkeletonProtocol):
    """Closed-set skeleton protocols: the probe classifies test windows; Rank-1 is the score."""

    mode: ClassVar[str] = "closed-set"
    main_score: ClassVar[str] = "rank1"


class SkeletonRetrieval(SkeletonProtocol):
    """Retrieval skeleton protocols: query embeddings ranked against the gallery; mAP is the score."""

    mode: ClassVar[str] = "retrieval"
    main_score: ClassVar[str] = "mAP"
    filter_same_camera: ClassVar[bool] = False


class SessionClosedSetProtocol(SkeletonClosedSet):
    """SM-SGE's closed-set setting: train on some sessions, test on others, same identities.

    ``fold_sessions`` maps a fold to (training sessions, test sessions).
    """

    fold_sessions: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]

    def training_set(self, fold: str) -> str:
        return "sessions " + "+".join(self.fold_sessions[fold][0]) if fold in self.fold_sessions else fold

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        train_sessions, test_sessions = self.fold_sessions[fold]
        records = data.load(self.dataset, **self.data_options)
        train_recs = [r for r in records if r.session in train_sessions]
        test_recs = [r for r in records if r.session in test_sessions]
        if not train_recs or not test_recs:
            raise ValueError(
                f"fold {fold!r}: no sequences in sessions {train_sessions if not train_recs else test_sessions}"
            )
        train, test = closed_set_windows(fold, records, train_recs, test_recs, self.window, self.center_joint)
        return FoldData(train=train, test=test, info=window_counts(train, {"test": test}))


class SessionRetrievalProtocol(SkeletonRetrieval):
    """Skeleton retrieval: sequence embeddings (mean of window embeddings) of query sessions
    ranked against gallery sessions. ``fold_sessions``: fold -> (train, query, gallery)."""

    fold_sessions: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]]

    def training_set(self, fold: str) -> str:
        return "sessions " + "+".join(self.fold_sessions[fold][0]) if fold in self.fold_sessions else fold

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        train_s, query_s, gallery_s = self.fold_sessions[fold]
        records = data.load(self.dataset, **self.data_options)
        pick = lambda sessions: [r for r in records if r.session in sessions]  # noqa: E731
        sides = {"train": pick(train_s), "query": pick(query_s), "gallery": pick(gallery_s)}
        for label, sessions in (("train", train_s), ("query", query_s), ("gallery", gallery_s)):
            if not sides[label]:
                raise ValueError(f"fold {fold!r}: no {label} sequences in sessions {sessions}")
        cut = window_splits(sides, self.window, records, self.center_joint)
        return FoldData(train=cut["train"], query=cut["query"], gallery=cut["gallery"],
                        info=window_counts(cut["train"], {"query": cut["query"], "gallery": cut["gallery"]}))


class CloudRetrievalProtocol(Protocol):
    """Point-cloud retrieval in the Market-1501 style: train subset, query vs gallery.

    The test side may come from another dataset configuration (direct transfer). Person -1 is
    junk and removed from the gallery; person 0 (distractors) stays.
    """

    mode: ClassVar[str] = "retrieval"
    modality: ClassVar[str] = "pointcloud"
    main_score: ClassVar[str] = "mAP"
    filter_same_camera: ClassVar[bool] = True
    #: OG-Net's evaluation: L2-normalised features, each cloud an item (evaluate_gpu.py of
    #: layumi/person-reid-3d), Market-1501's junk rules.
    scoring: ClassVar[RetrievalScoring] = RetrievalScoring(distance="cosine", item="sample", rank_over="valid")
    train_dataset: ClassVar[str]
    train_options: ClassVar[dict[str, Any]] = {}
    test_dataset: ClassVar[str]
    test_options: ClassVar[dict[str, Any]] = {}
    junk_person: ClassVar[int | None] = -1

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        train_recs = [r for r in data.load(self.train_dataset, **self.train_options) if r.subset == "train"]
        test_all = data.load(self.test_dataset, **self.test_options)
        query_recs = [r for r in test_all if r.subset == "query"]
        gallery_recs = [r for r in test_all if r.subset == "gallery" and r.person != self.junk_person]
        for label, recs in (("train", train_recs), ("query", query_recs), ("gallery", gallery_recs)):
            if not recs:
                raise ValueError(f"protocol {type(self).__name__}: the {label} subset is empty")
        labels = label_map(r.person for r in train_recs)
        train = clouds_to_sampleset(train_recs, labels, seed=seed)
        query = clouds_to_sampleset(query_recs, labels, num_points=train.data.shape[1], seed=seed)
        gallery = clouds_to_sampleset(gallery_recs, labels, num_points=train.data.shape[1], seed=seed)
        info = {
            "train_clouds": len(train),
            "train_identities": int(len(np.unique(train.person))),
            "query_clouds": len(query),
            "gallery_clouds": len(gallery),
            "test_identities": int(len(np.unique(query.person))),
        }
        return FoldData(train=train, query=query, gallery=gallery, info=info)
