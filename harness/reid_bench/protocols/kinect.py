"""The Kinect skeleton re-id protocols of SM-SGE (closed-set) and of its retrieval successors.

Closed-set (Rao et al., SM-SGE, ACM MM 2021): the same people in training and test.
- ``ias``: train on IAS-Lab Training, test on TestingA (fold A) or TestingB (fold B).
- ``kgbd``: one random walk per person held out for test, the other walks train.
- ``ks20``: per person and viewpoint, one random gait-cycle sequence held out for test.

Retrieval (SPC-MGR, SimMC: ``Preprocess.py`` and the evaluation in their code):
- ``ias-retrieval``: TestingA windows as probes against TestingB (fold A-B), and the reverse (B-A);
  the model learns on Training.
- ``kgbd-retrieval``: per person two random walks form the gallery, one more the probe, the rest train
  (a person with three walks: one each).
- ``ks20-retrieval``: per person one random gait cycle (all its views) is the gallery, another the
  probe, the remaining cycles train.
Those papers rank every probe window against every gallery window (no sequence pooling); these
protocols do the same, so each test window is its own retrieval item.

Windows: f = 6 frames, training stride f/2, non-overlapping test windows, skeletons centred on
joint 0 (HipCenter in kinect-v1-20, SpineBase in kinect-v2-25). The original preprocessing also
trims the first (and, for test data, last) 10 frames of each sequence; these protocols keep every
frame the loaders return.

"Random" splits are seeded hash orderings: every sequence (or gait cycle) gets the SHA-256 of
``<split seed>:<fold>:<id>`` and the lowest values are held out, so a fold is the same on every
machine and does not depend on the numpy version or on other persons' data.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from reid_bench.api import DataAccess, FoldData, SampleSet, SkeletonSequence
from reid_bench.protocols import (SessionClosedSetProtocol, SkeletonClosedSet, SkeletonRetrieval, _layout_of,
                                  closed_set_windows)
from reid_bench.samples import code_map, label_map, windows_from_sequences

SMSGE_SOURCE = (
    "SM-SGE (Rao et al., ACM MM 2021), results table as published in github.com/Kali-Hac/SM-SGE "
    "img/SM-SGE-results.png: Rank-1 and nAUC (%) of 'SM-SGE (Ours)' (smsge) and 'D13 descriptors + KNN' (d13)"
)
SIMMC_SOURCE = (
    "SimMC (Rao & Miao, IJCAI 2022), README 'Results' table of github.com/Kali-Hac/SimMC: top-1/5/10 and mAP "
    "(%) of the rows 'SM-SGE' (smsge) and 'D-13 Descriptors' (d13); IAS-A = probe A vs gallery B (fold A-B), "
    "IAS-B = probe B vs gallery A (fold B-A). The paper trims 10 frames at sequence ends and these "
    "protocols do not, so expect small differences."
)


def split_rank(split_seed: int, fold: str, key: str) -> str:
    """The seeded, platform-independent random order used for every held-out choice."""
    return hashlib.sha256(f"{split_seed}:{fold}:{key}".encode()).hexdigest()


def _by(records: Iterable[SkeletonSequence], key: Callable[[SkeletonSequence], Any]) -> dict[Any, list[SkeletonSequence]]:
    groups: dict[Any, list[SkeletonSequence]] = defaultdict(list)
    for rec in records:
        groups[key(rec)].append(rec)
    return dict(sorted(groups.items(), key=lambda kv: str(kv[0])))


def _check_disjoint(**splits: list[SkeletonSequence]) -> None:
    seen: dict[str, str] = {}
    for name, recs in splits.items():
        for rec in recs:
            if rec.sequence in seen:
                raise ValueError(f"sequence {rec.sequence!r} is in both the {seen[rec.sequence]} and the {name} split")
            seen[rec.sequence] = name


def _split_info(split_seed: int | None, **splits: list[SkeletonSequence]) -> dict[str, Any]:
    info: dict[str, Any] = {name: sorted(r.sequence for r in recs) for name, recs in splits.items()}
    if split_seed is not None:
        info["split_seed"] = split_seed
    return info


def _counts(name: str, split: SampleSet, records: list[SkeletonSequence]) -> dict[str, int]:
    return {
        f"{name}_windows": len(split),
        f"{name}_sequences": len(records),
        f"{name}_identities": len({r.person for r in records}),
    }


# ------------------------------------------------------------------------------------------
# Closed-set (SM-SGE)
# ------------------------------------------------------------------------------------------


class IASClosedSet(SessionClosedSetProtocol):
    description = (
        "SM-SGE's IAS-Lab closed-set protocol: train on the Training session, test on TestingA (fold A: "
        "same place, other clothes) or TestingB (fold B: another place). f = 6, training stride 3, "
        "non-overlapping test windows, centred on the hip; Rank-1/nAUC from a probe on frozen features."
    )
    version = "1"
    dataset = "ias-lab"
    datasets = ("ias-lab",)
    folds = ("A", "B")
    fold_sessions = {"A": (("Training",), ("TestingA",)), "B": (("Training",), ("TestingB",))}
    window = 6
    center_joint = 0
    main_score = "rank1"
    references = {
        "smsge": {"A": {"rank1": 59.4, "nAUC": 86.7}, "B": {"rank1": 69.8, "nAUC": 90.4}},
        "d13": {"A": {"rank1": 33.8, "nAUC": 63.6}, "B": {"rank1": 40.5, "nAUC": 71.1}},
    }
    reference_source = SMSGE_SOURCE

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        built = super().build_fold(fold, seed, data)
        records = data.load(self.dataset, **self.data_options)
        train_s, test_s = self.fold_sessions[fold]
        train = [r for r in records if r.session in train_s]
        test = [r for r in records if r.session in test_s]
        _check_disjoint(train=train, test=test)
        built.info["split"] = _split_info(None, train=train, test=test)
        return built


class HeldOutClosedSet(SkeletonClosedSet):
    """Closed-set with one seeded random sequence held out per group (a person, or a person in one
    view); groups with a single sequence stay in training only and are listed in the split info."""

    folds: ClassVar[tuple[str, ...]] = ("all",)
    split_seed: ClassVar[int]

    def group_of(self, rec: SkeletonSequence) -> Any:
        return rec.person

    def split(self, records: list[SkeletonSequence], fold: str):
        train, test, train_only = [], [], []
        for group, recs in _by(records, self.group_of).items():
            if len(recs) < 2:
                train.extend(recs)
                train_only.append(str(group))
                continue
            ordered = sorted(recs, key=lambda r: split_rank(self.split_seed, fold, r.sequence))
            test.append(ordered[0])
            train.extend(ordered[1:])
        return train, test, train_only

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        if fold not in self.folds:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
        records = data.load(self.dataset, **self.data_options)
        train_recs, test_recs, train_only = self.split(records, fold)
        if not test_recs:
            raise ValueError(f"fold {fold!r}: no group has two sequences, nothing to hold out for test")
        _check_disjoint(train=train_recs, test=test_recs)
        train, test = closed_set_windows(fold, records, train_recs, test_recs, self.window, self.center_joint)
        info = {**_counts("train", train, train_recs), **_counts("test", test, test_recs)}
        info["split"] = {**_split_info(self.split_seed, train=train_recs, test=test_recs), "train_only_groups": train_only}
        return FoldData(train=train, test=test, info=info)


class KGBDClosedSet(HeldOutClosedSet):
    description = (
        "SM-SGE's KGBD closed-set protocol: one random walk of each person is held out for test, the other "
        "walks train (seeded split, stored with the run). f = 6, training stride 3, non-overlapping test windows."
    )
    version = "1"
    dataset = "kgbd"
    datasets = ("kgbd",)
    split_seed = 2021
    references = {"smsge": {"all": {"rank1": 99.5, "nAUC": 99.6}}, "d13": {"all": {"rank1": 46.9, "nAUC": 90.0}}}
    reference_source = SMSGE_SOURCE


class KS20ClosedSet(HeldOutClosedSet):
    description = (
        "SM-SGE's KS20 closed-set protocol: for every person and viewpoint one random gait-cycle sequence is "
        "held out for test, the rest train (seeded split, stored with the run). f = 6, centred on SpineBase."
    )
    version = "1"
    dataset = "ks20"
    datasets = ("ks20",)
    split_seed = 2021
    references = {"smsge": {"all": {"rank1": 87.5, "nAUC": 95.8}}, "d13": {"all": {"rank1": 58.3, "nAUC": 78.0}}}
    reference_source = SMSGE_SOURCE

    def group_of(self, rec: SkeletonSequence) -> Any:
        return (rec.person, rec.view)


# ------------------------------------------------------------------------------------------
# Retrieval (SPC-MGR / SimMC)
# ------------------------------------------------------------------------------------------


def _each_window_alone(split: SampleSet) -> SampleSet:
    """Make every window its own retrieval item (the harness pools windows by ``group``)."""
    split.meta["sequence_group"] = split.group.copy()
    split.group = np.arange(len(split), dtype=np.int64)
    return split


class KinectRetrieval(SkeletonRetrieval):
    """Probe windows ranked against gallery windows; the model trains on a disjoint set of sequences
    of (mostly) the same people, as in the unsupervised skeleton re-id papers."""

    split_seed: ClassVar[int | None] = None

    def split(self, records: list[SkeletonSequence], fold: str):
        """(train, query, gallery) records of a fold."""
        raise NotImplementedError

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        if fold not in self.folds:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
        records = data.load(self.dataset, **self.data_options)
        train_recs, query_recs, gallery_recs = self.split(records, fold)
        for name, recs in (("train", train_recs), ("query", query_recs), ("gallery", gallery_recs)):
            if not recs:
                raise ValueError(f"fold {fold!r}: the {name} split is empty")
        _check_disjoint(train=train_recs, query=query_recs, gallery=gallery_recs)
        layout = _layout_of(records)
        labels = label_map(r.person for r in train_recs)
        cameras = code_map(r.view for r in records)
        stride = max(1, self.window // 2)
        train = windows_from_sequences(train_recs, self.window, stride, layout, labels, cameras, self.center_joint)
        query = windows_from_sequences(query_recs, self.window, self.window, layout, labels, cameras, self.center_joint)
        gallery = windows_from_sequences(gallery_recs, self.window, self.window, layout, labels, cameras, self.center_joint)
        info = {**_counts("train", train, train_recs), **_counts("query", query, query_recs),
                **_counts("gallery", gallery, gallery_recs)}
        info["split"] = _split_info(self.split_seed, train=train_recs, query=query_recs, gallery=gallery_recs)
        return FoldData(train=train, query=_each_window_alone(query), gallery=_each_window_alone(gallery), info=info)


class IASRetrieval(KinectRetrieval):
    description = (
        "IAS-Lab retrieval (SPC-MGR/SimMC): TestingA windows as probes against TestingB windows (fold A-B) "
        "and the reverse (B-A); the model learns on Training. f = 6, every window is a retrieval item."
    )
    version = "1"
    dataset = "ias-lab"
    datasets = ("ias-lab",)
    folds = ("A-B", "B-A")
    fold_sessions: ClassVar[dict[str, tuple[str, str, str]]] = {
        "A-B": ("Training", "TestingA", "TestingB"),
        "B-A": ("Training", "TestingB", "TestingA"),
    }
    references = {
        "smsge": {"A-B": {"rank1": 34.0, "rank5": 60.5, "rank10": 71.6, "mAP": 13.6},
                  "B-A": {"rank1": 38.9, "rank5": 64.1, "rank10": 75.8, "mAP": 13.3}},
        "d13": {"A-B": {"rank1": 40.0, "rank5": 58.7, "rank10": 67.6, "mAP": 24.5},
                "B-A": {"rank1": 43.7, "rank5": 68.6, "rank10": 76.7, "mAP": 23.7}},
    }
    reference_source = SIMMC_SOURCE

    def split(self, records, fold):
        train_s, query_s, gallery_s = self.fold_sessions[fold]
        pick = lambda session: [r for r in records if r.session == session]  # noqa: E731
        return pick(train_s), pick(query_s), pick(gallery_s)


class KGBDRetrieval(KinectRetrieval):
    description = (
        "KGBD retrieval (SPC-MGR/SimMC): per person two random walks form the gallery and one more the "
        "probe, the remaining walks train (three walks: one each; two: gallery and probe; one: gallery "
        "only). Seeded split stored with the run; f = 6, every window is a retrieval item."
    )
    version = "1"
    dataset = "kgbd"
    datasets = ("kgbd",)
    folds = ("all",)
    split_seed = 2022
    references = {
        "smsge": {"all": {"rank1": 38.2, "rank5": 54.2, "rank10": 60.7, "mAP": 4.4}},
        "d13": {"all": {"rank1": 17.0, "rank5": 34.4, "rank10": 44.2, "mAP": 1.9}},
    }
    reference_source = SIMMC_SOURCE

    def split(self, records, fold):
        train, query, gallery = [], [], []
        for _, recs in _by(records, lambda r: r.person).items():
            ordered = sorted(recs, key=lambda r: split_rank(self.split_seed, fold, r.sequence))
            n_gallery = 2 if len(ordered) >= 4 else 1
            gallery.extend(ordered[:n_gallery])
            query.extend(ordered[n_gallery:n_gallery + 1])
            train.extend(ordered[n_gallery + 1:])
        return train, query, gallery


class KS20Retrieval(KinectRetrieval):
    description = (
        "KS20 retrieval (SPC-MGR/SimMC): per person one random gait cycle (in all five views) is the gallery, "
        "another the probe, the remaining cycles train. Seeded split stored with the run; f = 6, every "
        "window is a retrieval item."
    )
    version = "1"
    dataset = "ks20"
    datasets = ("ks20",)
    folds = ("all",)
    split_seed = 2022
    references = {
        "smsge": {"all": {"rank1": 45.9, "rank5": 71.9, "rank10": 81.2, "mAP": 9.5}},
        "d13": {"all": {"rank1": 39.4, "rank5": 71.7, "rank10": 81.7, "mAP": 18.9}},
    }
    reference_source = SIMMC_SOURCE

    def split(self, records, fold):
        train, query, gallery = [], [], []
        for person, recs in _by(records, lambda r: r.person).items():
            cycles = sorted({r.condition for r in recs}, key=lambda c: split_rank(self.split_seed, fold, f"{person}/{c}"))
            role = {c: ("gallery" if i == 0 else "query" if i == 1 else "train") for i, c in enumerate(cycles)}
            for rec in recs:
                {"gallery": gallery, "query": query, "train": train}[role[rec.condition]].append(rec)
        return train, query, gallery
