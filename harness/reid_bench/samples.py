"""What models see: ``SampleSet``, ``DataSpec``, ``FoldData``, and how records become SampleSets
(windows of skeleton sequences, padded clouds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from reid_bench.layouts import Layout
from reid_bench.records import PointCloud, SkeletonSequence


@dataclass
class SampleSet:
    """A batch-friendly split handed to a model.

    Skeletons: ``data`` is float32 [N, f, J, 3] (windows of f frames); ``group`` says which
    sequence each window came from. Point clouds: ``data`` is float32 [N, P, 6]; ``group`` is
    the sample index. ``labels`` are contiguous class indices (0..C-1) of the training split's
    identities; -1 marks an identity unseen in training (retrieval test sets).
    """

    modality: str
    data: np.ndarray
    person: np.ndarray
    labels: np.ndarray
    camera: np.ndarray
    group: np.ndarray
    layout: Layout | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.data)
        for name in ("person", "labels", "camera", "group"):
            arr = np.asarray(getattr(self, name), dtype=np.int64)
            if arr.shape != (n,):
                raise ValueError(f"SampleSet.{name} must have shape ({n},), got {arr.shape}")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def subset(self, index: np.ndarray) -> "SampleSet":
        return SampleSet(
            modality=self.modality,
            data=self.data[index],
            person=self.person[index],
            labels=self.labels[index],
            camera=self.camera[index],
            group=self.group[index],
            layout=self.layout,
            meta={k: v[index] for k, v in self.meta.items()},
        )


@dataclass(frozen=True)
class DataSpec:
    """Shape facts a model needs to build its network before seeing data."""

    modality: str
    num_classes: int
    layout: Layout | None = None
    window: int | None = None
    num_points: int | None = None


@dataclass
class FoldData:
    """The splits of one fold. Closed-set folds fill ``test``; retrieval folds ``query``/``gallery``."""

    train: SampleSet
    test: SampleSet | None = None
    query: SampleSet | None = None
    gallery: SampleSet | None = None
    validation: SampleSet | None = None
    info: dict[str, Any] = field(default_factory=dict)



def label_map(persons: Iterable[int]) -> dict[int, int]:
    """Contiguous class indices for the identities of a training split (sorted person ids)."""
    return {p: i for i, p in enumerate(sorted(set(int(p) for p in persons)))}


def code_map(values: Iterable[str]) -> dict[str, int]:
    """Integer codes for views/cameras given as strings, stable across splits (sorted)."""
    return {v: i for i, v in enumerate(sorted(set(values)))}


def sequence_windows(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of the windows cut from a sequence.

    A sequence shorter than one window yields a single window (padded by repeating its last
    frame) so that no sequence silently disappears from a split.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if num_frames <= window:
        return [0]
    return list(range(0, num_frames - window + 1, stride))


def windows_from_sequences(
    records: Sequence[SkeletonSequence],
    window: int,
    stride: int,
    layout: Layout,
    labels: Mapping[int, int] | None = None,
    cameras: Mapping[str, int] | None = None,
    center_joint: int | None = 0,
    offsets: int = 1,
) -> SampleSet:
    """Cut sequences into windows of ``window`` frames every ``stride`` frames.

    ``center_joint`` subtracts that joint's position per frame (SM-SGE centres on the hip).
    ``labels`` maps person ids to class indices (unknown ids get -1); ``cameras`` maps views.
    ``group`` is the index of the source sequence in ``records``. ``offsets`` > 1 repeats the cut
    from each of the first ``offsets`` frames (the windows of frames s, s+1, ...), as the skeleton
    papers' preprocessing builds its training windows; a sequence shorter than a window gives one
    padded window at offset 0 only.
    """
    if not records:
        raise ValueError("no skeleton sequences to cut into windows")
    cameras = cameras if cameras is not None else code_map(r.view for r in records)
    chunks, persons, cams, groups, seq_names = [], [], [], [], []
    for g, rec in enumerate(records):
        if rec.layout != layout.name:
            raise ValueError(f"{rec.source or rec.sequence}: layout {rec.layout!r}, protocol expects {layout.name!r}")
        if rec.frames.shape[1] != layout.num_joints:
            raise ValueError(
                f"{rec.source or rec.sequence}: {rec.frames.shape[1]} joints, layout {layout.name!r} has {layout.num_joints}"
            )
        frames = rec.frames
        if center_joint is not None:
            frames = frames - frames[:, center_joint : center_joint + 1, :]
        if len(frames) < window:
            frames = np.concatenate([frames, np.repeat(frames[-1:], window - len(frames), axis=0)])
        starts = list(sequence_windows(len(frames), window, stride))
        for offset in range(1, offsets):
            if len(frames) - offset >= window:
                starts += [offset + s for s in sequence_windows(len(frames) - offset, window, stride)]
        idx = np.asarray(starts)[:, None] + np.arange(window)[None, :]
        chunks.append(frames[idx])
        persons.extend([rec.person] * len(starts))
        cams.extend([cameras[rec.view]] * len(starts))
        groups.extend([g] * len(starts))
        seq_names.extend([rec.sequence] * len(starts))
    persons_arr = np.asarray(persons, dtype=np.int64)
    label_arr = (
        np.asarray([labels.get(int(p), -1) for p in persons], dtype=np.int64)
        if labels is not None
        else persons_arr.copy()
    )
    return SampleSet(
        modality="skeleton",
        data=np.concatenate(chunks).astype(np.float32, copy=False),
        person=persons_arr,
        labels=label_arr,
        camera=np.asarray(cams, dtype=np.int64),
        group=np.asarray(groups, dtype=np.int64),
        layout=layout,
        meta={"sequence": np.asarray(seq_names)},
    )


def clouds_to_sampleset(
    records: Sequence[PointCloud],
    labels: Mapping[int, int] | None = None,
    num_points: int | None = None,
    seed: int = 0,
) -> SampleSet:
    """Stack clouds into [N, P, 6]. Clouds with another size are resampled to ``num_points``
    (default: the largest cloud) - without replacement when they have enough points."""
    if not records:
        raise ValueError("no point clouds to stack")
    target = num_points or max(len(r.points) for r in records)
    rng = np.random.default_rng(seed)
    data = np.empty((len(records), target, 6), dtype=np.float32)
    for i, rec in enumerate(records):
        n = len(rec.points)
        if n == target:
            data[i] = rec.points
        else:
            idx = rng.choice(n, size=target, replace=n < target)
            data[i] = rec.points[np.sort(idx)]
    persons = np.asarray([r.person for r in records], dtype=np.int64)
    label_arr = (
        np.asarray([labels.get(int(p), -1) for p in persons], dtype=np.int64)
        if labels is not None
        else persons.copy()
    )
    return SampleSet(
        modality="pointcloud",
        data=data,
        person=persons,
        labels=label_arr,
        camera=np.asarray([r.camera for r in records], dtype=np.int64),
        group=np.arange(len(records), dtype=np.int64),
        meta={"source": np.asarray([r.source for r in records])},
    )


def class_balanced_order(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced training set, built once in a fixed order, as SM-SGE's release
    builds both its pretraining and its recognition data (``class_samp_gen``, utils/process_i.py
    lines 500-535 of Kali-Hac/SM-SGE).

    With C classes (sorted) and B = ``batch_size``: 2 * (N // B) groups; group i takes from every
    class, in class order, its windows [b*i, b*(i+1)) with b = max(1, B // C), or, when fewer are
    left, b windows of that class drawn with replacement. The result (about 1.3-1.9 times N for
    the release's datasets) is used as is, without shuffling.
    """
    labels = np.asarray(labels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    classes = np.unique(labels)
    if len(labels) == 0 or len(classes) == 0:
        return np.zeros(0, dtype=np.int64)
    members = [np.flatnonzero(labels == c) for c in classes]
    per_class = max(1, batch_size // len(classes))
    groups = max(1, (len(labels) // batch_size) * 2)
    out = []
    for i in range(groups):
        for idx in members:
            chunk = idx[per_class * i: per_class * (i + 1)]
            if len(chunk) < per_class:
                chunk = idx[rng.integers(0, len(idx), size=per_class)]
            out.append(chunk)
    return np.concatenate(out).astype(np.int64)
