"""PoseGait's 81 hand-crafted pose features per frame, reconstructed.

Liao, Yu, An, Huang: A model-based gait recognition method with body pose and human prior
knowledge, Pattern Recognition 98 (2020). The paper builds a per-frame feature from the 14-joint
3D pose (head, neck, shoulders, elbows, wrists, hips, knees, ankles; the joint list of the 3D
lifter it uses, flyawaychase/3DHumanPose ``demo.m`` lines 4-19) out of four families: joint
positions, joint angles, limb lengths and joint motion, 81 values in all. The released code
(RijunLiao/PoseGait, commit ffe74ed) does not compute them: its loader (``Loader.py`` lines
25-72) fills a 126-row input with 2D OpenPose joints, centred on the neck and divided by the
neck-to-mid-hip distance, and nothing else. The paper's exact split of the 81 could not be
read here, so this module fixes one, from the four families and the 14-joint tree, and names it:

- positions (42): the 14 joints centred on the neck, divided by the neck-to-mid-hip distance
  (the release loader's normalisation, ``Loader.py`` lines 45-67);
- limb lengths (13): the 13 bones of the 14-joint tree, in the data's unit;
- joint angles (12): the flexion angle at both shoulders, elbows, hips and knees (8), and the
  swing of both upper arms and thighs against the trunk axis, neck to mid-hip (4), in radians;
- joint motion (14): each normalised joint's displacement from the previous frame (0 at the
  first frame).
"""

from __future__ import annotations

import numpy as np

from reid_bench.api import Layout

#: The 14 joints, in the 3D lifter's order, as layout roles.
JOINTS: tuple[str, ...] = (
    "head", "neck", "shoulder_right", "elbow_right", "wrist_right", "shoulder_left", "elbow_left", "wrist_left",
    "hip_right", "knee_right", "ankle_right", "hip_left", "knee_left", "ankle_left",
)
BONES: tuple[tuple[str, str], ...] = (
    ("head", "neck"),
    ("neck", "shoulder_right"), ("shoulder_right", "elbow_right"), ("elbow_right", "wrist_right"),
    ("neck", "shoulder_left"), ("shoulder_left", "elbow_left"), ("elbow_left", "wrist_left"),
    ("neck", "hip_right"), ("hip_right", "knee_right"), ("knee_right", "ankle_right"),
    ("neck", "hip_left"), ("hip_left", "knee_left"), ("knee_left", "ankle_left"),
)
#: Flexion angles: the angle at the middle joint between the two bones meeting there.
FLEXIONS: tuple[tuple[str, str, str], ...] = (
    ("neck", "shoulder_right", "elbow_right"), ("shoulder_right", "elbow_right", "wrist_right"),
    ("neck", "shoulder_left", "elbow_left"), ("shoulder_left", "elbow_left", "wrist_left"),
    ("neck", "hip_right", "knee_right"), ("hip_right", "knee_right", "ankle_right"),
    ("neck", "hip_left", "knee_left"), ("hip_left", "knee_left", "ankle_left"),
)
#: Swing angles: a limb segment against the trunk axis (neck -> mid-hip).
SWINGS: tuple[tuple[str, str], ...] = (
    ("shoulder_right", "elbow_right"), ("shoulder_left", "elbow_left"),
    ("hip_right", "knee_right"), ("hip_left", "knee_left"),
)
FEATURES_PER_FRAME = 3 * len(JOINTS) + len(BONES) + len(FLEXIONS) + len(SWINGS) + len(JOINTS)  # 81
FEATURE_GROUPS: dict[str, slice] = {
    "positions": slice(0, 42), "limb_lengths": slice(42, 55), "joint_angles": slice(55, 67), "joint_motion": slice(67, 81),
}


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    cos = (u * v).sum(-1) / np.maximum(nu * nv, 1e-12)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def body_joints(frames: np.ndarray, layout: Layout, user: str = "PoseGait") -> np.ndarray:
    """The 14 joints of any layout that names them: [..., J, d] -> [..., 14, 3] (float64)."""
    p = layout.role_positions(frames, JOINTS, user)
    out = np.stack([p[name] for name in JOINTS], axis=-2)
    if out.shape[-1] == 2:
        out = np.concatenate([out, np.zeros_like(out[..., :1])], axis=-1)
    return out


def normalise(joints: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centred on the neck, divided by the neck-to-mid-hip distance (0 where that is 0)."""
    neck = joints[..., 1:2, :]
    mid_hip = 0.5 * (joints[..., 8:9, :] + joints[..., 11:12, :])
    scale = np.linalg.norm(neck - mid_hip, axis=-1, keepdims=True)
    return np.where(scale > eps, (joints - neck) / np.maximum(scale, eps), 0.0)


def pose_features(joints: np.ndarray) -> np.ndarray:
    """The 81 features of every frame: joints [..., T, 14, 3] -> [..., T, 81] (float64)."""
    x = np.asarray(joints, dtype=np.float64)
    if x.shape[-2:] != (14, 3) or x.ndim < 3:
        raise ValueError(f"PoseGait features need joints [..., T, 14, 3], got {x.shape}")
    idx = {name: i for i, name in enumerate(JOINTS)}
    j = {name: x[..., i, :] for name, i in idx.items()}
    positions = normalise(x)
    lengths = [np.linalg.norm(j[a] - j[b], axis=-1) for a, b in BONES]
    flexion = [_angle(j[a] - j[m], j[b] - j[m]) for a, m, b in FLEXIONS]
    trunk = 0.5 * (j["hip_right"] + j["hip_left"]) - j["neck"]
    swing = [_angle(j[b] - j[a], trunk) for a, b in SWINGS]
    motion = np.zeros(positions.shape[:-1])
    motion[..., 1:, :] = np.linalg.norm(positions[..., 1:, :, :] - positions[..., :-1, :, :], axis=-1)
    return np.concatenate([
        positions.reshape(*positions.shape[:-2], 42),
        np.stack(lengths, -1), np.stack(flexion, -1), np.stack(swing, -1), motion,
    ], axis=-1)
