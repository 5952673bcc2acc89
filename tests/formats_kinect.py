"""Writers of tiny IAS-Lab, KGBD and KS20 trees in the releases' own text formats.

Deterministic walkers whose identity lives in body proportions and gait phase, so that a
baseline can tell the fixture's people apart in an end-to-end run. Each writer returns the
dataset folder (``<root>/<dataset name>``) and leaves ``<root>`` usable as ``--data-root``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

IAS_SESSIONS = ("Training", "TestingA", "TestingB")
KS20_VIEWS = ("frontal", "left_diagonal", "left_lateral", "right_diagonal", "right_lateral")

# A standing Kinect v1 skeleton in SDK order (x right, y up, metres; z added per frame).
_V1_BASE = np.array([
    [0.00, 0.90], [0.00, 1.10], [0.00, 1.40], [0.00, 1.60],      # hip centre, spine, shoulder centre, head
    [-0.18, 1.38], [-0.22, 1.12], [-0.24, 0.90], [-0.25, 0.82],  # left arm
    [0.18, 1.38], [0.22, 1.12], [0.24, 0.90], [0.25, 0.82],      # right arm
    [-0.10, 0.85], [-0.10, 0.48], [-0.10, 0.08], [-0.10, 0.03],  # left leg
    [0.10, 0.85], [0.10, 0.48], [0.10, 0.08], [0.10, 0.03],      # right leg
])
# Kinect v2 extras: spine shoulder, left hand tip, left thumb, right hand tip, right thumb.
_V2_EXTRA = np.array([[0.00, 1.35], [-0.26, 0.74], [-0.22, 0.80], [0.26, 0.74], [0.22, 0.80]])
_SWING = {5: 1, 6: 1, 7: 1, 9: -1, 10: -1, 11: -1, 13: -1, 14: -1, 15: -1, 17: 1, 18: 1, 19: 1}

# KGBD's joint names in the recorder's row order, with their kinect-v1-20 index.
KGBD_ROW_ORDER = (
    ("Head", 3), ("Shoulder-Center", 2), ("Shoulder-Right", 8), ("Shoulder-Left", 4),
    ("Elbow-Right", 9), ("Elbow-Left", 5), ("Wrist-Right", 10), ("Wrist-Left", 6),
    ("Hand-Right", 11), ("Hand-Left", 7), ("Spine", 1), ("Hip-centro", 0),
    ("Hip-Right", 16), ("Hip-Left", 12), ("Knee-Right", 17), ("Knee-Left", 13),
    ("Ankle-Right", 18), ("Ankle-Left", 14), ("Foot-Right", 19), ("Foot-Left", 15),
)


def walker_frame(person: int, frame: int, sequence: int = 0, kinect_v2: bool = False) -> np.ndarray:
    """Joint positions [20 or 25, 3] of ``person`` at ``frame`` of one walk towards the sensor."""
    base = np.vstack([_V1_BASE, _V2_EXTRA]) if kinect_v2 else _V1_BASE
    height = 0.88 + 0.06 * (person % 5)
    width = 0.9 + 0.08 * (person % 3)
    xy = base * np.array([width, height])
    phase = 0.55 * frame + 0.9 * person + 0.3 * sequence
    swing = 0.12 * (1 + 0.2 * (person % 4)) * math.sin(phase)
    z = np.full(len(base), 3.2 - 0.04 * frame - 0.1 * sequence)
    for joint, sign in _SWING.items():
        z[joint] += sign * swing * (0.5 if joint in (5, 9, 13, 17) else 1.0)
    if kinect_v2:
        z[21:] += swing * np.array([1, 1, -1, -1])  # hand tips and thumbs follow the hands
    out = np.column_stack([xy, z])
    out[:, 0] += 0.05 * sequence
    return out


def _fmt(v: float) -> str:
    return f"{v:.7g}"


def ias_frame_text(coords: np.ndarray, states: Sequence[int] | None = None, user: int = 1) -> str:
    """One ``*skel.txt``: 14 comma-separated fields per joint row, as released."""
    states = states if states is not None else [2] * len(coords)
    rows = []
    for j, ((x, y, z), state) in enumerate(zip(coords, states)):
        u, v = 320 + 200 * x / z, 240 - 200 * y / z
        rows.append(",".join([str(user), _fmt(x), _fmt(y), _fmt(z), f"{u:.2f}", f"{v:.2f}", str(state), "0",
                              str(max(j - 1, 0)), str(j), "0", "0", "0", "1"]))
    return "\n".join(rows) + "\n"


def write_ias_lab(root: Path, persons: int = 4, frames: int = 12, sessions: Sequence[str] = IAS_SESSIONS,
                  untracked_frames: Iterable[int] = (), person_names: Sequence[str] | None = None) -> Path:
    """``<root>/ias-lab/<session>/<person>/<frame>_skel.txt`` for ``persons`` people.

    ``untracked_frames``: frame indices written with one joint in tracking state 0 (in every
    sequence), i.e. frames the loader must drop and count.
    """
    base = Path(root) / "ias-lab"
    names = list(person_names) if person_names is not None else [f"{p:03d}" for p in range(1, persons + 1)]
    untracked = set(untracked_frames)
    for s, session in enumerate(sessions):
        for p, name in enumerate(names, start=1):
            folder = base / session / name
            folder.mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                states = [2] * 20
                if t in untracked:
                    states[7] = 0
                coords = walker_frame(p, t, sequence=s)
                (folder / f"{t + 1:05d}_skel.txt").write_text(ias_frame_text(coords, states))
    return base


BIWI_SESSIONS = {"Training": "Training", "Still": "Testing/Still", "Walking": "Testing/Walking"}


def write_biwi(root: Path, persons: int = 4, test_persons: int = 3, frames: int = 30,
               untracked_frames: Iterable[int] = (), second_skeleton_frames: Iterable[int] = ()) -> Path:
    """``<root>/biwi/{Training,Testing/Still,Testing/Walking}/<person>/<frame>_skel.txt`` (BIWI RGBD-ID's
    layout: every frame also has a ground-plane text file, which a loader must not read). The first
    ``test_persons`` are recorded again in Still and Walking. ``second_skeleton_frames``: frames whose
    file holds a second tracked person's 20 rows after the first's."""
    base = Path(root) / "biwi"
    untracked, second = set(untracked_frames), set(second_skeleton_frames)
    for s, (session, folder) in enumerate(BIWI_SESSIONS.items()):
        people = range(1, persons + 1) if session == "Training" else range(1, test_persons + 1)
        for p in people:
            target = base / folder / f"{p:03d}"
            target.mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                states = [2] * 20
                if t in untracked:
                    states[3] = 0
                text = ias_frame_text(walker_frame(p, t, sequence=s), states, user=p)
                if t in second:
                    text += ias_frame_text(walker_frame(p + 7, t, sequence=s), user=p + 7)
                (target / f"{t:05d}_skel.txt").write_text(text)
                (target / f"{t:05d}_groundplane.txt").write_text("0.01,-0.99,0.05,1.2\n")
    return base


def kgbd_walk_text(person: int, walk: int, frames: int) -> str:
    rows = []
    for t in range(frames):
        coords = walker_frame(person, t, sequence=walk)
        rows += [f"{name};{_fmt(coords[j, 0])};{_fmt(coords[j, 1])};{_fmt(coords[j, 2])}" for name, j in KGBD_ROW_ORDER]
    return "\n".join(rows) + "\n"


def write_kgbd(root: Path, walks_per_person: Sequence[int] = (3, 4, 5), frames: int = 12,
               release_folder: bool = True) -> Path:
    """``<root>/kgbd/[kinect gait raw dataset/]PersonNNN/<k>.txt``; person i has walks_per_person[i-1] walks."""
    base = Path(root) / "kgbd"
    people = base / "kinect gait raw dataset" if release_folder else base
    for p, walks in enumerate(walks_per_person, start=1):
        folder = people / f"Person{p:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(1, walks + 1):
            (folder / f"{k}.txt").write_text(kgbd_walk_text(p, k, frames))
    return base


def ks20_frame_text(coords: np.ndarray) -> str:
    return "\n".join(f"{j},{_fmt(x)},{_fmt(y)},{_fmt(z)}" for j, (x, y, z) in enumerate(coords)) + "\n"


def write_ks20(root: Path, bodies: Sequence[int] = (1, 2, 7), cycles: Sequence[str] = ("gc1", "gc2", "gc3"),
               views: Sequence[str] = KS20_VIEWS, frames: int = 10, suffix: str = "") -> Path:
    """``<root>/ks20/<view>/gc<k>_body<n>_<timestamp><suffix>``, one 25-row file per frame.

    Timestamps start below 1000 and cross into four digits, so name order and time order differ.
    """
    base = Path(root) / "ks20"
    for v, view in enumerate(views):
        folder = base / view
        folder.mkdir(parents=True, exist_ok=True)
        for body in bodies:
            for c, cycle in enumerate(cycles):
                for t in range(frames):
                    stamp = 900 + 33 * t + 7 * c
                    coords = walker_frame(body, t, sequence=c + 3 * v, kinect_v2=True)
                    (folder / f"{cycle}_body{body}_{stamp}{suffix}").write_text(ks20_frame_text(coords))
    return base
