"""Skeleton layouts: the ``Layout`` type and the built-in layouts.

The built-ins are registered through the ``reid_bench.layouts`` entry-point group; a user layout
comes from a TOML or JSON file (``load_layout_file``). The module needs numpy only, so the plugin
API can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_bench import API_VERSION


#: The body landmarks a layout may name. Sides are the person's own (``_left`` is the left arm).
ROLE_NAMES: tuple[str, ...] = (
    "head", "neck", "spine", "pelvis",
    "shoulder_left", "elbow_left", "wrist_left", "hand_left",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right",
    "hip_left", "knee_left", "ankle_left", "foot_left",
    "hip_right", "knee_right", "ankle_right", "foot_right",
)


def _roles(**groups: tuple[int, ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((name, groups[name]) for name in ROLE_NAMES if name in groups)


@dataclass(frozen=True)
class Layout:
    """Joint names, bones and SM-SGE's coarser scales (10 parts, 5 bodies) as joint groups."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    parts: tuple[tuple[int, ...], ...]
    bodies: tuple[tuple[int, ...], ...]
    dims: int = 3
    description: str = ""
    api_version: str = API_VERSION
    #: Named body landmarks (``ROLE_NAMES``) as joint groups: a role is the mean of its joints,
    #: so a layout without, say, a foot joint may declare the ankle as its stand-in. Methods whose
    #: features need named joints (D13, D16, PoseGait) read joints through roles only.
    roles: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_hyper_joints(self) -> int:
        """Joints plus one node per bone (its midpoint): SM-SGE's finest scale."""
        return len(self.joints) + len(self.edges)

    def joint_index(self, name: str) -> int:
        try:
            return self.joints.index(name)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {name!r}") from None

    def role_joints(self, needed: tuple[str, ...] | list[str], user: str = "this method") -> dict[str, tuple[int, ...]]:
        """The joint group of each role in ``needed``; a clear error naming the first missing one."""
        declared = dict(self.roles)
        missing = [r for r in needed if r not in declared]
        if missing:
            hint = "it declares no roles" if not declared else f"it declares {', '.join(sorted(declared))}"
            raise ValueError(
                f"layout {self.name!r} has no joint for role {missing[0]!r}, which {user} needs ({hint}); "
                f"add it to the layout's 'roles' table"
            )
        return {r: declared[r] for r in needed}

    def role_positions(self, frames: np.ndarray, needed: tuple[str, ...] | list[str], user: str = "this method"
                       ) -> dict[str, np.ndarray]:
        """Each role's position per frame, [..., dims] (float64), from frames [..., J, dims]."""
        groups = self.role_joints(needed, user)
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim < 2 or x.shape[-2] != self.num_joints:
            raise ValueError(f"layout {self.name!r} has {self.num_joints} joints; frames have shape {x.shape}")
        return {r: x[..., list(g), :].mean(axis=-2) for r, g in groups.items()}

    def validate(self) -> None:
        """Raise ValueError on indices out of range, groups that miss joints, or a split graph."""
        n = self.num_joints
        if len(set(self.joints)) != n:
            raise ValueError(f"layout {self.name!r}: duplicate joint names")
        for a, b in self.edges:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ValueError(f"layout {self.name!r}: edge ({a}, {b}) out of range 0..{n - 1}")
        for label, groups in (("parts", self.parts), ("bodies", self.bodies)):
            seen: set[int] = set()
            for group in groups:
                if not group:
                    raise ValueError(f"layout {self.name!r}: empty group in {label}")
                for j in group:
                    if not 0 <= j < n:
                        raise ValueError(f"layout {self.name!r}: {label} index {j} out of range 0..{n - 1}")
                seen.update(group)
            if seen != set(range(n)):
                missing = sorted(set(range(n)) - seen)
                raise ValueError(f"layout {self.name!r}: {label} do not cover joints {missing}")
        for role, group in self.roles:
            if role not in ROLE_NAMES:
                raise ValueError(f"layout {self.name!r}: unknown role {role!r}; roles are {', '.join(ROLE_NAMES)}")
            if not group or any(not 0 <= j < n for j in group):
                raise ValueError(f"layout {self.name!r}: role {role!r} needs joint indices in 0..{n - 1}, got {list(group)}")
        if len({r for r, _ in self.roles}) != len(self.roles):
            raise ValueError(f"layout {self.name!r}: a role is declared twice")
        # connectivity by union-find
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in self.edges:
            parent[find(a)] = find(b)
        if len({find(i) for i in range(n)}) != 1:
            raise ValueError(f"layout {self.name!r}: the bone graph is not connected")

    def adjacency(self) -> np.ndarray:
        """Symmetric joint adjacency [J, J] without self loops."""
        adj = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for a, b in self.edges:
            adj[a, b] = adj[b, a] = 1.0
        return adj

    def bone_lengths(self, frames: np.ndarray) -> np.ndarray:
        """Bone lengths per frame, [..., E]."""
        edges = np.asarray(self.edges)
        return np.linalg.norm(frames[..., edges[:, 0], :] - frames[..., edges[:, 1], :], axis=-1)


KINECT_V1_20 = Layout(
    name="kinect-v1-20",
    joints=(
        "HipCenter", "Spine", "ShoulderCenter", "Head",
        "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
        "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
        "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
        "HipRight", "KneeRight", "AnkleRight", "FootRight",
    ),
    edges=(
        (0, 1), (1, 2), (2, 3),
        (2, 4), (4, 5), (5, 6), (6, 7),
        (2, 8), (8, 9), (9, 10), (10, 11),
        (0, 12), (12, 13), (13, 14), (14, 15),
        (0, 16), (16, 17), (17, 18), (18, 19),
    ),
    # SM-SGE's part scale: thighs/shanks, lower/upper spine, upper/lower arms.
    parts=((12, 13), (14, 15), (16, 17), (18, 19), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    # SM-SGE's body scale: two legs, torso with head, two arms.
    bodies=((12, 13, 14, 15), (16, 17, 18, 19), (0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)),
    dims=3,
    description="Microsoft Kinect v1 SDK skeleton, 20 joints in SDK order (IAS-Lab, KGBD, Kinder-Gator)",
    roles=_roles(head=(3,), neck=(2,), spine=(1,), pelvis=(0,),
                 shoulder_left=(4,), elbow_left=(5,), wrist_left=(6,), hand_left=(7,),
                 shoulder_right=(8,), elbow_right=(9,), wrist_right=(10,), hand_right=(11,),
                 hip_left=(12,), knee_left=(13,), ankle_left=(14,), foot_left=(15,),
                 hip_right=(16,), knee_right=(17,), ankle_right=(18,), foot_right=(19,)),
)

KINECT_V2_25 = Layout(
    name="kinect-v2-25",
    joints=(
        "SpineBase", "SpineMid", "Neck", "Head",
        "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
        "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
        "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
        "HipRight", "KneeRight", "AnkleRight", "FootRight",
        "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
    ),
    edges=(
        (0, 1), (1, 20), (20, 2), (2, 3),
        (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (6, 22),
        (20, 8), (8, 9), (9, 10), (10, 11), (11, 23), (10, 24),
        (0, 12), (12, 13), (13, 14), (14, 15),
        (0, 16), (16, 17), (17, 18), (18, 19),
    ),
    # As Kinect v1, with the spine-shoulder joint in the head part and hand tips/thumbs in the forearms.
    parts=((12, 13), (14, 15), (16, 17), (18, 19), (0, 1), (2, 3, 20), (4, 5), (6, 7, 21, 22), (8, 9), (10, 11, 23, 24)),
    bodies=((12, 13, 14, 15), (16, 17, 18, 19), (0, 1, 2, 3, 20), (4, 5, 6, 7, 21, 22), (8, 9, 10, 11, 23, 24)),
    dims=3,
    description="Microsoft Kinect v2 SDK skeleton, 25 joints in SDK order (KS20)",
    # SpineShoulder (20), where the shoulders attach, plays v1's ShoulderCenter ("neck").
    roles=_roles(head=(3,), neck=(20,), spine=(1,), pelvis=(0,),
                 shoulder_left=(4,), elbow_left=(5,), wrist_left=(6,), hand_left=(7,),
                 shoulder_right=(8,), elbow_right=(9,), wrist_right=(10,), hand_right=(11,),
                 hip_left=(12,), knee_left=(13,), ankle_left=(14,), foot_left=(15,),
                 hip_right=(16,), knee_right=(17,), ankle_right=(18,), foot_right=(19,)),
)

CASIA_14 = Layout(
    name="casia-14",
    joints=(
        "Head", "Neck",
        "RightShoulder", "RightElbow", "RightWrist",
        "LeftShoulder", "LeftElbow", "LeftWrist",
        "RightHip", "RightKnee", "RightAnkle",
        "LeftHip", "LeftKnee", "LeftAnkle",
    ),
    # No pelvis joint: both hips hang from the neck.
    edges=((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13)),
    parts=((11,), (12, 13), (8,), (9, 10), (1,), (0,), (5,), (6, 7), (2,), (3, 4)),
    bodies=((11, 12, 13), (8, 9, 10), (0, 1), (5, 6, 7), (2, 3, 4)),
    dims=3,
    description="14-joint 3D pose estimated from CASIA-B video, as used by SM-SGE",
    # Stand-ins: the pelvis is the mid-hip, the spine the centre of neck and hips, a hand its
    # wrist, a foot its ankle.
    roles=_roles(head=(0,), neck=(1,), spine=(1, 8, 11), pelvis=(8, 11),
                 shoulder_left=(5,), elbow_left=(6,), wrist_left=(7,), hand_left=(7,),
                 shoulder_right=(2,), elbow_right=(3,), wrist_right=(4,), hand_right=(4,),
                 hip_left=(11,), knee_left=(12,), ankle_left=(13,), foot_left=(13,),
                 hip_right=(8,), knee_right=(9,), ankle_right=(10,), foot_right=(10,)),
)

COCO_17 = Layout(
    name="coco-17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    edges=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    # Chosen by analogy with casia-14 (COCO has no neck or pelvis): hips alone, knee+ankle as the
    # shank, the face (nose, eyes) and the ears as two head parts, shoulders alone, elbow+wrist
    # as the forearm. Bodies: the two legs, the head, the two arms.
    parts=((11,), (13, 15), (12,), (14, 16), (0, 1, 2), (3, 4), (5,), (7, 9), (6,), (8, 10)),
    bodies=((11, 13, 15), (12, 14, 16), (0, 1, 2, 3, 4), (5, 7, 9), (6, 8, 10)),
    dims=2,
    description="COCO-17 2D keypoints (pixels, z = 0), e.g. from AlphaPose or HRNet (PsyMo, GaitGraph's CASIA-B)",
    # Stand-ins: the head is the nose, the neck the mid-shoulder, the pelvis the mid-hip, the
    # spine the centre of shoulders and hips, a hand its wrist, a foot its ankle. Image y grows
    # downwards.
    roles=_roles(head=(0,), neck=(5, 6), spine=(5, 6, 11, 12), pelvis=(11, 12),
                 shoulder_left=(5,), elbow_left=(7,), wrist_left=(9,), hand_left=(9,),
                 shoulder_right=(6,), elbow_right=(8,), wrist_right=(10,), hand_right=(10,),
                 hip_left=(11,), knee_left=(13,), ankle_left=(15,), foot_left=(15,),
                 hip_right=(12,), knee_right=(14,), ankle_right=(16,), foot_right=(16,)),
)


def load_layout_file(path: str | Path) -> Layout:
    """A user layout from a TOML or JSON file, validated.

    Keys: name, joints (list of names), edges (pairs of indices), parts (10 lists of indices),
    bodies (5 lists of indices), optional dims (3), description and roles (a table from role
    names in ``ROLE_NAMES`` to a joint index or a list of indices, whose mean stands in).
    """
    import json
    import tomllib

    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read layout: {exc}") from None
    missing = [k for k in ("name", "joints", "edges", "parts", "bodies") if k not in raw]
    if missing:
        raise ValueError(f"{path}: layout is missing key {missing[0]!r}")
    try:
        layout = Layout(
            name=str(raw["name"]),
            joints=tuple(str(j) for j in raw["joints"]),
            edges=tuple((int(a), int(b)) for a, b in raw["edges"]),
            parts=tuple(tuple(int(j) for j in g) for g in raw["parts"]),
            bodies=tuple(tuple(int(j) for j in g) for g in raw["bodies"]),
            dims=int(raw.get("dims", 3)),
            description=str(raw.get("description", f"user layout from {path.name}")),
            roles=_parse_roles(raw.get("roles", {})),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed layout: {exc}") from None
    try:
        layout.validate()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return layout


def _parse_roles(raw: object) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if not isinstance(raw, dict):
        raise ValueError("'roles' must be a table from role name to joint index or list of indices")
    out = []
    for role, value in raw.items():
        joints = value if isinstance(value, list) else [value]
        if not all(isinstance(j, int) and not isinstance(j, bool) for j in joints):
            raise ValueError(f"role {role!r} must name joint indices (integers), got {value!r}")
        out.append((str(role), tuple(joints)))
    return tuple(out)
