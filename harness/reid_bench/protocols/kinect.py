"""The Kinect skeleton re-id protocols of SM-SGE (closed-set) and of its retrieval successors.

Closed-set (Rao et al., SM-SGE, ACM MM 2021): the same people in training and test.
- ``ias``: train on IAS-Lab Training, test on TestingA (fold A) or TestingB (fold B).
- ``kgbd``: one random walk per person held out for test, the other walks train.
- ``ks20``: per person and viewpoint, one random gait-cycle sequence held out for test.
Windows: f = 6 frames, training stride f/2, non-overlapping test windows, skeletons centred on
joint 0 (HipCenter in kinect-v1-20, SpineBase in kinect-v2-25).

Retrieval (version 3: the preprocessing of SimMC / SPC-MGR / Hi-MPC / MoCos, whose
``Preprocess.py`` is one file, read at Kali-Hac/SimMC c325ad5; TranSG reads the same preprocessed
data):
- ``ias-retrieval``: TestingA windows as probes against TestingB windows (fold A-B, the field's
  IAS-A), and the reverse (B-A, IAS-B); the model learns on Training (lines 17-22, SimMC.py
  559-572).
- ``kgbd-retrieval``: per person two random walks form the gallery, one more the probe, the rest
  train. The release special-cases person 15 alone (its three files: one gallery, one probe, one
  train; lines 306-317), so any other person with three walks trains on none there; the harness
  applies one rule to everyone: two gallery walks when a person has four or more, else one, then
  one probe walk, the rest train. Input (``data.joint_order``): "file", the releases' reading,
  keeps each frame's rows in the file's order (Head first, lines 328-340), centres them on row 0
  (the head) and applies the kinect-v1-20 graphs and part lists to that order, as SimMC, SPC-MGR
  and SM-SGE do (Hi-MPC, TranSG and MoCos remap the rows to Kinect SDK order after centring on the
  head: utils/process.py 180-183, process_SG.py 196-199); "sdk" maps the rows by name to SDK
  order and centres on HipCenter.
- ``ks20-retrieval``: per person one random gait cycle (all its views) is the gallery, another the
  probe, the remaining cycles train (lines 910-923). The release routes a group of frames by the
  *next* file's gait cycle (line 941 reads it from the new file, 946-966 store the previous
  group), so at each cycle boundary one group goes to the wrong split (with its sorted body ids,
  person 6's gc1 data follows gc2's rule and its gc2 data gc3's), and it never stores the last
  group of each view (no flush after the loop, 926: person 6's gc3 in every view). The harness
  routes each sequence by its own cycle and keeps every sequence; on the real data the window
  counts per split differ by those groups (not counted here: the data is not shipped).
- ``biwi``: BIWI-S (fold S) ranks Still windows against Walking windows, BIWI-W (fold W) the
  reverse; the model learns on Training (lines 179-184, SimMC.py 545-558).
As there: f = 6 (the default ``--length``), every test window is its own retrieval item, never
pooled into sequences (lines 379-384, 571-577); test windows do not overlap and leftover frames
are dropped (566-568, 754-756, 1011-1013); training windows every f/2 frames, cut again from each
of the first f frames (556-565, 745-753, 1002-1010; KGBD: non-overlapping, 367-378); 10 frames
trimmed at both ends of every test sequence (IAS, BIWI, KGBD) and at the start of IAS training
sequences, both ends of BIWI and KGBD training sequences, none on KS20 (``clip_num`` line 9;
93-102, 242-245, 341-355); a sequence left shorter than a window gives no window (counted in
the fold info). Scoring (``reid_bench.scoring.FIELD_RELEASES``): the Euclidean distance of the raw
window features (SimMC.py 460-470, 992), Rank-k over every probe window (a probe whose person
has no gallery window counts as a miss, 483-504), mAP over the probes with a match (453), no
same-camera rule. Deviations: the splits are seeded (the release draws them unseeded), and no
partial batch of probe or gallery windows is left out (each release drops the windows past the
last whole batch of its batch size, 128 or 256: SimMC.py 354-356 and 384-386, so its Rank-k and
mAP are over up to batch - 1 fewer windows of the last identities in order).

"Random" splits are seeded hash orderings: every sequence (or gait cycle) gets the SHA-256 of
``<split seed>:<fold>:<id>`` and the lowest values are held out, so a fold is the same on every
machine and does not depend on the numpy version or on other persons' data.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from reid_bench.api import DataAccess, FoldData, RetrievalScoring, SampleSet, SkeletonSequence
from reid_bench.protocols import SessionClosedSetProtocol, SkeletonClosedSet, SkeletonRetrieval, closed_set_windows
from reid_bench.protocols.field import SOURCE as FIELD_SOURCE
from reid_bench.protocols.field import field_published, field_sources, field_unimplemented_names
from reid_bench.published import Published, PublishedSource, paper_references
from reid_bench.protocols.splits import check_disjoint, split_info, window_splits
from reid_bench.scoring import FIELD_RELEASES

SMSGE_SOURCE = (
    "SM-SGE (Rao et al., ACM MM 2021), results table as published in github.com/Kali-Hac/SM-SGE "
    "img/SM-SGE-results.png: Rank-1 and 'nAUC' (%) of 'SM-SGE (Ours)' (smsge) and 'D13 descriptors + KNN' "
    "(d13). The released code computes that 'nAUC' as a micro-averaged ROC AUC (utils/process_i.py lines "
    "489-495), so it is stored as roc_auc_micro; its reported Rank-1 is the best test epoch of its classifier."
)
SMSGE_TABLE = PublishedSource(
    key="smsge-results",
    name="SM-SGE (Rao et al., ACM MM 2021): the results table of its repository",
    citation="github.com/Kali-Hac/SM-SGE img/SM-SGE-results.png (an image of the paper's table), commit e30b994",
    holds=("Rank-1 and 'nAUC' (%) of 'SM-SGE (Ours)' and 'D13 descriptors + KNN' on IAS-A, IAS-B, KGBD and KS20 "
           "(closed-set), and SM-SGE's per-view Rank-1 on CASIA-B"),
    note=("The released code computes that 'nAUC' as a micro-averaged ROC AUC (utils/process_i.py lines 489-495), "
          "stored as roc_auc_micro."),
)
_SMSGE_KIND = (("figure", "best-test-epoch"),
               "its recognition stage keeps the checkpoint with the best test accuracy (SM-SGE.py lines 1234-1279)")
_D13_KIND = (("figure", "no-training"), "13 hand-crafted descriptors classified by KNN: nothing trained")


def _smsge_published(smsge: dict[str, dict[str, float]], d13: dict[str, dict[str, float]]) -> tuple[Published, ...]:
    return (Published("SM-SGE", SMSGE_TABLE.key, _SMSGE_KIND[0], smsge, note=_SMSGE_KIND[1]),
            Published("D13", SMSGE_TABLE.key, _D13_KIND[0], d13, note=_D13_KIND[1]))


def split_rank(split_seed: int, fold: str, key: str) -> str:
    """The seeded, platform-independent random order used for every held-out choice."""
    return hashlib.sha256(f"{split_seed}:{fold}:{key}".encode()).hexdigest()


def _by(records: Iterable[SkeletonSequence], key: Callable[[SkeletonSequence], Any]) -> dict[Any, list[SkeletonSequence]]:
    groups: dict[Any, list[SkeletonSequence]] = defaultdict(list)
    for rec in records:
        groups[key(rec)].append(rec)
    return dict(sorted(groups.items(), key=lambda kv: str(kv[0])))


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
    published = _smsge_published(
        {"A": {"rank1": 59.4, "roc_auc_micro": 86.7}, "B": {"rank1": 69.8, "roc_auc_micro": 90.4}},
        {"A": {"rank1": 33.8, "roc_auc_micro": 63.6}, "B": {"rank1": 40.5, "roc_auc_micro": 71.1}})
    published_sources = (SMSGE_TABLE,)
    references = paper_references(published)
    reference_source = SMSGE_SOURCE

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        built = super().cut_fold(fold, seed, data)
        records = data.load(self.dataset, **self.data_options)
        train_s, test_s = self.fold_sessions[fold]
        sides = {"train": [r for r in records if r.session in train_s], "test": [r for r in records if r.session in test_s]}
        check_disjoint(sides)
        built.info["split"] = split_info(sides)
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

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        records = data.load(self.dataset, **self.data_options)
        train_recs, test_recs, train_only = self.split(records, fold)
        if not test_recs:
            raise ValueError(f"fold {fold!r}: no group has two sequences, nothing to hold out for test")
        sides = {"train": train_recs, "test": test_recs}
        check_disjoint(sides)
        train, test = closed_set_windows(fold, records, train_recs, test_recs, self.window, self.center_joint)
        info = {**_counts("train", train, train_recs), **_counts("test", test, test_recs)}
        info["split"] = {**split_info(sides, self.split_seed), "train_only_groups": train_only}
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
    published = _smsge_published({"all": {"rank1": 99.5, "roc_auc_micro": 99.6}},
                                 {"all": {"rank1": 46.9, "roc_auc_micro": 90.0}})
    published_sources = (SMSGE_TABLE,)
    references = paper_references(published)
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
    published = _smsge_published({"all": {"rank1": 87.5, "roc_auc_micro": 95.8}},
                                 {"all": {"rank1": 58.3, "roc_auc_micro": 78.0}})
    published_sources = (SMSGE_TABLE,)
    references = paper_references(published)
    reference_source = SMSGE_SOURCE

    def group_of(self, rec: SkeletonSequence) -> Any:
        return (rec.person, rec.view)


# ------------------------------------------------------------------------------------------
# Retrieval (SPC-MGR / SimMC)
# ------------------------------------------------------------------------------------------


def _trimmed(records: list[SkeletonSequence], start: int, end: int) -> list[SkeletonSequence]:
    """Sequences without their first ``start`` and last ``end`` frames (empty ones left out)."""
    if not (start or end):
        return records
    out = []
    for rec in records:
        frames = rec.frames[start: len(rec.frames) - end]
        if len(frames):
            out.append(rec.with_frames(frames))
    return out


class KinectRetrieval(SkeletonRetrieval):
    """Probe windows ranked against gallery windows; the model trains on a disjoint set of sequences
    of (mostly) the same people, as in the unsupervised skeleton re-id papers (module docstring:
    the release's trimming and windows)."""

    # 3: ranked as the releases rank: raw Euclidean distance, every window an item, Rank-k over
    # every probe window (was: L2-normalised features, Rank-k over probes with a true match).
    version: ClassVar[str] = "3"
    scoring: ClassVar[RetrievalScoring] = FIELD_RELEASES
    split_seed: ClassVar[int | None] = None
    #: Frames trimmed (start, end) from training and test sequences.
    train_trim: ClassVar[tuple[int, int]] = (10, 10)
    test_trim: ClassVar[tuple[int, int]] = (10, 10)
    #: Training windows every f/2 frames, cut again from each of the first f frames (False: every f).
    dense_training: ClassVar[bool] = True

    def split(self, records: list[SkeletonSequence], fold: str):
        """(train, query, gallery) records of a fold."""
        raise NotImplementedError

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        records = data.load(self.dataset, **self.data_options)
        train_recs, query_recs, gallery_recs = self.split(records, fold)
        sides = {"train": train_recs, "query": query_recs, "gallery": gallery_recs}
        for name, recs in sides.items():
            if not recs:
                raise ValueError(f"fold {fold!r}: the {name} split is empty")
        check_disjoint(sides)
        f = self.window
        kept = {"train": _trimmed(train_recs, *self.train_trim), "query": _trimmed(query_recs, *self.test_trim),
                "gallery": _trimmed(gallery_recs, *self.test_trim)}
        short = {name: sorted(r.sequence for r in recs if len(r.frames) < f) for name, recs in kept.items()}
        kept = {name: [r for r in recs if len(r.frames) >= f] for name, recs in kept.items()}
        for name, recs in kept.items():
            if not recs:
                raise ValueError(f"fold {fold!r}: no {name} sequence keeps {f} frames after trimming")
        cut = window_splits(kept, f, records, self.center_joint, train_stride=max(1, f // 2) if self.dense_training else f,
                            train_offsets=f if self.dense_training else 1)
        info = {**_counts("train", cut["train"], kept["train"]), **_counts("query", cut["query"], kept["query"]),
                **_counts("gallery", cut["gallery"], kept["gallery"])}
        info["sequences_too_short_after_trimming"] = sum(len(v) for v in short.values())
        info["split"] = {**split_info(sides, self.split_seed), "too_short_after_trimming": short}
        return FoldData(train=cut["train"], query=cut["query"], gallery=cut["gallery"], info=info)


class IASRetrieval(KinectRetrieval):
    description = (
        "IAS-Lab retrieval (SimMC/SPC-MGR/TranSG): TestingA windows as probes against TestingB windows (fold "
        "A-B, the field's IAS-A) and the reverse (B-A, IAS-B); the model learns on Training. f = 6, every "
        "window is a retrieval item; 10 frames trimmed at both ends of test sequences and at the start of "
        "training sequences, as the released preprocessing does."
    )
    dataset = "ias-lab"
    datasets = ("ias-lab",)
    folds = ("A-B", "B-A")
    fold_sessions: ClassVar[dict[str, tuple[str, str, str]]] = {
        "A-B": ("Training", "TestingA", "TestingB"),
        "B-A": ("Training", "TestingB", "TestingA"),
    }
    train_trim = (10, 0)
    published = field_published({"A-B": "IAS-A", "B-A": "IAS-B"})
    published_sources = field_sources({"A-B": "IAS-A", "B-A": "IAS-B"})
    unimplemented_names = field_unimplemented_names({"A-B": "IAS-A", "B-A": "IAS-B"})
    references = paper_references(published)
    reference_source = FIELD_SOURCE

    def training_set(self, fold: str) -> str:
        return "session " + self.fold_sessions[fold][0] if fold in self.fold_sessions else fold

    def split(self, records, fold):
        train_s, query_s, gallery_s = self.fold_sessions[fold]
        pick = lambda session: [r for r in records if r.session == session]  # noqa: E731
        return pick(train_s), pick(query_s), pick(gallery_s)


class BIWIRetrieval(IASRetrieval):
    description = (
        "BIWI RGBD-ID retrieval (SimMC/SPC-MGR/TranSG): Still windows as probes against Walking windows (fold "
        "S, the field's BIWI-S) and Walking against Still (fold W, BIWI-W); the model learns on Training. f = "
        "6, every window is a retrieval item, 10 frames trimmed at both ends of every sequence."
    )
    dataset = "biwi"
    datasets = ("biwi",)
    folds = ("S", "W")
    fold_sessions = {"S": ("Training", "Still", "Walking"), "W": ("Training", "Walking", "Still")}
    train_trim = (10, 10)
    published = field_published({"S": "BIWI-S", "W": "BIWI-W"})
    published_sources = field_sources({"S": "BIWI-S", "W": "BIWI-W"})
    unimplemented_names = field_unimplemented_names({"S": "BIWI-S", "W": "BIWI-W"})
    references = paper_references(published)


class KGBDRetrieval(KinectRetrieval):
    description = (
        "KGBD retrieval (SimMC/SPC-MGR/TranSG): per person two random walks form the gallery and one more the "
        "probe, the remaining walks train (three walks: one each; two: gallery and probe; one: gallery "
        "only). Seeded split stored with the run; f = 6, every window is a retrieval item, 10 frames trimmed "
        "at both ends, non-overlapping training windows. Input as the releases read it: each frame's rows in "
        "the file's order (Head first), centred on row 0, their 20-joint graphs applied to that order "
        "(data.joint_order=file; =sdk maps the rows to Kinect SDK order and centres on HipCenter)."
    )
    dataset = "kgbd"
    datasets = ("kgbd",)
    #: The releases' reading: each frame's rows in the file's order (Head first), centred on row 0
    #: (the head), their kinect-v1-20 graphs applied to that order. ``--set data.joint_order=sdk``:
    #: the rows mapped by name to Kinect SDK order, centred on HipCenter (this harness's reading).
    data_defaults = {"joint_order": "file"}
    folds = ("all",)
    split_seed = 2022
    dense_training = False
    published = field_published({"all": "KGBD"})
    published_sources = field_sources({"all": "KGBD"})
    unimplemented_names = field_unimplemented_names({"all": "KGBD"})
    references = paper_references(published)
    reference_source = FIELD_SOURCE

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
        "KS20 retrieval (SimMC/SPC-MGR/TranSG): per person one random gait cycle (in all five views) is the "
        "gallery, another the probe, the remaining cycles train. Seeded split stored with the run; f = 6, "
        "every window is a retrieval item, no trimming."
    )
    dataset = "ks20"
    datasets = ("ks20",)
    folds = ("all",)
    split_seed = 2022
    train_trim = (0, 0)
    test_trim = (0, 0)
    published = field_published({"all": "KS20"})
    published_sources = field_sources({"all": "KS20"})
    unimplemented_names = field_unimplemented_names({"all": "KS20"})
    references = paper_references(published)
    reference_source = FIELD_SOURCE

    def split(self, records, fold):
        train, query, gallery = [], [], []
        for person, recs in _by(records, lambda r: r.person).items():
            cycles = sorted({r.condition for r in recs}, key=lambda c: split_rank(self.split_seed, fold, f"{person}/{c}"))
            role = {c: ("gallery" if i == 0 else "query" if i == 1 else "train") for i, c in enumerate(cycles)}
            for rec in recs:
                {"gallery": gallery, "query": query, "train": train}[role[rec.condition]].append(rec)
        return train, query, gallery
