"""Protocols on the two real datasets of ../shared/data (Kinder-Gator, PsyMo).

No paper reports numbers for these settings, so neither protocol has reference numbers.
Both splits are fixed by the data's own labels (actions; viewpoints, variations and runs), so
no split seed is needed and a fold is the same on every machine; the membership is still stored
with each run (``info["split"]``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from reid_bench.api import DataAccess, FoldData, Protocol, RetrievalScoring, SkeletonSequence
from reid_bench.datasets.generic import DEFAULT_CENTRES
from reid_bench.datasets.psymo import VARIATIONS, VIEWS, parse_walk_name
from reid_bench.protocols.generic import skeleton_retrieval_fold

#: Cyclic locomotion in place: the actions closest to gait.
KINDER_GATOR_WALK_RUN: tuple[str, ...] = (
    "Walk-in-place",
    "Walk-in-place-as-fast-as-you-can",
    "Run-in-place",
    "Run-in-place-as-fast-as-you-can",
)
#: The other whole-body actions of the shared subset (file-name spelling).
KINDER_GATOR_OTHER: tuple[str, ...] = (
    "Bow",
    "Touch-your-toes",
    "Do-a-forward-lunge",
    "Jump",
    "Do-two-jumping-jacks",
    "Swim",
    "Kick-a-ball",
    "Climb-and-imaginary-ladder",
)


class KinderGatorCrossAction(Protocol):
    """Re-identify people across actions: enrol them with some actions, recognise them in others.

    Retrieval rather than closed-set: each person has one trial per action, so "which enrolled
    person performed this unseen action" is a ranking of probe sequences against the enrolled
    (gallery) sequences. The model learns on the gallery actions only (enrolment data, the same 20
    people); no probe action is ever seen in training, so no probe sequence leaks into training.
    """

    description = (
        "Kinder-Gator (20 people, adults and children, Kinect v1): cross-action retrieval. Fold gallery-walkrun: "
        "the model learns on and enrols each person's 4 walk/run-in-place trials; probes are the 8 other "
        "whole-body actions (bow, toe touch, lunge, jump, jumping jacks, swim, kick, ladder). Fold "
        "gallery-other: the reverse. Sequence embedding = mean of window embeddings (f = 6, centred on HipCenter)."
    )
    version = "1"
    #: This project's own protocol: L2-normalised window features averaged per sequence.
    scoring = RetrievalScoring(distance="cosine", item="sequence", rank_over="valid")
    mode = "retrieval"
    modality = "skeleton"
    datasets = ("kinder-gator",)
    dataset: ClassVar[str] = "kinder-gator"
    folds = ("gallery-walkrun", "gallery-other")
    window = 6
    main_score = "mAP"
    filter_same_camera = False  # one Kinect: every sequence has the same (empty) view
    references = {}
    reference_source = ""
    fold_actions: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "gallery-walkrun": (KINDER_GATOR_WALK_RUN, KINDER_GATOR_OTHER),
        "gallery-other": (KINDER_GATOR_OTHER, KINDER_GATOR_WALK_RUN),
    }

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        gallery_actions, probe_actions = self.fold_actions[fold]
        records: list[SkeletonSequence] = data.load(self.dataset)
        gallery = [r for r in records if r.condition in gallery_actions]
        query = [r for r in records if r.condition in probe_actions]
        info = {"gallery_actions": ",".join(gallery_actions), "probe_actions": ",".join(probe_actions)}
        return skeleton_retrieval_fold(fold, list(gallery), query, gallery, self.window,
                                       DEFAULT_CENTRES["kinect-v1-20"], extra_info=info)


class PsyMoCrossView(Protocol):
    """CASIA-B-like matching on PsyMo: enrol normal walks at one viewpoint, recognise other walks
    seen from the other viewpoints.

    Fold ``<variation>-<gallery view>`` (21 = 7 x 3): the gallery is every identity's first
    normal round trip (nm, run 0; both directions) at the gallery viewpoint; probes are the
    variation's walks (nm: the second round trip, run 1; others: run 0) at the two other
    viewpoints, as CASIA-B evaluates each gallery view against the other probe views. The model
    learns on the nm run 0 walks at all three viewpoints (enrolment data; no probe walk is in
    training or in the gallery).
    """

    description = (
        "PsyMo (the 10 identities of the shared subset, 2D COCO-17 AlphaPose): cross-view retrieval. Fold "
        "<variation>-<view>: gallery = nm run 0 at that viewpoint, probes = the variation (nm = run 1; bg, cl, ph, "
        "txt, wsf, wss) at the two other viewpoints; training = nm run 0 at all viewpoints. f = 20 (SM-SGE's "
        "CASIA-B window); skeletons centred on the hip midpoint and scaled by the torso length per frame."
    )
    version = "1"
    #: This project's own protocol: L2-normalised window features averaged per sequence.
    scoring = RetrievalScoring(distance="cosine", item="sequence", rank_over="valid")
    mode = "retrieval"
    modality = "skeleton"
    datasets = ("psymo",)
    dataset: ClassVar[str] = "psymo"
    folds = tuple(f"{variation}-{view}" for variation in VARIATIONS for view in VIEWS)
    window = 20
    main_score = "rank1"
    filter_same_camera = False  # the gallery holds one viewpoint, the probes the other two
    references = {}
    reference_source = ""

    def training_set(self, fold: str) -> str:
        """Every fold learns on the same walks (nm run 0, every viewpoint): one fit per seed serves
        all 21 folds, where each fold fitted the same model again before."""
        return "nm run 0 at all views"

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        variation, gallery_view = fold.rsplit("-", 1)
        records: list[SkeletonSequence] = data.load(self.dataset)
        names = {r.sequence: parse_walk_name(r.sequence) for r in records}
        enrol = [r for r in records if names[r.sequence].variation == "nm" and names[r.sequence].run == 0]
        gallery = [r for r in enrol if r.view == gallery_view]
        probe_run = 1 if variation == "nm" else 0
        query = [r for r in records if names[r.sequence].variation == variation and names[r.sequence].run == probe_run
                 and r.view != gallery_view]
        info = {"gallery": f"nm run 0 at {gallery_view} degrees",
                "probe": f"{variation} run {probe_run} at the other views", "train": "nm run 0 at all views"}
        return skeleton_retrieval_fold(fold, torso_scaled(enrol), torso_scaled(query), torso_scaled(gallery),
                                       self.window, DEFAULT_CENTRES["coco-17"], extra_info=info)


def torso_scaled(records: list[SkeletonSequence]) -> list[SkeletonSequence]:
    """COCO-17 skeletons divided, per frame, by the shoulder-midpoint to hip-midpoint distance: 2D
    pixel sizes change with the distance to the camera (also within a walk), body proportions do not."""
    out = []
    for r in records:
        shoulders = r.frames[:, [5, 6], :].mean(axis=1)
        hips = r.frames[:, [11, 12], :].mean(axis=1)
        torso = np.linalg.norm(shoulders - hips, axis=-1)
        scale = np.where(torso > 1e-6, torso, 1.0)[:, None, None]
        out.append(r.with_frames(r.frames / scale))
    return out
