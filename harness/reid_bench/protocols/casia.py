"""CASIA-B protocols of SM-SGE's line of work.

``casia-b`` (closed-set, one fold per view), ``casia-b-npy`` (the same on SM-SGE's released
windows, whose split is baked into the files) and ``casia-b-cme`` (retrieval between walking
conditions on unseen people; ``casia-b-coco-cme`` runs it on GaitGraph's 2D poses).

What the sources fix and what they leave open:
- SM-SGE's code (utils/process_i.py) reads CASIA-B per test view from ``view_<k>`` folders
  (k = 0..10, README: ``--view [0..10]``), uses 14 joints, 124 classes and subtracts joint 0
  from every joint of every frame. The paper's table reports one Rank-1 per view.
- Which views/conditions form the training part of a view's fold lives only inside the
  released files; the issue's description is followed: test on one view, train on its
  adjacent views (the end views 000 and 180 have a single neighbour, 018 and 162).
- CME: SPC-MGR/TranSG's code ranks a probe condition's windows against a gallery condition's
  (same-condition folds use one set for both and skip the self match). Which sequences form
  the sets lives in their files; here GaitGraph's standard CASIA-B split is used instead
  (src/preparation/split_casia-b.py, src/evaluate.py): train on subjects 001-074, test on
  075-124, gallery nm-01..04, probes nm-05/06, bg-01/02, cl-01/02.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from reid_bench.api import DataAccess, FoldData, Protocol, SkeletonSequence
from reid_bench.datasets.casia_b import CASIA_VIEWS
from reid_bench.protocols.splits import centred, split_info, window_counts, window_splits
from reid_bench.protocols.kinect import SMSGE_TABLE
from reid_bench.published import Published, paper_references

#: SM-SGE's per-view Rank-1 (%) on CASIA-B (cross-view evaluation), as printed in its results table.
SMSGE_CASIA_B_RANK1 = {
    "000": 18.4, "018": 50.8, "036": 53.6, "054": 40.9, "072": 51.2, "090": 59.3,
    "108": 52.3, "126": 53.9, "144": 30.2, "162": 28.8, "180": 13.6,
}
SMSGE_CASIA_B_SOURCE = (
    "H. Rao et al., SM-SGE, ACM MM 2021: CASIA-B per-view table (row 'SM-SGE (Ours)') in the results "
    "figure of the official repository, github.com/Kali-Hac/SM-SGE img/SM-SGE-results.png. The table "
    "gives Rank-1 only (no nAUC); its PoseGait row is identical to CAGE's Table 8 'Rank-1 accuracy on "
    "different views of CASIA B under CVE setup' (github.com/Kali-Hac/Locality-Awareness-SGE "
    "img/CAGE-results-2.png)."
)


def adjacent_views(view: str) -> tuple[str, ...]:
    """The views 18 degrees either side that CASIA-B has (one at the ends 000 and 180)."""
    i = CASIA_VIEWS.index(view)
    return tuple(CASIA_VIEWS[j] for j in (i - 1, i + 1) if 0 <= j < len(CASIA_VIEWS))


def _drop_unseen(
    fold: str, train: list[SkeletonSequence], test: list[SkeletonSequence], info: dict[str, Any]
) -> list[SkeletonSequence]:
    """Closed-set scoring needs every test identity among the classes; others are set aside, loudly."""
    known = {r.person for r in train}
    unseen = sorted({r.person for r in test} - known)
    if unseen:
        logging.getLogger(__name__).warning("fold %r: test identities without training sequences are not scored: %s",
                                            fold, unseen)
        info["unscored_test_identities"] = unseen
        info["unscored_test_sequences"] = sum(r.person not in known for r in test)
    return [r for r in test if r.person in known]


class CasiaBCrossView(Protocol):
    """One closed-set fold per CASIA-B view: test on that view, train on the adjacent views."""

    version = "1"
    mode = "closed-set"
    modality = "skeleton"
    description = (
        "SM-SGE's CASIA-B cross-view evaluation on 14-joint 3D poses: fold = test view (000..180); "
        "training = all sequences (nm, bg, cl) of the adjacent views (000 and 180: their one neighbour); "
        "test = all sequences of the fold's view; windows f = 20 (train stride 10, test stride 20) "
        "centred on joint 0 (the head), as SM-SGE's code does for every dataset"
    )
    dataset: ClassVar[str] = "casia-b-3d"
    datasets = ("casia-b-3d",)
    data_options: ClassVar[dict[str, Any]] = {}
    folds = CASIA_VIEWS
    window = 20
    train_stride: ClassVar[int] = 10
    test_stride: ClassVar[int] = 20
    #: SM-SGE subtracts joint 0 of its arrays (casia-14: the head) from all joints, per frame.
    center_joint: ClassVar[int | None] = 0
    conditions: ClassVar[tuple[str, ...]] = ("nm", "bg", "cl")
    main_score = "rank1"
    published = (Published("SM-SGE", SMSGE_TABLE.key, ("figure", "best-test-epoch"),
                           {view: {"rank1": value} for view, value in SMSGE_CASIA_B_RANK1.items()},
                           note="the per-view CASIA-B table of the results image, row 'SM-SGE (Ours)'; its "
                                "recognition stage keeps the best test epoch (SM-SGE.py lines 1234-1279)"),)
    published_sources = (SMSGE_TABLE,)
    references = paper_references(published)
    reference_source = SMSGE_CASIA_B_SOURCE

    def fold_views(self, fold: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(training views, test views) of a fold."""
        self.require_fold(fold)
        return adjacent_views(fold), (fold,)

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        train_views, test_views = self.fold_views(fold)
        records = data.load(self.dataset, **self.data_options)
        usable = [r for r in records if r.condition in self.conditions]
        train_recs = [r for r in usable if r.view in train_views]
        test_recs = [r for r in usable if r.view in test_views]
        if not train_recs:
            raise ValueError(f"fold {fold!r}: no training sequences in views {', '.join(train_views)}")
        if not test_recs:
            raise ValueError(f"fold {fold!r}: no test sequences in view {fold}")
        info: dict[str, Any] = {"train_views": list(train_views), "test_views": list(test_views)}
        test_recs = _drop_unseen(fold, train_recs, test_recs, info)
        if not test_recs:
            raise ValueError(f"fold {fold!r}: no test identity has training sequences")
        cut = window_splits({"train": train_recs, "test": test_recs}, self.window, records, self.center_joint,
                            train_stride=self.train_stride, test_stride=self.test_stride)
        info.update(window_counts(cut["train"], {"test": cut["test"]}))
        info["split"] = split_info({"train": train_recs, "test": test_recs})
        return FoldData(train=cut["train"], test=cut["test"], info=info)


class CasiaBCrossViewNpy(Protocol):
    """``casia-b`` on SM-SGE's released CASIA-B windows: fold k reads ``view_<k>``'s train/test."""

    version = "1"
    mode = "closed-set"
    modality = "skeleton"
    description = (
        "SM-SGE's CASIA-B cross-view evaluation exactly as released: fold = test view, reading "
        "Datasets/CASIA_B/20/view_<k>/ (k = view / 18) of the smsge-npy data, session train vs test; "
        "each 20-frame window is scored on its own, centred on joint 0 as SM-SGE's code does"
    )
    dataset: ClassVar[str] = "smsge-npy"
    datasets = ("smsge-npy",)
    data_options: ClassVar[dict[str, Any]] = {"dataset_name": "CASIA_B", "frames": 20}
    folds = CASIA_VIEWS
    window = 20
    center_joint: ClassVar[int | None] = 0
    main_score = "rank1"
    published = CasiaBCrossView.published
    published_sources = CasiaBCrossView.published_sources
    references = CasiaBCrossView.references
    reference_source = SMSGE_CASIA_B_SOURCE

    def fixed_data_options(self) -> dict[str, Any]:
        return {**self.data_options, "view": "set by the fold"}

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        records = data.load(self.dataset, **self.data_options, view=CASIA_VIEWS.index(fold))
        train_recs = [r for r in records if r.session == "train"]
        test_recs = [r for r in records if r.session == "test"]
        if not train_recs or not test_recs:
            missing = "train" if not train_recs else "test"
            raise ValueError(f"fold {fold!r}: the {missing} split of view_{CASIA_VIEWS.index(fold)} is empty")
        info: dict[str, Any] = {"view_folder": f"view_{CASIA_VIEWS.index(fold)}"}
        test_recs = _drop_unseen(fold, train_recs, test_recs, info)
        # Records are already f-frame windows: one window each.
        cut = window_splits({"train": train_recs, "test": test_recs}, self.window, records, self.center_joint,
                            train_stride=self.window)
        info.update(window_counts(cut["train"], {"test": cut["test"]}))
        return FoldData(train=cut["train"], test=cut["test"], info=info)


class CasiaBConditionMatching(Protocol):
    """Retrieval between walking conditions on people unseen in training (probe-gallery folds)."""

    version = "1"
    mode = "retrieval"
    modality = "skeleton"
    description = (
        "CASIA-B condition matching (CME) as in CAGE/SPC-MGR/TranSG, folds probe-gallery nm-nm, bg-bg, "
        "cl-cl, bg-nm, cl-nm. Split as GaitGraph's standard CASIA-B evaluation: train on all sequences of "
        "subjects 001-074; test subjects 075-124 with gallery nm-01..04 and probes nm-05/06 (nm-nm), "
        "bg-01/02 (bg-nm), cl-01/02 (cl-nm); same-condition bg-bg / cl-cl use probe bg-02 / cl-02 against "
        "gallery bg-01 / cl-01. All 11 views pooled on both sides; a gallery sequence of the probe's person "
        "seen from the probe's view is junk (CASIA-B's 'identical-view cases excluded', pooled over views). "
        "Sequence embedding = mean of its window embeddings; windows f = 40 (SPC-MGR's CASIA-B length), "
        "train stride 20, test stride 40, centred on joint 0"
    )
    dataset: ClassVar[str] = "casia-b-3d"
    datasets = ("casia-b-3d",)
    data_options: ClassVar[dict[str, Any]] = {}
    folds = ("nm-nm", "bg-bg", "cl-cl", "bg-nm", "cl-nm")
    #: fold -> (probe sessions, gallery sessions); session = "<condition>-<sequence number>".
    fold_sessions: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "nm-nm": (("nm-05", "nm-06"), ("nm-01", "nm-02", "nm-03", "nm-04")),
        "bg-bg": (("bg-02",), ("bg-01",)),
        "cl-cl": (("cl-02",), ("cl-01",)),
        "bg-nm": (("bg-01", "bg-02"), ("nm-01", "nm-02", "nm-03", "nm-04")),
        "cl-nm": (("cl-01", "cl-02"), ("nm-01", "nm-02", "nm-03", "nm-04")),
    }
    train_subjects: ClassVar[range] = range(1, 75)
    test_subjects: ClassVar[range] = range(75, 125)
    window = 40
    train_stride: ClassVar[int] = 20
    test_stride: ClassVar[int] = 40
    center_joint: ClassVar[int | None] = 0
    #: Centre on the mean of these joints instead (layouts without a single central joint).
    center_joints: ClassVar[tuple[int, ...] | None] = None
    main_score = "rank1"
    filter_same_camera = True
    references: ClassVar[dict[str, dict[str, dict[str, float]]]] = {}
    reference_source = ""

    def training_set(self, fold: str) -> str:
        """Every condition pair learns on the same subjects."""
        return f"subjects {self.train_subjects.start:03d}-{self.train_subjects.stop - 1:03d}"

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        probe_sessions, gallery_sessions = self.fold_sessions[fold]
        records = data.load(self.dataset, **self.data_options)
        train_recs = [r for r in records if r.person in self.train_subjects]
        test_recs = [r for r in records if r.person in self.test_subjects]
        query_recs = [r for r in test_recs if r.session in probe_sessions]
        gallery_recs = [r for r in test_recs if r.session in gallery_sessions]
        for label, recs, what in (
            ("train", train_recs, f"subjects {self.train_subjects.start:03d}-{self.train_subjects.stop - 1:03d}"),
            ("query", query_recs, f"sessions {', '.join(probe_sessions)}"),
            ("gallery", gallery_recs, f"sessions {', '.join(gallery_sessions)}"),
        ):
            if not recs:
                raise ValueError(f"fold {fold!r}: no {label} sequences ({what})")
        shared = {r.person for r in train_recs} & ({r.person for r in query_recs} | {r.person for r in gallery_recs})
        if shared:  # pragma: no cover - the subject ranges are disjoint
            raise ValueError(f"fold {fold!r}: identities in both train and test: {sorted(shared)}")
        sides = {"train": train_recs, "query": query_recs, "gallery": gallery_recs}
        center = self.center_joint
        if self.center_joints is not None:
            sides = {name: centred(recs, self.center_joints) for name, recs in sides.items()}
            center = None
        cut = window_splits(sides, self.window, records, center, train_stride=self.train_stride,
                            test_stride=self.test_stride)
        info = window_counts(cut["train"], {"query": cut["query"], "gallery": cut["gallery"]})
        info["split"] = split_info(sides)
        return FoldData(train=cut["train"], query=cut["query"], gallery=cut["gallery"], info=info)


class CasiaBCocoConditionMatching(CasiaBConditionMatching):
    """``casia-b-cme`` on GaitGraph's public 2D COCO-17 poses."""

    description = (
        "casia-b-cme's folds and split on GaitGraph's CASIA-B COCO-17 poses (z = 0): windows f = 60 "
        "(GaitGraph's evaluation length), train stride 30, test stride 60, centred on the hip midpoint "
        "(COCO has no pelvis joint)"
    )
    dataset = "casia-b-coco"
    datasets = ("casia-b-coco",)
    window = 60
    train_stride = 30
    test_stride = 60
    center_joint = None
    center_joints = (11, 12)
