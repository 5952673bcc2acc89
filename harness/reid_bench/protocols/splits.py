"""The steps every skeleton protocol shares when it cuts a fold: checks that the sides are
disjoint, the sides' membership stored with a run, centring, and the cut into windows.

One implementation each, so that protocols differ only in which records form which side: the
stored split and the windows are what results' fingerprints and the committed boards rest on.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from reid_bench.api import SampleSet, SkeletonSequence
from reid_bench.samples import code_map, label_map, windows_from_sequences


def layout_of(records: Sequence[SkeletonSequence]):
    """The one layout of ``records``; windows of two layouts cannot share a model."""
    from reid_bench.registry import get_registry

    names = sorted({r.layout for r in records})
    if len(names) != 1:
        raise ValueError(f"records mix skeleton layouts {names}; a protocol needs one")
    return get_registry().layout(names[0])


def check_disjoint(sides: Mapping[str, Sequence[SkeletonSequence]], pairs: Sequence[tuple[str, str]] | None = None,
                   fold: str | None = None) -> None:
    """Refuse a sequence on two sides of a fold (test data leaking into training or the gallery).

    With ``pairs``, only those sides are compared and the error names the fold and up to five
    shared sequences; without, every side is compared with every earlier one and the error names
    the first repeated sequence.
    """
    if pairs is None:
        seen: dict[str, str] = {}
        for name, recs in sides.items():
            for rec in recs:
                if rec.sequence in seen:
                    raise ValueError(f"sequence {rec.sequence!r} is in both the {seen[rec.sequence]} and the {name} split")
                seen[rec.sequence] = name
        return
    for a, b in pairs:
        shared = sorted({r.sequence for r in sides[a]} & {r.sequence for r in sides[b]})
        if shared:
            raise ValueError(f"fold {fold!r}: sequences in both {a} and {b}: {shared[:5]}")


def split_info(sides: Mapping[str, Sequence[SkeletonSequence]], split_seed: int | None = None) -> dict[str, Any]:
    """Each side's sequence names (sorted), and the seed of a random split: stored with the run
    so that a fold can be checked and rebuilt."""
    info: dict[str, Any] = {name: sorted(r.sequence for r in recs) for name, recs in sides.items()}
    if split_seed is not None:
        info["split_seed"] = split_seed
    return info


def centred(records: Sequence[SkeletonSequence], joints: Sequence[int] | None) -> list[SkeletonSequence]:
    """Records with the mean of ``joints`` subtracted per frame (a hip midpoint where the layout
    has no pelvis joint); None leaves them as they are."""
    if joints is None:
        return list(records)
    idx = list(joints)
    return [r.with_frames(r.frames - r.frames[:, idx, :].mean(axis=1, keepdims=True)) for r in records]


def window_splits(sides: Mapping[str, Sequence[SkeletonSequence]], window: int,
                  everything: Sequence[SkeletonSequence], center_joint: int | None,
                  train_stride: int | None = None, test_stride: int | None = None,
                  train_offsets: int = 1) -> dict[str, SampleSet]:
    """Every side cut into windows, in the order of ``sides``: class labels from the ``train``
    side's identities, layout and camera codes from ``everything`` (so that codes agree across
    folds). Training windows every ``train_stride`` frames (default f/2, SM-SGE's), the other
    sides every ``test_stride`` (default f: non-overlapping)."""
    layout = layout_of(everything)
    labels = label_map(r.person for r in sides["train"])
    cameras = code_map(r.view for r in everything)
    out: dict[str, SampleSet] = {}
    for name, recs in sides.items():
        if name == "train":
            stride = train_stride if train_stride is not None else max(1, window // 2)
            out[name] = windows_from_sequences(recs, window, stride, layout, labels, cameras, center_joint,
                                               offsets=train_offsets)
        else:
            stride = test_stride if test_stride is not None else window
            out[name] = windows_from_sequences(recs, window, stride, layout, labels, cameras, center_joint)
    return out


def window_counts(train: SampleSet, evaluated: Mapping[str, SampleSet]) -> dict[str, Any]:
    """Windows, sequences and identities of each side (the fold info every skeleton run stores)."""
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
