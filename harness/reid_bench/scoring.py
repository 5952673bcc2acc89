"""How a retrieval protocol ranks, as data: the distance, the retrieval item, the Rank-k denominator.

Models return raw embeddings; the protocol decides what is compared. The skeleton releases
(SimMC, SPC-MGR, Hi-MPC, TranSG, MoCos) rank each probe window against each gallery window by
the Euclidean distance of their raw features (SimMC.py lines 460-470 and 992, commit c325ad5;
TranSG.py 602-613; MoCos.py 833-844) and divide Rank-k by every probe window, a probe without a
true match counting as a miss (SimMC.py 483-504), while mAP averages over probes with a match
(SimMC.py 453). OG-Net ranks L2-normalised features. Any other choice on a run is a named
switch (``--set eval.distance=cosine``) and shows on its leaderboard row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from reid_bench.samples import SampleSet

Distance = Literal["euclidean", "cosine"]
Item = Literal["sample", "sequence"]
RankOver = Literal["valid", "all"]


@dataclass(frozen=True)
class RetrievalScoring:
    """``distance``: "euclidean" on the raw embeddings, or "cosine" (Euclidean on L2-normalised
    embeddings: the ranking of cosine similarity). ``item``: "sample" (every window or cloud is a
    query or gallery item) or "sequence" (a sequence's windows averaged into one item; "cosine"
    normalises each window and the mean). ``rank_over``: Rank-k divided by the queries with a true
    match in the gallery ("valid", torchreid's rule) or by every query ("all", the skeleton
    releases'). mAP and mINP are always over the queries with a match."""

    distance: Distance = "cosine"
    item: Item = "sequence"
    rank_over: RankOver = "valid"

    def describe(self) -> str:
        what = {"euclidean": "Euclidean distance of the raw embeddings",
                "cosine": "Euclidean distance of L2-normalised embeddings (cosine ranking)"}[self.distance]
        item = {"sample": "every window (or cloud) is an item",
                "sequence": "a sequence's windows averaged into one item"}[self.item]
        over = {"valid": "Rank-k over queries with a true match", "all": "Rank-k over every query"}[self.rank_over]
        return f"{what}; {item}; {over}"


FIELD_RELEASES = RetrievalScoring(distance="euclidean", item="sample", rank_over="all")


def l2_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_items(features: np.ndarray, split: SampleSet, scoring: RetrievalScoring
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item features, person ids, camera ids) of a split under ``scoring``."""
    feats = l2_rows(features) if scoring.distance == "cosine" else np.asarray(features, dtype=np.float32)
    if scoring.item == "sample":
        return feats, split.person, split.camera
    groups, inverse = np.unique(split.group, return_inverse=True)
    sums = np.zeros((len(groups), feats.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, feats)
    first = np.zeros(len(groups), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    if scoring.distance == "cosine":
        items = l2_rows(sums.astype(np.float32))
    else:
        items = (sums / np.bincount(inverse)[:, None]).astype(np.float32)
    return items, split.person[first], split.camera[first]
