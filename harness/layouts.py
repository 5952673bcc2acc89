"""Built-in skeleton layouts, registered through the ``reid_bench.layouts`` entry-point group."""

from __future__ import annotations

from reid_bench.api import Layout

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
)
