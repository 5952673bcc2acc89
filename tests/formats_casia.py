"""Fixture writers for the CASIA-B loaders and SM-SGE's ``.npy`` layout, in their exact formats.

- ``casia-b-3d``: one file per sequence named like CASIA-B's videos (``001-nm-01-090.txt``),
  one frame per line of 42 numbers (x, y, z of the 14 joints in 3DHumanPose order), or ``.npy``.
- ``casia-b-coco``: GaitGraph's pose CSV (``image_name`` + ``<joint>_{x,y,conf}`` x 17), image
  names ``./SSS-CC-NN-VVV/<frame>.jpg`` as ``find . -regex '.*\\.jpg'`` lists them.
- ``smsge-npy``: ``Datasets/<DS>/<f>/[view_<k>/]<DS>_{train,test}_npy_data`` as SPC-MGR's
  Preprocess.py saves them: windows' frames one after another ([N*f, J] float64 per
  coordinate), ``frame_id`` int64 [N], the reversed ``target_*`` copies and the pickled
  ``ids_*`` dict (written here with numpy's pickling, never read by the loader).
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

VIEWS = tuple(f"{a:03d}" for a in range(0, 181, 18))
CONDITION_SEQUENCES = {"nm": 6, "bg": 2, "cl": 2}
COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_HEADER = ["image_name"] + [f"{j}_{c}" for j in COCO_JOINTS for c in ("x", "y", "conf")]

# A standing pose in 3DHumanPose's 14-joint order (image-like units: x right, y down, z depth).
_CASIA_REST = np.array(
    [
        [0.0, -80.0, 0.0],  # head
        [0.0, -60.0, 0.0],  # neck
        [-12.0, -58.0, 1.0], [-15.0, -35.0, 2.0], [-16.0, -15.0, 3.0],  # right shoulder, elbow, wrist
        [12.0, -58.0, -1.0], [15.0, -35.0, -2.0], [16.0, -15.0, -3.0],  # left shoulder, elbow, wrist
        [-8.0, -5.0, 0.0], [-8.0, 20.0, 1.0], [-8.0, 45.0, 2.0],  # right hip, knee, ankle
        [8.0, -5.0, 0.0], [8.0, 20.0, -1.0], [8.0, 45.0, -2.0],  # left hip, knee, ankle
    ]
)


def sequence_name(subject: int, condition: str, number: int, view: str) -> str:
    return f"{subject:03d}-{condition}-{number:02d}-{view}"


def all_sessions(conditions: Iterable[str] = ("nm", "bg", "cl")) -> list[str]:
    return [f"{c}-{n:02d}" for c in conditions for n in range(1, CONDITION_SEQUENCES[c] + 1)]


def walking_casia_14(subject: int, frames: int, seed: int = 0) -> np.ndarray:
    """A [T, 14, 3] walk whose size and cadence depend on the subject (learnable identity)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 + 0.04 * ((subject * 7) % 11 - 5)
    cadence = 0.25 + 0.01 * (subject % 5)
    t = np.arange(frames)[:, None]
    pose = np.repeat(_CASIA_REST[None] * scale, frames, axis=0)
    swing = 6.0 * np.sin(cadence * t)
    pose[:, [9, 10, 5, 6, 7], 0] += swing  # right leg and left arm forward together
    pose[:, [12, 13, 2, 3, 4], 0] -= swing
    pose[:, :, 0] += 2.0 * t  # walking across the image
    return pose + rng.normal(0.0, 0.3, pose.shape)


def write_casia_3d_txt(path: Path, frames: np.ndarray, sep: str = ",") -> Path:
    """One frame per line: x, y, z of joints 0..13."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(f"{v:.6f}" for v in frame.reshape(-1)) for frame in frames]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_casia_3d_npy(path: Path, frames: np.ndarray, flat: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, frames.reshape(len(frames), -1) if flat else frames)
    return path


def make_casia_3d_dataset(
    root: Path,
    subjects: Sequence[int] = (1, 2, 3),
    views: Sequence[str] = ("072", "090", "108"),
    sessions: Sequence[str] | None = None,
    frames: int = 30,
    fmt: str = "npy",
) -> list[str]:
    """A casia-b-3d folder: every (subject, session, view) as one file; returns the sequence names."""
    names = []
    for s in subjects:
        for session in sessions or all_sessions():
            cond, num = session.split("-")
            for v in views:
                name = sequence_name(s, cond, int(num), v)
                data = walking_casia_14(s, frames, seed=zlib.crc32(name.encode()))
                if fmt == "npy":
                    write_casia_3d_npy(root / f"{name}.npy", data)
                else:
                    write_casia_3d_txt(root / f"{name}.txt", data)
                names.append(name)
    return names


def coco_rows(name: str, frames: np.ndarray, first_frame: int = 1) -> list[list[object]]:
    """GaitGraph CSV rows of one sequence; ``frames`` is [T, 17, 3] (x, y, confidence)."""
    rows = []
    for i, frame in enumerate(frames):
        rows.append([f"./{name}/{first_frame + i:06d}.jpg"] + [float(v) for v in frame.reshape(-1)])
    return rows


def write_gaitgraph_csv(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str] = COCO_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
    return path


def coco_sequence(subject: int, frames: int, seed: int = 0) -> np.ndarray:
    """[T, 17, 3] pixel keypoints plus a confidence in (0, 1]."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(50.0, 200.0, size=(17, 2)) * (1.0 + 0.02 * subject)
    xy = base[None] + np.arange(frames)[:, None, None] * 1.5 + rng.normal(0, 0.5, (frames, 17, 2))
    conf = rng.uniform(0.3, 1.0, size=(frames, 17, 1))
    return np.concatenate([xy, conf], axis=-1)


def make_gaitgraph_csvs(
    root: Path,
    subjects: Sequence[int] = (1, 2, 75, 76),
    views: Sequence[str] = ("000", "090"),
    sessions: Sequence[str] | None = None,
    frames: int = 20,
    split_at: int | None = 75,
) -> dict[str, np.ndarray]:
    """GaitGraph's release: the full table plus train_valid / test splits (rows repeated)."""
    data: dict[str, np.ndarray] = {}
    full, train, test = [], [], []
    for s in subjects:
        for session in sessions or all_sessions():
            cond, num = session.split("-")
            for v in views:
                name = sequence_name(s, cond, int(num), v)
                data[name] = coco_sequence(s, frames, seed=zlib.crc32(name.encode()))
                rows = coco_rows(name, data[name])
                full += rows
                (train if split_at is not None and s < split_at else test).extend(rows)
    write_gaitgraph_csv(root / "casia-b_pose_coco.csv", full)
    if split_at is not None:
        write_gaitgraph_csv(root / "casia-b_pose_train_valid.csv", train)
        write_gaitgraph_csv(root / "casia-b_pose_test.csv", test)
    return data


# --------------------------------------------------------------------------------------------
# SM-SGE's preprocessed .npy
# --------------------------------------------------------------------------------------------


def write_smsge_split(
    folder: Path, prefix: str, tag: str, f: int, windows: np.ndarray, persons: Sequence[int]
) -> None:
    """One split as SPC-MGR's Preprocess.get_npy_data saves it (np.save of Python lists)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, frames, joints, _ = windows.shape
    assert frames == f and len(persons) == n
    rows = windows.reshape(n * f, joints, 3)
    reversed_rows = windows[:, ::-1].reshape(n * f, joints, 3)
    for c, name in enumerate("xyz"):
        np.save(folder / f"{prefix}source_{name}_{tag}_{f}.npy", np.array(rows[..., c].tolist()))
        np.save(folder / f"{prefix}target_{name}_{tag}_{f}.npy", np.array(reversed_rows[..., c].tolist()))
    ids: dict[int, list[int]] = {}
    for k, p in enumerate(persons):
        ids.setdefault(int(p), []).append(k)
    np.save(folder / f"ids_{tag}_{f}.npy", ids)  # a pickle, exactly like the release
    np.save(folder / f"frame_id_{tag}_{f}.npy", [int(p) for p in persons])


def random_windows(persons: Sequence[int], f: int, joints: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(len(persons), f, joints, 3)) + np.asarray(persons, dtype=float)[:, None, None, None]


def make_smsge_dataset(
    root: Path,
    dataset: str,
    f: int,
    splits: dict[str, tuple[np.ndarray, Sequence[int]]],
    view: int | None = None,
) -> Path:
    """``root/Datasets/<dataset>/<f>/[view_<k>/]...``; ``splits`` maps session -> (windows, persons).

    Sessions: "train" and "test"; IAS: "train", "A", "B"; CASIA_B_match: "train", "nm", "bg", "cl".
    """
    file_ds = "CASIA_B" if dataset == "CASIA_B_match" else dataset
    base = root / "Datasets" / dataset / str(f)
    if view is not None:
        base = base / f"view_{view}"
    for session, (windows, persons) in splits.items():
        if session == "train":
            write_smsge_split(base / f"{file_ds}_train_npy_data", "", file_ds, f, windows, persons)
        elif dataset == "IAS":
            write_smsge_split(base / "IAS_test_npy_data", "t_", f"IAS-{session}", f, windows, persons)
        elif dataset == "CASIA_B_match":
            write_smsge_split(base / f"{file_ds}_test_npy_data" / session, "t_", file_ds, f, windows, persons)
        else:
            write_smsge_split(base / f"{file_ds}_test_npy_data", "t_", file_ds, f, windows, persons)
    return base
