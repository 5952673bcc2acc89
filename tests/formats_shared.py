"""Fixture writers for Kinder-Gator, PsyMo and the generic format, in exactly their on-disk formats.

Kinder-Gator: ``Adults|Children/POSE-p<PID>_<nn>-<action>-<unix ms>.csv``, a header row
``Timestamp,<Joint>X,<Joint>Y,<Joint>Z,...,User-ID,Action,`` and one row per frame ending with a
comma. PsyMo: ``semantic_data/skeletons/<ID>/<ID:03d>_<view:02d>_<dir>_<run>_<variation>.json``,
AlphaPose result lists (image_id, category_id, keypoints, score, box, idx), plus walks-v2.csv.
Generic: dataset.toml + manifest.csv + .npy/.csv arrays (docs/generic-format.md).
Other tests (e.g. an end-to-end CLI run with --data-root) can import these.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

KINECT_V1_JOINTS = (
    "HipCenter", "Spine", "ShoulderCenter", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
)
KINDER_GATOR_ACTIONS = (
    "Bow", "Touch-your-toes", "Do-a-forward-lunge", "Walk-in-place", "Walk-in-place-as-fast-as-you-can",
    "Run-in-place", "Run-in-place-as-fast-as-you-can", "Jump", "Do-two-jumping-jacks", "Swim", "Kick-a-ball",
    "Climb-and-imaginary-ladder",
)
#: (variation, run) of each person's walks per viewpoint and direction: 8 x 3 x 2 = 48.
PSYMO_WALKS = (("nm", 0), ("nm", 1), ("bg", 0), ("cl", 0), ("ph", 0), ("txt", 0), ("wsf", 0), ("wss", 0))
PSYMO_VIEWS = (0, 45, 90)

# A standing Kinect v1 skeleton (metres, y up), SDK joint order.
_KINECT_TEMPLATE = np.array([
    [0.0, 0.00, 0.0], [0.0, 0.10, 0.0], [0.0, 0.45, 0.0], [0.0, 0.65, 0.0],
    [-0.18, 0.40, 0.0], [-0.30, 0.15, 0.0], [-0.35, -0.10, 0.0], [-0.37, -0.18, 0.0],
    [0.18, 0.40, 0.0], [0.30, 0.15, 0.0], [0.35, -0.10, 0.0], [0.37, -0.18, 0.0],
    [-0.10, -0.05, 0.0], [-0.11, -0.48, 0.0], [-0.12, -0.88, 0.0], [-0.12, -0.95, 0.08],
    [0.10, -0.05, 0.0], [0.11, -0.48, 0.0], [0.12, -0.88, 0.0], [0.12, -0.95, 0.08],
], dtype=np.float64)

# COCO-17 template in pixels (y down): nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
_COCO_TEMPLATE = np.array([
    [0, -160], [-6, -166], [6, -166], [-14, -162], [14, -162],
    [-30, -130], [30, -130], [-40, -80], [40, -80], [-44, -35], [44, -35],
    [-18, -20], [18, -20], [-20, 50], [20, 50], [-22, 120], [22, 120],
], dtype=np.float64)


def kinect_frames(person: int, frames: int, seed: int = 0) -> np.ndarray:
    """A moving Kinect v1 skeleton [T, 20, 3] whose proportions depend on ``person``."""
    rng = np.random.default_rng(seed * 7919 + person)
    scale = 0.75 + 0.04 * (person % 9)
    limb = 1.0 + 0.05 * ((person * 5) % 7) / 7.0
    base = _KINECT_TEMPLATE * scale
    base[4:12, :] *= limb  # arm proportions
    t = np.arange(frames)[:, None]
    swing = 0.05 * np.sin(2 * np.pi * t / 15.0 + rng.uniform(0, np.pi))
    out = np.repeat(base[None], frames, axis=0)
    out[:, [6, 7, 14, 15], 2] += swing
    out[:, [10, 11, 18, 19], 2] -= swing
    out += rng.normal(0, 0.003, size=out.shape)
    out[:, :, 2] += 3.0
    return out.astype(np.float32)


def coco_keypoints(person: int, frames: int, seed: int = 0) -> np.ndarray:
    """Walking COCO-17 keypoints [T, 17, 3] (x, y, confidence) in pixels for ``person``."""
    rng = np.random.default_rng(seed * 104729 + person)
    scale = 1.0 + 0.08 * (person % 5)
    xy = np.repeat((_COCO_TEMPLATE * scale)[None], frames, axis=0)
    xy[:, :, 0] += 300 + 8.0 * np.arange(frames)[:, None]
    xy[:, :, 1] += 600
    xy += rng.normal(0, 1.0, size=xy.shape)
    conf = rng.uniform(0.3, 0.95, size=(frames, 17, 1))
    return np.concatenate([xy, conf], axis=2)


# ------------------------------------------------------------------------------ Kinder-Gator


def kinder_gator_header(joint_order: Sequence[str] = KINECT_V1_JOINTS) -> str:
    coords = ",".join(f"{j}{a}" for j in joint_order for a in "XYZ")
    return f"Timestamp,{coords},User-ID,Action,"


def write_kinder_gator_trial(path: Path, frames: np.ndarray, pid: int, action: str, start_ms: float = 36868922.9069,
                             joint_order: Sequence[str] = KINECT_V1_JOINTS) -> Path:
    """One trial file; ``frames`` [T, 20, 3] in kinect-v1-20 order, written in ``joint_order``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    perm = [KINECT_V1_JOINTS.index(j) for j in joint_order]
    lines = [kinder_gator_header(joint_order)]
    for t, frame in enumerate(frames):
        coords = ",".join(f"{v:.7g}" for v in frame[perm].reshape(-1))
        lines.append(f"{start_ms + 32.0 * t:.4f},{coords},{pid},{action},")
    path.write_text("\n".join(lines) + "\n")
    return path


def kinder_gator_name(pid: int, motion: int, action: str, stamp: int) -> str:
    return f"POSE-p{pid}_{motion:02d}-{action}-{stamp}.csv"


def make_kinder_gator(root: Path, adults: Sequence[int] = (565, 577), children: Sequence[int] = (103, 106),
                      actions: Sequence[str] = KINDER_GATOR_ACTIONS, frames: int = 14, nested: bool = False,
                      joint_order: Sequence[str] = KINECT_V1_JOINTS) -> dict[str, Any]:
    """A Kinder-Gator tree under ``root`` (``root/SKELETON_DATA/...`` when ``nested``).

    Returns what a loader must find: files, frames per sequence id, person and session per id.
    """
    base = root / "SKELETON_DATA" if nested else root
    expected: dict[str, Any] = {"files": [], "frames": {}, "person": {}, "session": {}, "condition": {}}
    stamp = 1_469_182_474_370
    for group, session, pids in (("Adults", "adult", adults), ("Children", "child", children)):
        for pid in pids:
            for k, action in enumerate(actions):
                stamp += 15_000
                n = frames + (k % 3)
                data = kinect_frames(pid, n, seed=k)
                path = write_kinder_gator_trial(base / group / kinder_gator_name(pid, k + 1, action, stamp), data, pid,
                                                action, joint_order=joint_order)
                seq = path.stem
                expected["files"].append(path)
                expected["frames"][seq] = data
                expected["person"][seq] = pid
                expected["session"][seq] = session
                expected["condition"][seq] = action
    return expected


# ------------------------------------------------------------------------------------- PsyMo


def psymo_stem(pid: int, view: int, direction: int, run: int, variation: str) -> str:
    return f"{pid:03d}_{view:02d}_{direction}_{run}_{variation}"


def alphapose_entry(frame: int, keypoints: np.ndarray, score: float) -> dict[str, Any]:
    """One AlphaPose result entry; ``keypoints`` [17, 3] = x, y, confidence."""
    x, y = keypoints[:, 0], keypoints[:, 1]
    return {
        "image_id": f"{frame}.jpg",
        "category_id": 1,
        "keypoints": [float(v) for v in np.asarray(keypoints, dtype=np.float64).reshape(-1)],
        "score": float(score),
        "box": [float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min())],
        "idx": [0.0],
    }


def write_psymo_walk(path: Path, keypoints: np.ndarray, frame_numbers: Sequence[int] | None = None,
                     extra: Iterable[tuple[int, np.ndarray, float]] = (), score: float = 2.9) -> Path:
    """An AlphaPose JSON list; ``extra`` adds (frame, keypoints, score) detections of other people,
    written right after the walker's detection of that frame (AlphaPose groups by image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    numbers = list(frame_numbers) if frame_numbers is not None else list(range(5, 5 + len(keypoints)))
    others: dict[int, list[tuple[np.ndarray, float]]] = {}
    for frame, kp, s in extra:
        others.setdefault(frame, []).append((kp, s))
    entries = []
    for frame, kp in zip(numbers, keypoints):
        entries.append(alphapose_entry(frame, kp, score))
        entries += [alphapose_entry(frame, okp, s) for okp, s in others.get(frame, [])]
    path.write_text(json.dumps(entries))
    return path


def make_psymo(root: Path, ids: Sequence[int] = (0, 1), frames: int = 24, index: bool = True) -> dict[str, Any]:
    """A PsyMo tree with the 48 walks of each id (3 views x 2 directions x 8 walks) and walks-v2.csv."""
    expected: dict[str, Any] = {"files": [], "keypoints": {}, "person": {}}
    rows = []
    for pid in ids:
        for view in PSYMO_VIEWS:
            for direction in (0, 1):
                for w, (variation, run) in enumerate(PSYMO_WALKS):
                    stem = psymo_stem(pid, view, direction, run, variation)
                    kp = coco_keypoints(pid, frames + w, seed=view + direction * 7 + w * 13)
                    path = write_psymo_walk(root / "semantic_data" / "skeletons" / str(pid) / f"{stem}.json", kp)
                    expected["files"].append(path)
                    expected["keypoints"][stem] = kp
                    expected["person"][stem] = pid
                    file_id = f"{pid:03d}:{view:02d}:{direction}:{run}:{variation}"
                    rows.append((pid, view, variation, direction, run, file_id))
    if index:
        with (root / "walks-v2.csv").open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["ID", "viewpoint", "variation", "direction", "run", "file_id"])
            writer.writerows(rows)
    return expected


# ----------------------------------------------------------------------------------- generic


def write_generic_source(folder: Path, samples: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None,
                         layout_file: dict[str, Any] | None = None, array_format: str = "npy",
                         manifest_name: str = "manifest.csv", columns: Sequence[str] | None = None) -> Path:
    """A generic-format folder (or import source). Each sample dict has ``array`` plus manifest
    fields (person, view, condition, session, split, sequence, domain); ``path`` is optional.
    ``settings`` becomes dataset.toml (omitted when None); ``layout_file`` becomes layout.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(columns or ["path", "person", "view", "condition", "session", "split"])
    with (folder / manifest_name).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(cols)
        for i, sample in enumerate(samples):
            fmt = sample.get("format", array_format)
            rel = sample.get("path") or f"arrays/s{i:03d}.{fmt}"
            target = Path(rel) if Path(rel).is_absolute() else folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            arr = np.asarray(sample["array"])
            if fmt == "npy":
                np.save(target, arr)
            else:
                flat = arr.reshape(len(arr), -1)
                text = "\n".join(",".join(f"{v:.9g}" for v in row) for row in flat)
                target.write_text((sample["csv_header"] + "\n" if sample.get("csv_header") else "") + text + "\n")
            values = dict(sample, path=rel)
            writer.writerow([values.get(c, "") for c in cols])
    if settings is not None:
        (folder / "dataset.toml").write_text(_toml(settings))
    if layout_file is not None:
        (folder / "layout.toml").write_text(_toml(layout_file))
    return folder


def _toml(table: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        return "[" + ", ".join(value(x) for x in v) + "]"

    plain = [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items()) for k, v in table.items()
              if isinstance(v, dict)]
    return "\n".join(plain) + "\n" + "".join(tables) + "\n"


def skeleton_samples(persons: Sequence[int], per_person: dict[str, int], frames: int = 16,
                     view_of: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Kinect v1 samples for a generic folder: ``per_person`` maps a split to sequences per person."""
    out = []
    for p in persons:
        k = 0
        for split, count in per_person.items():
            for _ in range(count):
                out.append({"array": kinect_frames(p, frames + k, seed=k), "person": p,
                            "view": (view_of or {}).get(split, f"v{k % 2}"), "condition": "walk",
                            "session": f"s{k}", "split": split, "sequence": f"p{p}-{split}-{k}"})
                k += 1
    return out


#: A small user layout (5 joints) for the generic format's layout-file path.
STICK_LAYOUT = {
    "name": "stick-5",
    "joints": ["pelvis", "neck", "head", "left_foot", "right_foot"],
    "edges": [[0, 1], [1, 2], [0, 3], [0, 4]],
    "parts": [[0], [1], [2], [3], [4], [0], [1], [2], [3], [4]],
    "bodies": [[3], [4], [0, 1, 2], [1], [2]],
    "dims": 3,
}
