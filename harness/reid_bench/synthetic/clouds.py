"""Synthetic coloured point clouds of people: the stand-in for OG-Net's Market-1501-3D.

OG-Net lifts every 2D pedestrian image to 3D (a body surface estimated from the image, each
point coloured by its pixel), so a cloud is the *visible* surface of one person seen by one
camera, with that camera's colours. This module draws such clouds from a small generative
model, vectorised with numpy and deterministic for given options:

* **identity** - anthropometry (height, girth, leg and shoulder proportions, head size, stride,
  arm swing) and appearance: upper / lower clothing colours from a limited palette (so colour
  alone is ambiguous), a pattern on the upper garment (solid, horizontal stripes, open jacket
  over a shirt, colour block), garment length (coat), shorts, skin and hair colour, hair
  length, shoes, and optionally a backpack or a shoulder bag;
* **image** - a walking pose (phase of the gait cycle, amplitude) or standing, the facing
  direction relative to the camera (each camera watches a path, so it sees people mostly from
  some directions), optional occlusion of a vertical slab, scale and position error of the
  lifting;
* **camera** - elevation, preferred walking directions, light direction, ambient level,
  white balance and brightness (drawn stratified, so that every release spans the domain's
  range evenly and difficulty hardly depends on the seed), background colour; per image the
  exposure and white balance wander a little, and points get noise (depth noisier than x, y);
* **rendering** - the body is a set of capsules and ellipsoids around a posed skeleton; a
  coarse z-buffer keeps only the surface facing the camera (a lifted image sees one depth per
  pixel), plus a patch of ground plane under the feet; exactly ``num_points`` points are drawn.

Coordinates are metres in the camera-aligned frame of the person: x to the image right, y up
in the image, z towards the camera; the origin is the ground point under the person. Colours
are rgb in [0, 1].

The **domains** differ the way Market-1501 and DukeMTMC-reID do: "duke" has 8 cameras instead
of 6, a darker winter palette (coats, long trousers, more bags), taller people, a bluish colour
cast, stronger lighting changes, a darker green-grey background and noisier points, so a model
trained on "market" transfers imperfectly.

Subsets follow Market-1501: train and test identities are disjoint; every test identity is
seen by at least two cameras with at least two images each; the query holds one image per
camera of each test identity and the gallery the rest, plus distractors (person 0: other
people, sometimes badly cropped) and junk (person -1: fragments of people, which protocols drop).
Person ids are 1..train+test in "market" and 10001.. in "duke", so the two never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from reid_bench.api import Dataset, PointCloud
from reid_bench.config import NonNegativeFloat, NonNegativeInt, Probability, Range

GENERATOR_VERSION = "1"

DOMAINS: tuple[str, ...] = ("market", "duke")
_DOMAIN_CODE = {"market": 1, "duke": 2}
_ID_BASE = {"market": 0, "duke": 10000}


@dataclass
class CloudOptions:
    """Options of the synthetic cloud generator (defaults: the embedded benchmark).

    Sizes are chosen so that a protocol generates in a few seconds and a learned baseline
    trains in under a minute on two CPU cores. The difficulty knobs scale nuisances relative to
    the domain's own statistics: 1.0 is the benchmark, 0 removes the nuisance.
    """

    domain: Literal["market", "duke"] = "market"
    """"market" (6 cameras, summer palette) or "duke" (8 cameras, winter palette)."""
    train_identities: NonNegativeInt = 60
    """Identities of the train subset (disjoint from the test identities)."""
    test_identities: NonNegativeInt = 100
    """Identities split into query and gallery."""
    images_per_identity: Annotated[int, Range(ge=4)] = 8
    """Clouds per identity (at least 4: two cameras with two images each)."""
    cameras: NonNegativeInt = 0
    """Number of cameras; 0 = the domain's own (market 6, duke 8)."""
    distractors: NonNegativeInt = 50
    """Gallery clouds of person 0: other people, never a match."""
    junk: NonNegativeInt = 20
    """Gallery clouds of person -1: fragments of people (protocols drop them)."""
    num_points: Annotated[int, Range(ge=16)] = 4096
    """Points per cloud; every cloud has exactly this many (body surface + ground patch)."""
    seed: NonNegativeInt = 0
    """Seed of everything; the same options give bit-identical clouds."""
    # ---- difficulty knobs --------------------------------------------------------------------
    palette_size: NonNegativeInt = 0
    """Clothing colours available (first ones by the domain's popularity); 0 = whole palette."""
    colour_jitter: NonNegativeFloat = 1.0
    """Scale of each identity's deviation from its palette colours (shades of the same colour)."""
    illumination: NonNegativeFloat = 1.0
    """Scale of the differences between cameras: white balance (a chromaticity shift; the
    cameras of a release sit evenly on a circle around the domain's cast, so every seed is about
    as hard), brightness and ambient light. Cameras are shared by train and test, as in Market."""
    image_lighting: NonNegativeFloat = 1.0
    """Scale of per-image brightness and white-balance wander (sun, shadow, auto white balance)."""
    colour_noise: NonNegativeFloat = 1.0
    """Scale of per-point colour noise."""
    point_noise: NonNegativeFloat = 1.0
    """Scale of per-point position noise (depth is twice as noisy as x and y)."""
    pose_variation: NonNegativeFloat = 1.0
    """Scale of the walking amplitude (0: everyone stands still)."""
    view_spread: NonNegativeFloat = 1.0
    """Scale of the spread of facing directions around each camera's preferred ones."""
    scale_jitter: NonNegativeFloat = 1.0
    """Scale of the per-image size error of the lifting (makes height a weak cue)."""
    occlusion: Probability = 0.15
    """Probability that a vertical slab of the person is hidden (an occluder, a crop)."""
    ground_fraction: Annotated[float, Range(ge=0, lt=0.9)] = 0.12
    """Share of the points on the ground patch under the feet."""

    def __post_init__(self) -> None:
        self.validate()

    def resolved_cameras(self) -> int:
        return self.cameras or _DOMAIN_STATS[self.domain]["cameras"]

    def validate(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; expected one of {DOMAINS}")
        if self.train_identities < 0 or self.test_identities < 0 or self.distractors < 0 or self.junk < 0:
            raise ValueError("identity, distractor and junk counts must not be negative")
        if self.images_per_identity < 4:
            raise ValueError("images_per_identity must be at least 4 (two cameras x two images)")
        if self.cameras == 1 or self.cameras < 0:
            raise ValueError("cameras must be 0 (domain default) or at least 2")
        if self.num_points < 16:
            raise ValueError("num_points must be at least 16")
        if not 0.0 <= self.ground_fraction < 0.9:
            raise ValueError("ground_fraction must be in [0, 0.9)")
        if not 0.0 <= self.occlusion <= 1.0:
            raise ValueError("occlusion is a probability in [0, 1]")
        if self.palette_size < 0 or self.palette_size == 1:
            raise ValueError("palette_size must be 0 (all) or at least 2")
        for name in ("colour_jitter", "illumination", "image_lighting", "colour_noise", "point_noise",
                     "pose_variation", "view_spread", "scale_jitter"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} is a scale and must be >= 0, got {getattr(self, name)}")


# ----------------------------------------------------------------------------------------------
# Colours and domain statistics
# ----------------------------------------------------------------------------------------------

# name: linear-ish rgb albedo
_PALETTE: dict[str, tuple[float, float, float]] = {
    "black": (0.09, 0.09, 0.10),
    "white": (0.86, 0.86, 0.84),
    "grey": (0.50, 0.50, 0.50),
    "charcoal": (0.27, 0.27, 0.29),
    "navy": (0.13, 0.16, 0.36),
    "blue": (0.20, 0.34, 0.70),
    "denim": (0.35, 0.45, 0.62),
    "red": (0.72, 0.14, 0.14),
    "maroon": (0.42, 0.12, 0.15),
    "green": (0.20, 0.48, 0.25),
    "olive": (0.40, 0.42, 0.22),
    "yellow": (0.86, 0.78, 0.28),
    "beige": (0.76, 0.67, 0.52),
    "brown": (0.42, 0.29, 0.18),
    "pink": (0.86, 0.56, 0.66),
    "purple": (0.44, 0.26, 0.55),
    "orange": (0.88, 0.48, 0.16),
    "light blue": (0.60, 0.74, 0.88),
}
_NAMES = tuple(_PALETTE)
_RGB = np.asarray([_PALETTE[n] for n in _NAMES], dtype=np.float64)


def _weights(spec: dict[str, float]) -> np.ndarray:
    w = np.asarray([spec.get(n, 0.0) for n in _NAMES], dtype=np.float64)
    return w / w.sum()


_DOMAIN_STATS: dict[str, dict[str, Any]] = {
    "market": {
        "cameras": 6,
        "upper": _weights({"white": 5, "black": 4, "grey": 3, "red": 2.5, "blue": 2, "light blue": 1.5,
                           "pink": 1.5, "yellow": 1.2, "green": 1.2, "purple": 1, "orange": 1, "navy": 1,
                           "beige": 1, "charcoal": 1, "maroon": 0.6, "brown": 0.5, "olive": 0.5, "denim": 0.5}),
        "lower": _weights({"black": 5, "denim": 3, "blue": 2, "grey": 2.5, "white": 1.5, "navy": 1.5,
                           "beige": 1.5, "charcoal": 1.5, "brown": 1, "olive": 0.5, "red": 0.3, "pink": 0.3}),
        "shoes": _weights({"white": 3, "black": 4, "grey": 1.5, "brown": 1, "blue": 0.5, "red": 0.3}),
        "bag": _weights({"black": 4, "grey": 1, "brown": 1, "navy": 1, "red": 0.5, "pink": 0.5, "white": 0.5}),
        "height": (1.70, 0.085),
        "girth": (1.0, 0.10),
        "shorts": 0.35,
        "long_sleeves": 0.35,
        "coat": 0.08,
        "bag_prob": (0.55, 0.25, 0.20),  # none, backpack, shoulder bag
        "pattern_prob": (0.55, 0.15, 0.15, 0.15),  # solid, stripes, open jacket, colour block
        "hair_long": 0.35,
        "background": (0.56, 0.55, 0.50),
        "background_sd": 0.06,
        "cast": (1.0, 1.0, 1.0),
        "wb_sd": 0.10,
        "bright": (1.0, 0.18),
        "ambient": (0.47, 0.83),
        "elevation_deg": (5.0, 25.0),
        "point_noise": 0.008,
        "colour_noise": 0.035,
        "image_bright_sd": 0.08,
        "image_wb_sd": 0.04,
        "scale_sd": 0.04,
    },
    "duke": {
        "cameras": 8,
        "upper": _weights({"black": 6, "charcoal": 3, "navy": 3, "grey": 3, "white": 2, "maroon": 1.5,
                           "brown": 1.5, "olive": 1.2, "blue": 1.2, "beige": 1.2, "red": 1, "green": 0.8,
                           "purple": 0.5, "denim": 0.5, "light blue": 0.4, "pink": 0.3, "yellow": 0.3,
                           "orange": 0.3}),
        "lower": _weights({"black": 5, "denim": 4, "blue": 2.5, "charcoal": 2, "grey": 2, "navy": 1.5,
                           "beige": 1, "brown": 1, "olive": 0.5, "white": 0.3}),
        "shoes": _weights({"black": 4, "brown": 2, "white": 2, "grey": 1.5, "navy": 0.5}),
        "bag": _weights({"black": 5, "navy": 1.5, "grey": 1.5, "brown": 1, "maroon": 0.5, "olive": 0.5}),
        "height": (1.75, 0.09),
        "girth": (1.06, 0.11),
        "shorts": 0.08,
        "long_sleeves": 0.85,
        "coat": 0.30,
        "bag_prob": (0.35, 0.45, 0.20),
        "pattern_prob": (0.65, 0.10, 0.15, 0.10),
        "hair_long": 0.25,
        "background": (0.33, 0.37, 0.29),
        "background_sd": 0.08,
        "cast": (0.92, 0.98, 1.10),
        "wb_sd": 0.13,
        "bright": (0.92, 0.24),
        "ambient": (0.38, 0.85),
        "elevation_deg": (12.0, 38.0),
        "point_noise": 0.013,
        "colour_noise": 0.045,
        "image_bright_sd": 0.11,
        "image_wb_sd": 0.05,
        "scale_sd": 0.05,
    },
}

_SKIN = np.asarray([(0.93, 0.76, 0.64), (0.85, 0.66, 0.52), (0.72, 0.52, 0.38), (0.55, 0.38, 0.27),
                    (0.38, 0.26, 0.19)])
_SKIN_W = {"market": np.asarray([2.0, 4.0, 3.0, 0.6, 0.3]), "duke": np.asarray([3.0, 2.5, 1.5, 1.2, 1.2])}
_HAIR = np.asarray([(0.06, 0.05, 0.05), (0.20, 0.13, 0.08), (0.42, 0.30, 0.17), (0.75, 0.62, 0.38),
                    (0.55, 0.55, 0.55)])
_HAIR_W = {"market": np.asarray([8.0, 2.0, 0.6, 0.2, 0.3]), "duke": np.asarray([4.0, 3.0, 1.5, 1.0, 0.5])}

# Material codes of body points. Geometry gives TRUNK (clothes of the trunk and legs: upper or
# lower garment by height), SLEEVE, SKIN, HEAD (skin or hair by position), SHOES and BAG; colouring
# resolves them to the final materials below.
_M_TRUNK, _M_SLEEVE, _M_HEAD = 10, 11, 12
_M_UPPER, _M_LOWER, _M_SKIN, _M_HAIR, _M_SHOES, _M_BAG = range(6)


# ----------------------------------------------------------------------------------------------
# Random streams
# ----------------------------------------------------------------------------------------------


def _rng(options: CloudOptions, *key: int) -> np.random.Generator:
    """An independent stream per (seed, domain, purpose, index): adding clouds never moves others."""
    ss = np.random.SeedSequence(entropy=int(options.seed) & 0xFFFFFFFFFFFF,
                                spawn_key=(_DOMAIN_CODE[options.domain], *key))
    return np.random.Generator(np.random.PCG64(ss))


def _palette_pick(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    return rng.choice(len(weights), p=weights) if size == 1 else rng.choice(len(weights), size=size, p=weights)


def _restricted(weights: np.ndarray, palette_size: int) -> np.ndarray:
    """Keep the ``palette_size`` most popular colours of a distribution."""
    if palette_size <= 0 or palette_size >= np.count_nonzero(weights):
        return weights
    keep = np.argsort(-weights, kind="stable")[:palette_size]
    w = np.zeros_like(weights)
    w[keep] = weights[keep]
    return w / w.sum()


def _shade(rng: np.random.Generator, base: np.ndarray, jitter: float) -> np.ndarray:
    """An identity's own shade of a palette colour (brightness and hue wobble)."""
    gain = np.exp(rng.normal(0.0, 0.10 * jitter))
    tint = np.exp(rng.normal(0.0, 0.045 * jitter, size=3))
    return np.clip(base * gain * tint, 0.02, 0.98)


# ----------------------------------------------------------------------------------------------
# Identities and cameras
# ----------------------------------------------------------------------------------------------


@dataclass
class _Person:
    height: float
    girth: float
    leg: float
    shoulder: float
    head: float
    stride: float
    arm_swing: float
    upper: np.ndarray
    upper2: np.ndarray
    pattern: int
    stripe_period: float
    upper_end: float  # fraction of height where the upper garment ends (lower = coat)
    long_sleeves: bool
    lower: np.ndarray
    shorts: bool
    skin: np.ndarray
    hair: np.ndarray
    hair_long: bool
    shoes: np.ndarray
    bag: int  # 0 none, 1 backpack, 2 shoulder bag
    bag_colour: np.ndarray
    bag_side: float


def _make_person(rng: np.random.Generator, options: CloudOptions) -> _Person:
    st = _DOMAIN_STATS[options.domain]
    jit = options.colour_jitter
    upper_w = _restricted(st["upper"], options.palette_size)
    lower_w = _restricted(st["lower"], options.palette_size)
    height = float(np.clip(rng.normal(*st["height"]), 1.45, 2.02))
    girth = float(np.clip(rng.normal(*st["girth"]), 0.75, 1.4))
    u1 = int(_palette_pick(rng, upper_w, 1))
    u2 = int(_palette_pick(rng, upper_w, 1))
    if u2 == u1:
        u2 = int(_palette_pick(rng, upper_w, 1))
    pattern = int(rng.choice(4, p=np.asarray(st["pattern_prob"])))
    coat = rng.random() < st["coat"]
    upper_end = float(rng.uniform(0.30, 0.40) if coat else rng.uniform(0.47, 0.54))
    lower = int(_palette_pick(rng, lower_w, 1))
    skin = _SKIN[rng.choice(len(_SKIN), p=_SKIN_W[options.domain] / _SKIN_W[options.domain].sum())]
    hair = _HAIR[rng.choice(len(_HAIR), p=_HAIR_W[options.domain] / _HAIR_W[options.domain].sum())]
    bag = int(rng.choice(3, p=np.asarray(st["bag_prob"])))
    return _Person(
        height=height,
        girth=girth,
        leg=float(np.clip(rng.normal(0.53, 0.015), 0.48, 0.58)),
        shoulder=float(np.clip(rng.normal(0.25, 0.015), 0.21, 0.29)),
        head=float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)),
        stride=float(np.clip(rng.normal(1.0, 0.15), 0.6, 1.4)),
        arm_swing=float(np.clip(rng.normal(1.0, 0.25), 0.3, 1.7)),
        upper=_shade(rng, _RGB[u1], jit),
        upper2=_shade(rng, _RGB[u2], jit),
        pattern=pattern,
        stripe_period=float(rng.uniform(0.035, 0.07)),
        upper_end=upper_end,
        long_sleeves=bool(coat or rng.random() < st["long_sleeves"]),
        lower=_shade(rng, _RGB[lower], jit),
        shorts=bool(rng.random() < st["shorts"]) and not coat,
        skin=_shade(rng, skin, 0.5 * jit),
        hair=_shade(rng, hair, 0.5 * jit),
        hair_long=bool(rng.random() < st["hair_long"]),
        shoes=_shade(rng, _RGB[int(_palette_pick(rng, st["shoes"], 1))], jit),
        bag=bag,
        bag_colour=_shade(rng, _RGB[int(_palette_pick(rng, st["bag"], 1))], jit),
        bag_side=float(rng.choice([-1.0, 1.0])),
    )


@dataclass
class _Camera:
    elevation: float
    yaw_pref: float
    wb: np.ndarray
    brightness: float
    ambient: float
    light: np.ndarray  # unit vector, world frame (y up)
    background: np.ndarray


def _stratified(rng: np.random.Generator, n: int, columns: int) -> np.ndarray:
    """[n, columns] uniforms in (0, 1): each column has one value in every 1/n-quantile, shuffled.

    Cameras drawn this way cover the domain's range evenly for every seed (a release with six
    cameras should not happen to get six similar ones), which keeps difficulty stable across
    data seeds.
    """
    strata = np.stack([rng.permutation(n) for _ in range(columns)], axis=1)
    return (strata + rng.uniform(0.05, 0.95, size=(n, columns))) / n


def _normal_quantile(u: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    return np.vectorize(inv, otypes=[np.float64])(u)


def _make_cameras(rng: np.random.Generator, options: CloudOptions, n: int) -> list[_Camera]:
    """The cameras of a release: view, light, white balance and background of each."""
    st = _DOMAIN_STATS[options.domain]
    k = options.illumination
    u = _stratified(rng, n, 7)
    z = _normal_quantile(u)
    # white balance: a pure chromaticity shift, cameras evenly spread on a circle of radius
    # wb_sd * sqrt(2) around the domain's cast (same pairwise differences for every seed)
    e1 = np.asarray([1.0, -1.0, 0.0]) / np.sqrt(2.0)
    e2 = np.asarray([1.0, 1.0, -2.0]) / np.sqrt(6.0)
    theta = rng.uniform(0, 2 * np.pi) + 2 * np.pi * rng.permutation(n) / n
    chroma = np.sqrt(2.0) * st["wb_sd"] * k * (np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2)
    lo, hi = st["elevation_deg"]
    amb_lo, amb_hi = st["ambient"]
    mid = 0.5 * (amb_lo + amb_hi)
    cams = []
    for c in range(n):
        az = rng.uniform(0, 2 * np.pi)
        up = rng.uniform(0.6, 1.0)
        light = np.asarray([np.cos(az) * (1 - up) * 1.5, up, np.sin(az) * (1 - up) * 1.5])
        cams.append(
            _Camera(
                elevation=float(np.deg2rad(lo + (hi - lo) * u[c, 0])),
                yaw_pref=float(2 * np.pi * u[c, 1]),
                wb=np.asarray(st["cast"]) ** min(k, 1.0) * np.exp(chroma[c] + 0.3 * st["wb_sd"] * k * z[c, 2:5]),
                brightness=float(np.exp(np.log(st["bright"][0]) * min(k, 1.0) + st["bright"][1] * k * z[c, 5])),
                ambient=float(np.clip(mid + (amb_lo + (amb_hi - amb_lo) * u[c, 6] - mid) * k, 0.1, 1.0)),
                light=light / np.linalg.norm(light),
                background=np.clip(np.asarray(st["background"]) * np.exp(rng.normal(0, st["background_sd"], size=3)), 0, 1),
            )
        )
    return cams


# ----------------------------------------------------------------------------------------------
# Body geometry
# ----------------------------------------------------------------------------------------------


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.asarray([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.asarray([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _body_parts(p: _Person, phase: float, amplitude: float):
    """Capsules (a, b, radius, material) and ellipsoids (centre, radii, material) of one pose.

    Body frame: y up, the person faces +z, x to the person's left; feet on y = 0.
    """
    H, g = p.height, p.girth
    hip_y = p.leg * H
    sh_y = 0.815 * H
    sh_x = 0.5 * p.shoulder * H * np.sqrt(g)
    hip_x = 0.052 * H * g
    thigh = shin = 0.5 * (hip_y - 0.045 * H)
    upper_arm, fore_arm = 0.175 * H, 0.145 * H
    A = amplitude * p.stride

    caps: list[tuple[np.ndarray, np.ndarray, float, int]] = []
    ells: list[tuple[np.ndarray, np.ndarray, int]] = []

    def sag(angle: float) -> np.ndarray:  # unit vector pointing down, rotated forward by angle
        return np.asarray([0.0, -np.cos(angle), np.sin(angle)])

    for side, leg_phase in ((1.0, phase), (-1.0, phase + np.pi)):
        swing = np.sin(leg_phase)
        hip_flex = np.deg2rad(24.0) * A * swing
        knee = np.deg2rad(6.0 + 40.0 * A * max(0.0, np.sin(leg_phase - 1.3)))
        hip = np.asarray([side * hip_x, hip_y, 0.0])
        kn = hip + thigh * sag(hip_flex)
        an = kn + shin * sag(hip_flex - knee)
        caps.append((hip, kn, 0.062 * H * g, _M_TRUNK))
        caps.append((kn, an, 0.043 * H * g, _M_TRUNK))
        toe = an + np.asarray([0.0, -0.02 * H, 0.13 * H])
        caps.append((an + np.asarray([0.0, -0.015 * H, -0.02 * H]), toe, 0.03 * H, _M_SHOES))

        # arms swing against the leg of their side
        arm_flex = -np.deg2rad(22.0) * A * p.arm_swing * swing
        elbow_bend = np.deg2rad(12.0 + 18.0 * A * p.arm_swing * max(0.0, -swing))
        sh = np.asarray([side * sh_x, sh_y, 0.0])
        outward = np.asarray([side * 0.09, 0.0, 0.0])
        arm_dir = sag(arm_flex) + outward
        el = sh + upper_arm * arm_dir / np.linalg.norm(arm_dir)
        wr = el + fore_arm * sag(arm_flex + elbow_bend)
        caps.append((sh, el, 0.04 * H * np.sqrt(g), _M_SLEEVE))
        caps.append((el, wr, 0.032 * H * np.sqrt(g), _M_SLEEVE if p.long_sleeves else _M_SKIN))
        caps.append((wr, wr + 0.07 * H * sag(arm_flex + elbow_bend), 0.026 * H, _M_SKIN))

    # torso (chest + abdomen) and pelvis as ellipsoids
    torso_c = np.asarray([0.0, 0.5 * (hip_y + sh_y) + 0.01 * H, 0.0])
    ells.append((torso_c, np.asarray([0.115 * H * g, 0.5 * (sh_y - hip_y) + 0.01 * H, 0.07 * H * g]), _M_TRUNK))
    ells.append((np.asarray([0.0, hip_y + 0.01 * H, 0.0]), np.asarray([0.1 * H * g, 0.07 * H, 0.068 * H * g]), _M_TRUNK))
    # neck and head
    caps.append((np.asarray([0.0, sh_y - 0.01 * H, 0.0]), np.asarray([0.0, 0.875 * H, 0.005 * H]), 0.03 * H, _M_SKIN))
    hr = p.head * H / 1.72
    ells.append((np.asarray([0.0, 0.935 * H, 0.01 * H]), np.asarray([0.075, 0.105, 0.09]) * hr, _M_HEAD))
    s = H / 1.72
    if p.bag == 1:  # backpack
        ells.append((np.asarray([0.0, 0.70 * H, -0.07 * H * g - 0.05 * s]), np.asarray([0.15, 0.2, 0.07]) * s, _M_BAG))
    elif p.bag == 2:  # shoulder bag at the hip
        ells.append((np.asarray([p.bag_side * (0.115 * H * g + 0.06 * s), hip_y, 0.0]), np.asarray([0.05, 0.12, 0.15]) * s, _M_BAG))
    return caps, ells, hip_y, sh_y


def _ellipsoid_area(r: np.ndarray) -> float:
    a, b, c = r
    q = 1.6075
    return float(4 * np.pi * (((a * b) ** q + (a * c) ** q + (b * c) ** q) / 3) ** (1 / q))


def _sample_body(rng: np.random.Generator, caps, ells, count: int, view: np.ndarray):
    """``count`` surface points in the body frame, components first: position [3, count],
    outward unit normal [3, count] and material [count]; parts come in contiguous blocks.

    Only the half of each part that faces ``view`` (unit vector towards the camera, body
    frame) is sampled: the other half can never be seen.
    """
    cap_a = np.asarray([c[0] for c in caps]).T  # [3, C]
    cap_b = np.asarray([c[1] for c in caps]).T
    cap_r = np.asarray([c[2] for c in caps])
    ell_c = np.asarray([e[0] for e in ells]).T  # [3, E]
    ell_r = np.asarray([e[1] for e in ells]).T
    mats = np.asarray([c[3] for c in caps] + [e[2] for e in ells])
    axis = cap_b - cap_a
    length = np.sqrt((axis * axis).sum(axis=0))
    area = np.concatenate([2 * np.pi * cap_r * (length + 2 * cap_r), [_ellipsoid_area(r) for r in ell_r.T]])
    counts = rng.multinomial(count, area / area.sum())
    n_caps = len(caps)
    cc, ec = counts[:n_caps], counts[n_caps:]
    k = int(cc.sum())

    # capsules: a cylinder whose radius shrinks over the end caps (|surface - axis point| = r)
    d = axis / length
    helper = np.where(np.abs(d[1]) < 0.9, 1.0, 0.0)
    helper = np.stack([1.0 - helper, helper, np.zeros_like(helper)])
    u = np.cross(d.T, helper.T).T
    u /= np.sqrt((u * u).sum(axis=0))
    v = np.cross(d.T, u.T).T
    r = np.repeat(cap_r, cc)
    L = np.repeat(length, cc)
    ext = r / L
    t = rng.random(k) * (1.0 + 2.0 * ext) - ext
    over = np.maximum(np.maximum(-t, t - 1.0), 0.0) * L
    rad = np.sqrt(np.maximum(r * r - over * over, 0.0))
    # angles of the half cylinder facing the camera
    facing = np.arctan2(view @ v, view @ u)
    ang = np.repeat(facing, cc) + (rng.random(k) - 0.5) * np.pi
    radial = np.cos(ang) * np.repeat(u, cc, axis=1) + np.sin(ang) * np.repeat(v, cc, axis=1)
    ax = np.repeat(axis, cc, axis=1)
    a0 = np.repeat(cap_a, cc, axis=1)
    cap_pos = a0 + t * ax + rad * radial
    cap_nrm = (cap_pos - (a0 + np.clip(t, 0.0, 1.0) * ax)) / r

    # ellipsoids: a radially scaled sphere; the normal is the gradient of the implicit form
    dirs = rng.standard_normal((3, int(ec.sum())))
    dirs /= np.sqrt((dirs * dirs).sum(axis=0))
    er = np.repeat(ell_r, ec, axis=1)
    dirs *= np.where(view @ (dirs / er) < 0.0, -1.0, 1.0)  # the half facing the camera
    ell_pos = np.repeat(ell_c, ec, axis=1) + dirs * er
    en = dirs / er
    ell_nrm = en / np.sqrt((en * en).sum(axis=0))
    pos = np.concatenate([cap_pos, ell_pos], axis=1)
    nrm = np.concatenate([cap_nrm, ell_nrm], axis=1)
    return pos, nrm, np.repeat(mats, counts)


# ----------------------------------------------------------------------------------------------
# One cloud
# ----------------------------------------------------------------------------------------------

_OVERSAMPLE = 1.3  # candidate surface points per output point (most are visible)
_ZBUF_X, _ZBUF_Y = 160, 200  # cells of the coarse depth buffer (x in [-1.6, 1.6), y in [-1, 3))


def _pose(rng: np.random.Generator, camera: _Camera, options: CloudOptions) -> tuple[float, float, float]:
    """(amplitude, phase, yaw) of one image: walking or standing, and the facing direction
    relative to the camera (the camera's path direction, either way, plus spread)."""
    standing = rng.random() < 0.15
    amplitude = (0.15 if standing else rng.uniform(0.7, 1.2)) * options.pose_variation
    phase = rng.uniform(0, 2 * np.pi)
    yaw = camera.yaw_pref + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.55 * options.view_spread)
    if rng.random() < 0.2 * options.view_spread:
        yaw = rng.uniform(0, 2 * np.pi)
    return amplitude, phase, yaw


def _front_surface(pos_c: np.ndarray, facing: np.ndarray, height: float) -> np.ndarray:
    """Indices of the candidate points a lifted image has: facing the camera and the front-most
    surface in their pixel (a coarse z-buffer: one depth per pixel)."""
    vis = np.flatnonzero(facing > 0.02)
    cell = 0.02 * height / 1.72
    ix = np.clip(((pos_c[0, vis] + 1.6) * (1.0 / cell)).astype(np.int64), 0, _ZBUF_X - 1)
    iy = np.clip(((pos_c[1, vis] + 1.0) * (1.0 / cell)).astype(np.int64), 0, _ZBUF_Y - 1)
    key = ix * _ZBUF_Y + iy
    zbuf = np.full(_ZBUF_X * _ZBUF_Y, -np.inf)
    zv = pos_c[2, vis]
    np.maximum.at(zbuf, key, zv)
    return vis[zv >= zbuf[key] - 0.03]


def _unoccluded(
    rng: np.random.Generator, vis_idx: np.ndarray, pos: np.ndarray, pos_c: np.ndarray, height: float, n_body: int,
    crop: tuple[float, float] | None, options: CloudOptions,
) -> np.ndarray:
    """The visible points left by a crop (a horizontal band of the body, for fragments) or, by
    chance, an occluder hiding a vertical slab; either only when enough points remain."""
    if crop is not None:
        lo, hi = crop
        yb = pos[1, vis_idx]
        band = (yb >= lo * height) & (yb <= hi * height)
        if band.sum() > 20:
            vis_idx = vis_idx[band]
    elif rng.random() < options.occlusion:
        x = pos_c[0, vis_idx]
        width = rng.uniform(0.04, 0.09) * height
        centre = rng.uniform(x.min(), x.max())
        hidden = np.abs(x - centre) < width
        if (~hidden).sum() > n_body // 4:
            vis_idx = vis_idx[~hidden]
    return vis_idx


def _materials(person: _Person, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Final material codes (rows of the person's colour table): what depends on position,
    garment lengths, shorts, hair, face, and the upper garment's pattern (code 6)."""
    H = person.height
    y_rel = pos[1] / H
    trunk = mat == _M_TRUNK
    mat = np.where(trunk, np.where(y_rel > person.upper_end, _M_UPPER, _M_LOWER), mat)
    if person.shorts:
        mat = np.where((mat == _M_LOWER) & (y_rel < person.leg - 0.17), _M_SKIN, mat)
    mat = np.where(mat == _M_SLEEVE, _M_UPPER, mat)
    head = mat == _M_HEAD
    hair = head & ((pos[1] > 0.965 * H) | (pos[2] < -0.01 * H))
    if person.hair_long:
        hair |= (mat == _M_SKIN) & (pos[1] > 0.8 * H) & (pos[2] < -0.005 * H)
    mat = np.where(hair, _M_HAIR, np.where(head, _M_SKIN, mat))
    up = mat == _M_UPPER
    if person.pattern == 1:  # horizontal stripes
        second = up & (np.floor(pos[1] / (person.stripe_period * H / 1.72)) % 2 == 1)
    elif person.pattern == 2:  # open jacket: a shirt of the second colour down the front
        second = up & (pos[2] > 0.0) & (np.abs(pos[0]) < 0.045 * H * person.girth) & (y_rel > 0.5)
    elif person.pattern == 3:  # colour block: shoulders and chest in the second colour
        second = up & (y_rel > 0.70)
    else:
        second = None
    if second is not None:
        mat = np.where(second, 6, mat)
    return mat


def _ground_patch(rng: np.random.Generator, out: np.ndarray, height: float, R: np.ndarray, camera: _Camera) -> None:
    """Fill ``out`` [6, n_ground] with the patch of ground under the feet (drawn in the world
    frame, then turned to the camera's), lit by the camera's light from above."""
    n_ground = out.shape[1]
    s = height / 1.72
    ground = np.zeros((3, n_ground))
    ground[0] = (rng.random(n_ground) - 0.5) * (0.64 * s)
    ground[2] = (rng.random(n_ground) - 0.5) * (0.64 * s)
    out[:3] = R @ ground
    ground_light = camera.ambient + (1 - camera.ambient) * camera.light[1]
    out[3:] = camera.background[:, None] * ((0.85 + 0.15 * rng.random(n_ground)) * ground_light)


def _camera_colours(rng: np.random.Generator, rgb: np.ndarray, gain: np.ndarray, st: dict[str, Any],
                    options: CloudOptions) -> None:
    """In place on ``rgb`` [3, n]: a per-point gain, the image's white balance and brightness
    (``gain``), per-point noise, clipped to [0, 1]."""
    n = rgb.shape[1]
    cn = np.float32(st["colour_noise"] * options.colour_noise)
    rgb *= np.exp(np.float32(0.5) * cn * rng.standard_normal(n, dtype=np.float32))
    rgb *= gain.astype(np.float32)[:, None]
    rgb += cn * rng.standard_normal((3, n), dtype=np.float32)
    np.clip(rgb, 0.0, 1.0, out=rgb)


def _lifting_errors(rng: np.random.Generator, xyz: np.ndarray, st: dict[str, Any], options: CloudOptions) -> None:
    """In place on ``xyz`` [3, n]: the lifting's overall scale and offset error, and per-point
    noise (depth twice as noisy as x and y)."""
    n = xyz.shape[1]
    scale = np.exp(rng.normal(0.0, st["scale_sd"] * options.scale_jitter))
    offset = rng.normal(0.0, 0.02, size=3) * options.scale_jitter
    sigma = (st["point_noise"] * options.point_noise) * np.asarray([1.0, 1.0, 2.0])
    xyz *= np.float32(scale)
    xyz += offset.astype(np.float32)[:, None]
    xyz += rng.standard_normal((3, n), dtype=np.float32) * sigma.astype(np.float32)[:, None]


def _render(
    rng: np.random.Generator,
    person: _Person,
    camera: _Camera,
    options: CloudOptions,
    crop: tuple[float, float] | None = None,
) -> np.ndarray:
    """One cloud of ``person`` seen by ``camera``: float32 [num_points, 6]. The steps draw from
    ``rng`` in a fixed order (pose, surface, occlusion, points, light, ground, colours, lifting):
    the order is the data."""
    st = _DOMAIN_STATS[options.domain]
    n = options.num_points
    H = person.height
    amplitude, phase, yaw = _pose(rng, camera, options)
    caps, ells, _, _ = _body_parts(person, phase, amplitude)
    n_ground = int(round(options.ground_fraction * n))
    n_body = n - n_ground
    m = int(n_body * _OVERSAMPLE)
    # pose in the world (facing direction), then the camera frame (looking down by elevation)
    R_world = _rot_y(yaw)
    R = _rot_x(-camera.elevation) @ R_world
    pos, nrm, mat = _sample_body(rng, caps, ells, m, R[2])
    pos_c = R @ pos
    vis_idx = _unoccluded(rng, _front_surface(pos_c, R[2] @ nrm, H), pos, pos_c, H, n_body, crop, options)
    if len(vis_idx) == 0:  # degenerate tiny clouds: fall back to every candidate
        vis_idx = np.arange(pos.shape[1])
    pick = rng.choice(len(vis_idx), size=n_body, replace=len(vis_idx) < n_body)
    sel = vis_idx[np.sort(pick)]
    pos, mat, nrm = pos[:, sel], mat[sel], nrm[:, sel]
    mat = _materials(person, pos, mat)
    table = np.stack([person.upper, person.lower, person.skin, person.hair, person.shoes, person.bag_colour,
                      person.upper2])

    # lighting in the world frame (light direction fixed per camera): Lambert + ambient
    lambert = np.clip(camera.light @ (R_world @ nrm), 0.0, 1.0)
    shade = camera.ambient + (1.0 - camera.ambient) * lambert
    bright = camera.brightness * np.exp(rng.normal(0.0, st["image_bright_sd"] * options.image_lighting))
    # the camera's automatic white balance wanders from image to image
    wb = camera.wb * np.exp(rng.normal(0.0, st["image_wb_sd"] * options.image_lighting, size=3))

    out = np.empty((6, n), dtype=np.float32)  # components first; transposed at the end
    out[:3, :n_body] = pos_c[:, sel]
    out[3:, :n_body] = table.T[:, mat] * shade
    _ground_patch(rng, out[:, n_body:], H, R, camera)
    _camera_colours(rng, out[3:], wb * bright, st, options)
    _lifting_errors(rng, out[:3], st, options)
    return np.ascontiguousarray(out.T)


# ----------------------------------------------------------------------------------------------
# The whole release
# ----------------------------------------------------------------------------------------------


def _camera_split(rng: np.random.Generator, images: int, cameras: int) -> np.ndarray:
    """Cameras (1-based) of an identity's images: 2..k cameras, at least two images each."""
    k_max = max(2, min(cameras, images // 2, 4))
    k = int(rng.integers(2, k_max + 1))
    chosen = np.sort(rng.choice(cameras, size=k, replace=False)) + 1
    counts = np.full(k, 2)
    extra = rng.choice(k, size=images - 2 * k, replace=True)
    np.add.at(counts, extra, 1)
    return np.repeat(chosen, counts)


def generate_clouds(options: CloudOptions | None = None) -> list[PointCloud]:
    """All clouds of one synthetic release: train, then query and gallery (with distractors, junk).

    Deterministic: the same options give bit-identical clouds, in the same order.
    """
    options = options or CloudOptions()
    options.validate()
    n_cams = options.resolved_cameras()
    base = _ID_BASE[options.domain]
    cams = _make_cameras(_rng(options, 1), options, n_cams)
    source_prefix = f"synthetic:clouds/{options.domain}/seed{options.seed}"

    order = _rng(options, 0).permutation(options.train_identities + options.test_identities) + 1 + base
    train_ids = np.sort(order[: options.train_identities])
    test_ids = np.sort(order[options.train_identities :])
    records: list[PointCloud] = []

    def emit(points: np.ndarray, person: int, camera: int, subset: str, tag: str) -> None:
        records.append(PointCloud(points=points, person=int(person), camera=int(camera),
                                  source=f"{source_prefix}/{subset}/{tag}", subset=subset, domain=options.domain))

    for subset_ids, is_test in ((train_ids, False), (test_ids, True)):
        for pid in subset_ids:
            prng = _rng(options, 2, int(pid))
            person = _make_person(prng, options)
            cam_of = _camera_split(prng, options.images_per_identity, n_cams)
            first = {}
            for j, c in enumerate(cam_of):
                subset = "train"
                if is_test:
                    subset = "gallery" if c in first else "query"
                    first.setdefault(c, j)
                pts = _render(_rng(options, 3, int(pid), j), person, cams[c - 1], options)
                emit(pts, pid, c, subset, f"{int(pid):05d}_c{c}_{j:02d}")
    for j in range(options.distractors):
        drng = _rng(options, 4, j)
        person = _make_person(drng, options)
        c = int(drng.integers(1, n_cams + 1))
        crop = None
        if drng.random() < 0.3:  # a poor detection: only part of the body
            lo = drng.uniform(0.0, 0.45)
            crop = (lo, lo + drng.uniform(0.45, 0.7))
        emit(_render(drng, person, cams[c - 1], options, crop), 0, c, "gallery", f"00000_c{c}_{j:03d}")
    for j in range(options.junk):
        jrng = _rng(options, 5, j)
        person = _make_person(jrng, options)
        c = int(jrng.integers(1, n_cams + 1))
        lo = jrng.uniform(0.0, 0.75)
        emit(_render(jrng, person, cams[c - 1], options, (lo, lo + jrng.uniform(0.1, 0.25))), -1, c, "gallery",
             f"-0001_c{c}_{j:03d}")
    return records


class SyntheticClouds(Dataset):
    """Synthetic coloured point clouds of people in Market-1501-3D's shape (see module doc)."""

    modality: ClassVar[str] = "pointcloud"
    options_class: ClassVar[type] = CloudOptions
    loader_version: ClassVar[str] = GENERATOR_VERSION
    description: ClassVar[str] = (
        "Deterministic synthetic coloured point clouds of walking people (visible body surface "
        "around a posed skeleton, clothing palette and patterns, bags, per-camera view, lighting "
        "and white balance, ground patch), with Market-1501-style train/query/gallery subsets, "
        "distractors (person 0) and junk (person -1); domains 'market' and 'duke'."
    )
    data_format: ClassVar[str] = (
        "Generated in memory: PointCloud records, points float32 [num_points, 6] = xyz in metres "
        "(camera-aligned: x right, y up, z towards the camera, ground under the person at 0) + "
        "rgb in [0, 1]; person (0 distractor, -1 junk), camera 1..cameras, subset "
        "train/query/gallery, domain."
    )
    license: ClassVar[str] = "CC0, generated"
    citation: ClassVar[str] = (
        "Stand-in for Market-1501-3D of: Zheng, Zhedong; Zheng, Nenggan; Yang, Yi. "
        "Parameter-Efficient Person Re-identification in the 3D Space. IEEE TNNLS, 2022 (OG-Net). "
        "No data of that work is used."
    )
    obtain: ClassVar[str] = "Nothing to download: generated by reid_bench.synthetic.clouds from the options."

    def load(self) -> list[PointCloud]:
        return generate_clouds(self.options)

    def verify(self) -> list[str]:
        problems: list[str] = []
        opts: CloudOptions = self.options
        try:
            opts.validate()
        except ValueError as exc:
            return [str(exc)]
        records = self.load()
        expected = (opts.train_identities + opts.test_identities) * opts.images_per_identity + opts.distractors + opts.junk
        if len(records) != expected:
            problems.append(f"expected {expected} clouds, generated {len(records)}")
        n_cams = opts.resolved_cameras()
        by_subset: dict[str, set[int]] = {"train": set(), "query": set(), "gallery": set()}
        cams_of: dict[tuple[str, int], set[int]] = {}
        for r in records:
            if r.points.shape != (opts.num_points, 6):
                problems.append(f"{r.source}: shape {r.points.shape}, expected ({opts.num_points}, 6)")
            rgb = r.points[:, 3:]
            if rgb.min() < 0.0 or rgb.max() > 1.0:
                problems.append(f"{r.source}: colours outside [0, 1]")
            if not 1 <= r.camera <= n_cams:
                problems.append(f"{r.source}: camera {r.camera} outside 1..{n_cams}")
            if r.subset not in by_subset:
                problems.append(f"{r.source}: unknown subset {r.subset!r}")
                continue
            if r.person <= 0 and r.subset != "gallery":
                problems.append(f"{r.source}: person {r.person} outside the gallery")
            by_subset[r.subset].add(r.person)
            cams_of.setdefault((r.subset, r.person), set()).add(r.camera)
        if by_subset["train"] & (by_subset["query"] | by_subset["gallery"]):
            problems.append("train and test identities overlap")
        for pid in sorted(by_subset["query"]):
            q = cams_of.get(("query", pid), set())
            g = cams_of.get(("gallery", pid), set())
            if not any(g - {c} for c in q):
                problems.append(f"test person {pid}: no cross-camera gallery match")
        if len(problems) > 50:
            problems = problems[:50] + [f"... and {len(problems) - 50} more"]
        return problems


__all__ = ["CloudOptions", "DOMAINS", "SyntheticClouds", "generate_clouds"]
