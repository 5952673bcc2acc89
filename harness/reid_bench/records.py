"""Canonical records: what a dataset loader produces, whatever the file format it reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass
class SkeletonSequence:
    """One skeleton sequence as recorded; frames are float32 [T, J, 3] in metres (z = 0 for 2D)."""

    frames: np.ndarray
    layout: str
    person: int
    sequence: str
    view: str = ""
    condition: str = ""
    session: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames, dtype=np.float32)
        if frames.ndim != 3 or frames.shape[-1] != 3:
            raise ValueError(
                f"{self.source or self.sequence}: skeleton frames must be [T, J, 3], got {frames.shape}"
            )
        if frames.shape[0] == 0:
            raise ValueError(f"{self.source or self.sequence}: empty sequence (no frames)")
        if not np.isfinite(frames).all():
            raise ValueError(f"{self.source or self.sequence}: non-finite joint coordinates")
        self.frames = frames

    def with_frames(self, frames: np.ndarray) -> "SkeletonSequence":
        """The same sequence (labels, source) with other frames: what a protocol's centring,
        scaling or trimming makes; named fields, so a new field cannot be dropped or shifted."""
        return dataclasses.replace(self, frames=frames)


@dataclass
class PointCloud:
    """One coloured cloud: points float32 [N, 6] = xyz + rgb in [0, 1].

    ``subset`` carries the release's own split (train / query / gallery) where it has one;
    ``domain`` tells cross-domain protocols apart (e.g. "market" vs "duke").
    """

    points: np.ndarray
    person: int
    camera: int
    source: str = ""
    subset: str = ""
    domain: str = ""

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 6:
            raise ValueError(f"{self.source}: point cloud must be [N, 6], got {points.shape}")
        if points.shape[0] == 0:
            raise ValueError(f"{self.source}: empty point cloud")
        if not np.isfinite(points).all():
            raise ValueError(f"{self.source}: non-finite point coordinates or colours")
        self.points = points


Record = SkeletonSequence | PointCloud
