"""Reusable protocol shapes: closed-set by session, skeleton retrieval by session, cloud retrieval.

A concrete protocol is mostly data: which dataset, which sessions or subsets form each fold,
the window length, the main score and the papers' numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from reid_bench.api import DataAccess, FoldData, Protocol, RetrievalScoring, SkeletonSequence
from reid_bench.samples import clouds_to_sampleset, code_map, label_map, windows_from_sequences


def _layout_of(records: list[SkeletonSequence]):
    from reid_bench.registry import get_registry

    names = sorted({r.layout for r in records})
    if len(names) != 1:
        raise ValueError(f"records mix skeleton layouts {names}; a protocol needs one")
    return get_registry().layout(names[0])


def _skeleton_info(train, evaluated: dict[str, Any]) -> dict[str, Any]:
    info = {
        "train_windows": len(train),
        "train_sequences": int(len(np.unique(train.group))),
        "train_identities": int(len(np.unique(train.person))),
    }
    for name, split in evaluated.items():
        info[f"{name}_windows"] = len(split)
        info[f"{name}_sequences"] = int(len(np.unique(split.group)))
        info[f"{name}_identities"] = int(len(np.unique(split.person)))
    return info


def closed_set_windows(fold: str, records: list[SkeletonSequence], train_recs: list[SkeletonSequence],
                       test_recs: list[SkeletonSequence], window: int, center_joint: int | None):
    """SM-SGE's closed-set cut: train windows with stride f/2, non-overlapping test windows, labels
    from the training identities (every test identity must be one of them)."""
    unseen = sorted({r.person for r in test_recs} - {r.person for r in train_recs})
    if unseen:
        raise ValueError(f"fold {fold!r}: closed-set test identities missing from training: {unseen}")
    layout = _layout_of(records)
    labels = label_map(r.person for r in train_recs)
    cameras = code_map(r.view for r in records)
    train = windows_from_sequences(train_recs, window, max(1, window // 2), layout, labels, cameras, center_joint)
    test = windows_from_sequences(test_recs, window, window, layout, labels, cameras, center_joint)
    return train, test


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

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        if fold not in self.fold_sessions:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
        train_sessions, test_sessions = self.fold_sessions[fold]
        records = data.load(self.dataset, **self.data_options)
        train_recs = [r for r in records if r.session in train_sessions]
        test_recs = [r for r in records if r.session in test_sessions]
        if not train_recs or not test_recs:
            raise ValueError(
                f"fold {fold!r}: no sequences in sessions {train_sessions if not train_recs else test_sessions}"
            )
        train, test = closed_set_windows(fold, records, train_recs, test_recs, self.window, self.center_joint)
        return FoldData(train=train, test=test, info=_skeleton_info(train, {"test": test}))


class SessionRetrievalProtocol(SkeletonRetrieval):
    """Skeleton retrieval: sequence embeddings (mean of window embeddings) of query sessions
    ranked against gallery sessions. ``fold_sessions``: fold -> (train, query, gallery)."""

    fold_sessions: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]]

    def training_set(self, fold: str) -> str:
        return "sessions " + "+".join(self.fold_sessions[fold][0]) if fold in self.fold_sessions else fold

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        if fold not in self.fold_sessions:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
        train_s, query_s, gallery_s = self.fold_sessions[fold]
        records = data.load(self.dataset, **self.data_options)
        layout = _layout_of(records)
        pick = lambda sessions: [r for r in records if r.session in sessions]  # noqa: E731
        train_recs, query_recs, gallery_recs = pick(train_s), pick(query_s), pick(gallery_s)
        for label, recs, sessions in (("train", train_recs, train_s), ("query", query_recs, query_s), ("gallery", gallery_recs, gallery_s)):
            if not recs:
                raise ValueError(f"fold {fold!r}: no {label} sequences in sessions {sessions}")
        labels = label_map(r.person for r in train_recs)
        cameras = code_map(r.view for r in records)
        stride = max(1, self.window // 2)
        train = windows_from_sequences(train_recs, self.window, stride, layout, labels, cameras, self.center_joint)
        query = windows_from_sequences(query_recs, self.window, self.window, layout, labels, cameras, self.center_joint)
        gallery = windows_from_sequences(gallery_recs, self.window, self.window, layout, labels, cameras, self.center_joint)
        return FoldData(train=train, query=query, gallery=gallery, info=_skeleton_info(train, {"query": query, "gallery": gallery}))


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

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
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
