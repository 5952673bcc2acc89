"""Synthetic walkers: deterministic-by-seed skeleton sequences in the Kinect v1 20-joint layout.

Every person is a parametric walker. Identity lives in

* **anthropometry**: overall height and per-bone proportions (spine, neck, shoulder and hip
  widths, upper arm, forearm, hand, thigh, shank, foot, ankle height), and
* **gait dynamics**: cadence, hip (stride) amplitude, knee flexion amplitude and timing, arm
  swing amplitude, elbow flexion, arm abduction, phase offsets between limbs and between the
  left and right side, torso lean and upper-back curve, head tilt, hip sway, pelvis and
  thorax rotation, stance width and toe-out.

Nuisance varies per sequence: view (yaw of the walking direction about the vertical axis),
walking toward or away from the sensor (a Kinect v1 labels a back view as if it were frontal,
so left and right swap), distance, lateral position, sensor height, sequence length, small
within-person gait variability, temporally correlated sensor jitter that grows with depth
(noisier at the extremities), dropped joints (frozen at their previous value or snapped onto
their parent joint for a few frames) and jumping joints (spikes).

Sessions, like IAS-Lab:

* ``train``: the reference session (near-frontal or near-back views, 2-3 m).
* ``A``: a new day with other clothes: torso length and shoulder/hip widths look a few percent
  different, other shoes (ankle height), more jitter, cadence shifted within the person's
  range. Same views as ``train``.
* ``B``: the same clothes in a new place: oblique views (yaw 40-75 deg off the sensor axis) at
  3-4 m, hence more depth noise.

Coordinates follow the brief's Kinect-like camera frame: metres, x to the right (seen from the
sensor), y up, z away from the sensor; the sensor sits about 1 m above the floor.
Generation is vectorised over frames; the default problem (20 identities x 8 sequences) takes
well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from reid_bench.api import Dataset, SkeletonSequence
from reid_bench.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Range
from reid_bench.layouts import KINECT_V1_20

GENERATOR_VERSION = "1"

SESSIONS: tuple[str, ...] = ("train", "A", "B")
_SESSION_CODE = {"train": 0, "A": 1, "B": 2}

# Joint indices (Kinect v1 SDK order).
HIP_C, SPINE, SHOULDER_C, HEAD = 0, 1, 2, 3
SHOULDER_L, ELBOW_L, WRIST_L, HAND_L = 4, 5, 6, 7
SHOULDER_R, ELBOW_R, WRIST_R, HAND_R = 8, 9, 10, 11
HIP_L, KNEE_L, ANKLE_L, FOOT_L = 12, 13, 14, 15
HIP_R, KNEE_R, ANKLE_R, FOOT_R = 16, 17, 18, 19
NUM_JOINTS = 20

#: Parent of every joint in the kinematic tree (HipCenter is the root).
PARENT = np.array([0, 0, 1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18])
#: The permutation that swaps left and right joint labels.
MIRROR = np.array([0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15])
#: Relative jitter per joint: Kinect v1 tracks the trunk well and hands/feet badly.
_JOINT_NOISE = np.array(
    [0.7, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 1.0, 1.2, 1.5, 1.8, 0.9, 1.1, 1.4, 1.7, 0.9, 1.1, 1.4, 1.7]
)

# Mean body proportions as fractions of the standing height.
_PROPORTIONS = {
    "ankle_h": 0.040,
    "shank": 0.230,
    "thigh": 0.240,
    "hip_drop": 0.040,
    "hip_half": 0.045,
    "low_spine": 0.060,
    "up_spine": 0.220,
    "neck": 0.105,
    "sh_half": 0.100,
    "sh_drop": 0.020,
    "upper_arm": 0.165,
    "forearm": 0.145,
    "hand": 0.045,
    "foot": 0.060,
}


@dataclass
class WalkerOptions:
    """Options of the synthetic walkers; the defaults are the benchmark's ``synth-gait`` data.

    Sizes
        ``identities``: number of people (person ids 1..identities).
        ``train_sequences``: sequences per person in session "train".
        ``test_sequences``: sequences per person in EACH of the test sessions "A" and "B".
        ``min_frames`` / ``max_frames``: sequence length range (uniform, inclusive).
        ``fps``: frame rate. ``seed``: everything (people and nuisance) follows from it.

    Difficulty
        ``identity_spread``: scales every between-person spread (anthropometry and gait);
        0 makes everybody the same average person.
        ``style_spread``: extra factor on the between-person spread of the gait dynamics only
        (cadence, swing amplitudes, phases, posture), on top of ``identity_spread``.
        ``gait_variability``: relative within-person variation of gait parameters per sequence.
        ``noise``: std (m) of the temporally correlated sensor jitter per joint and axis at
        2.5 m (it grows with depth squared; hands and feet up to 1.8x, depth axis 1.5x).
        ``noise_smoothness``: AR(1) coefficient of that jitter in [0, 1) (0 = white noise).
        ``dropout_prob``: probability per joint and frame that the joint drops out for 3-10
        frames (frozen at its last value, or snapped onto its parent joint).
        ``spike_prob`` / ``spike_scale``: probability per joint and frame of a 1-2 frame jump,
        and its std (m).

    Views and sessions
        ``train_yaw``: |yaw| (deg) of the walking direction off the sensor axis in sessions
        "train" and "A" is uniform in [0, train_yaw].
        ``away_prob``: probability that a sequence walks away from the sensor (back view).
        ``mirror_back_views``: label back views like a Kinect v1 does (left/right swapped).
        ``train_distance_min`` / ``_max``: distance (m) of the walk's midpoint, train and A.
        ``session_a_noise``: jitter multiplier in session A.
        ``clothing``: relative change of apparent torso length and shoulder/hip width (other
        clothes) and of ankle height (other shoes) in session A.
        ``session_a_cadence_shift``: relative cadence shift (either sign) in session A.
        ``session_b_yaw_min`` / ``_max``: |yaw| range (deg) in session B.
        ``session_b_distance_min`` / ``_max``: midpoint distance range (m) in session B.
    """

    identities: PositiveInt = 20
    train_sequences: NonNegativeInt = 4
    test_sequences: NonNegativeInt = 2
    min_frames: PositiveInt = 40
    max_frames: PositiveInt = 80
    fps: PositiveFloat = 30.0
    seed: NonNegativeInt = 0
    identity_spread: NonNegativeFloat = 1.0
    style_spread: NonNegativeFloat = 1.5
    gait_variability: NonNegativeFloat = 0.04
    noise: NonNegativeFloat = 0.02
    noise_smoothness: Annotated[float, Range(ge=0, lt=1)] = 0.6
    dropout_prob: Probability = 0.004
    spike_prob: Probability = 0.002
    spike_scale: NonNegativeFloat = 0.15
    train_yaw: Annotated[float, Range(ge=0, le=180)] = 30.0
    away_prob: Probability = 0.5
    mirror_back_views: bool = True
    train_distance_min: PositiveFloat = 2.0
    train_distance_max: PositiveFloat = 3.0
    session_a_noise: NonNegativeFloat = 1.5
    clothing: NonNegativeFloat = 0.03
    session_a_cadence_shift: NonNegativeFloat = 0.05
    session_b_yaw_min: Annotated[float, Range(ge=0, le=180)] = 40.0
    session_b_yaw_max: Annotated[float, Range(ge=0, le=180)] = 75.0
    session_b_distance_min: PositiveFloat = 3.0
    session_b_distance_max: PositiveFloat = 4.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.identities < 1:
            raise ValueError("identities must be at least 1")
        if self.train_sequences < 0 or self.test_sequences < 0:
            raise ValueError("sequence counts must not be negative")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames ({self.min_frames}) <= max_frames ({self.max_frames})")
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        if not 0 <= self.noise_smoothness < 1:
            raise ValueError("noise_smoothness must be in [0, 1)")
        for name in ("identity_spread", "style_spread", "gait_variability", "noise", "spike_scale", "clothing"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("dropout_prob", "spike_prob", "away_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0 < self.train_distance_min <= self.train_distance_max:
            raise ValueError("need 0 < train_distance_min <= train_distance_max")
        if not 0 < self.session_b_distance_min <= self.session_b_distance_max:
            raise ValueError("need 0 < session_b_distance_min <= session_b_distance_max")
        if not 0 <= self.session_b_yaw_min <= self.session_b_yaw_max <= 180:
            raise ValueError("need 0 <= session_b_yaw_min <= session_b_yaw_max <= 180")


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------


def _person_params(seed: int, person: int, spread: float, style: float = 1.0) -> dict[str, float]:
    """Anthropometry and gait style of one person; depends on (seed, person) only.

    ``spread`` scales every between-person deviation, ``style`` additionally the gait ones.
    """
    rng = np.random.default_rng([seed, 0x5EED, person])
    s = spread

    def n(mean: float, sd: float, lo: float = -np.inf, hi: float = np.inf) -> float:
        return float(np.clip(mean + sd * s * rng.standard_normal(), lo, hi))

    p: dict[str, float] = {"height": n(1.72, 0.09, 1.45, 2.00)}
    for name, frac in _PROPORTIONS.items():
        p[name] = p["height"] * frac * n(1.0, 0.05, 0.8, 1.2)
    s = spread * style
    p.update(
        cadence=n(0.93, 0.07, 0.70, 1.15),  # strides per second
        hip_amp=n(0.40, 0.05, 0.25, 0.55),  # thigh swing amplitude (rad)
        hip_off=n(0.05, 0.04),  # mean thigh flexion
        hip_h2=n(0.03, 0.03),  # second harmonic of the thigh curve
        hip_h2_phase=n(0.0, 0.8),
        knee_amp=n(1.00, 0.12, 0.6, 1.4),  # swing knee flexion
        knee_load=n(0.25, 0.08, 0.0, 0.5),  # stance (loading) knee flexion
        knee_base=n(0.08, 0.04, 0.0, 0.25),
        knee_phase=n(-0.15, 0.20),
        ankle_angle=n(0.35, 0.08),
        arm_amp=n(0.35, 0.12, 0.05, 0.7),
        arm_off=n(0.02, 0.05),
        arm_phase=n(0.0, 0.25),
        elbow_base=n(0.25, 0.10, 0.02, 0.7),
        elbow_amp=n(0.30, 0.10, 0.0, 0.7),
        elbow_phase=n(0.0, 0.4),
        abduction=n(0.12, 0.05, 0.0, 0.35),
        lean=n(0.06, 0.05, -0.1, 0.25),
        lean_osc=n(0.02, 0.01, 0.0, 0.06),
        kyphosis=n(0.05, 0.05, -0.1, 0.25),
        head_tilt=n(0.10, 0.08, -0.15, 0.4),
        sway=n(0.03, 0.01, 0.0, 0.07),  # lateral hip sway (m)
        pelvis_rot=n(0.12, 0.05, 0.0, 0.3),
        thorax_rot=n(0.08, 0.04, 0.0, 0.25),
        lr_phase=n(0.0, 0.10),  # right leg phase offset beyond pi
        lr_amp=n(1.0, 0.05, 0.8, 1.2),  # right/left amplitude ratio
        stance=n(0.9, 0.15, 0.5, 1.4),  # ankle lateral offset / hip half width
        toe_out=n(0.15, 0.08, -0.1, 0.4),
    )
    return p


# --------------------------------------------------------------------------------------------
# One walk
# --------------------------------------------------------------------------------------------


def _yaw(a: np.ndarray, c: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate body-frame (forward a, left c) vectors by psi about the vertical axis."""
    cp, sp = np.cos(psi), np.sin(psi)
    return a * cp - c * sp, a * sp + c * cp


def _walk(p: dict[str, float], T: int, fps: float, phase0: float, cadence: float, amp: float) -> np.ndarray:
    """Joint positions [T, 20, 3] in the walker's body frame (forward, up, left), floor at 0,
    pelvis above the origin (the forward progression is added by the caller)."""
    t = np.arange(T) / fps
    phi = 2 * np.pi * cadence * t + phase0
    out = np.zeros((T, NUM_JOINTS, 3))

    # ---- legs, in the pelvis frame (origin at HipCenter) ---------------------------------
    psi_p = -p["pelvis_rot"] * amp * np.sin(phi)
    lowest = []
    for side, (hip, knee, ankle, foot) in ((1.0, (HIP_L, KNEE_L, ANKLE_L, FOOT_L)), (-1.0, (HIP_R, KNEE_R, ANKLE_R, FOOT_R))):
        ph = phi if side > 0 else phi + np.pi + p["lr_phase"]
        a_scale = amp * (1.0 if side > 0 else p["lr_amp"])
        alpha = p["hip_off"] + a_scale * (p["hip_amp"] * np.sin(ph) + p["hip_h2"] * np.sin(2 * ph + p["hip_h2_phase"]))
        kappa = (
            p["knee_base"]
            + a_scale * p["knee_amp"] * ((1 + np.cos(ph - p["knee_phase"])) / 2) ** 2
            + p["knee_load"] * ((1 + np.cos(ph - p["knee_phase"] - 2.2)) / 2) ** 8
        )
        shank = alpha - kappa
        gamma = p["ankle_angle"] + 0.25 * a_scale * np.sin(ph - 0.5)
        hip_a, hip_b, hip_c = 0.0, -p["hip_drop"], side * p["hip_half"]
        knee_a = hip_a + p["thigh"] * np.sin(alpha)
        knee_b = hip_b - p["thigh"] * np.cos(alpha)
        knee_c = side * p["hip_half"] * (1 + p["stance"]) / 2
        ank_a = knee_a + p["shank"] * np.sin(shank)
        ank_b = knee_b - p["shank"] * np.cos(shank)
        ank_c = side * p["hip_half"] * p["stance"]
        foot_a = ank_a + p["foot"] * np.cos(shank - gamma) * np.cos(p["toe_out"])
        foot_b = ank_b + p["foot"] * np.sin(shank - gamma)
        foot_c = ank_c + side * p["foot"] * np.cos(shank - gamma) * np.sin(p["toe_out"])
        for j, (ja, jb, jc) in (
            (hip, (hip_a, hip_b, hip_c)),
            (knee, (knee_a, knee_b, knee_c)),
            (ankle, (ank_a, ank_b, ank_c)),
            (foot, (foot_a, foot_b, foot_c)),
        ):
            ra, rc = _yaw(np.broadcast_to(ja, (T,)), np.broadcast_to(jc, (T,)), psi_p)
            out[:, j, 0], out[:, j, 1], out[:, j, 2] = ra, jb, rc
        lowest.append(np.minimum(ank_b - p["ankle_h"], foot_b - 0.02))
    # the stance leg touches the floor: this gives the vertical bob of the whole body
    pelvis_y = -np.minimum(lowest[0], lowest[1])

    # ---- trunk and head -------------------------------------------------------------------
    lean = p["lean"] + p["lean_osc"] * amp * np.sin(2 * phi)
    out[:, SPINE, 0] = p["low_spine"] * np.sin(lean)
    out[:, SPINE, 1] = p["low_spine"] * np.cos(lean)
    upper = lean + p["kyphosis"]
    out[:, SHOULDER_C, 0] = out[:, SPINE, 0] + p["up_spine"] * np.sin(upper)
    out[:, SHOULDER_C, 1] = out[:, SPINE, 1] + p["up_spine"] * np.cos(upper)
    head = upper + p["head_tilt"]
    out[:, HEAD, 0] = out[:, SHOULDER_C, 0] + p["neck"] * np.sin(head)
    out[:, HEAD, 1] = out[:, SHOULDER_C, 1] + p["neck"] * np.cos(head)

    # ---- arms, in the thorax frame (origin at ShoulderCenter), counter-rotating ------------
    psi_s = p["thorax_rot"] * amp * np.sin(phi)
    sc = out[:, SHOULDER_C]
    eps, eps2 = p["abduction"], 0.5 * p["abduction"]
    for side, (sh, el, wr, ha) in ((1.0, (SHOULDER_L, ELBOW_L, WRIST_L, HAND_L)), (-1.0, (SHOULDER_R, ELBOW_R, WRIST_R, HAND_R))):
        ph = (phi + np.pi if side > 0 else phi + p["lr_phase"]) + p["arm_phase"]
        beta = p["arm_off"] + amp * p["arm_amp"] * np.sin(ph)
        nu = p["elbow_base"] + amp * p["elbow_amp"] * (1 + np.sin(ph + p["elbow_phase"])) / 2
        sh_a, sh_b, sh_c = np.zeros(T), np.full(T, -p["sh_drop"]), np.full(T, side * p["sh_half"])
        el_a = sh_a + p["upper_arm"] * np.sin(beta) * np.cos(eps)
        el_b = sh_b - p["upper_arm"] * np.cos(beta) * np.cos(eps)
        el_c = sh_c + side * p["upper_arm"] * np.sin(eps)
        fa = np.minimum(beta + nu, 1.1)  # the forearm never swings above ~60 deg from vertical
        dir_a, dir_b, dir_c = np.sin(fa) * np.cos(eps2), -np.cos(fa) * np.cos(eps2), side * np.sin(eps2)
        wr_a, wr_b, wr_c = el_a + p["forearm"] * dir_a, el_b + p["forearm"] * dir_b, el_c + p["forearm"] * dir_c
        ha_a, ha_b, ha_c = wr_a + p["hand"] * dir_a, wr_b + p["hand"] * dir_b, wr_c + p["hand"] * dir_c
        for j, (ja, jb, jc) in ((sh, (sh_a, sh_b, sh_c)), (el, (el_a, el_b, el_c)), (wr, (wr_a, wr_b, wr_c)), (ha, (ha_a, ha_b, ha_c))):
            ra, rc = _yaw(ja, jc, psi_s)
            out[:, j, 0], out[:, j, 1], out[:, j, 2] = sc[:, 0] + ra, sc[:, 1] + jb, sc[:, 2] + rc

    # ---- whole body: hip sway and pelvis height --------------------------------------------
    out[:, :, 2] += (-p["sway"] * amp * np.cos(phi))[:, None]
    out[:, :, 1] += pelvis_y[:, None]
    return out


def _ar1_noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) noise with unit variance along axis 0."""
    white = rng.standard_normal(shape)
    if rho <= 0:
        return white
    out = np.empty_like(white)
    out[0] = white[0]
    innov = math.sqrt(1 - rho * rho)
    for i in range(1, shape[0]):
        out[i] = rho * out[i - 1] + innov * white[i]
    return out


@dataclass
class _Placement:
    """Where and how one walk is seen: the walking direction (yaw in degrees, after turning back
    views round), the midpoint's distance and lateral offset, the sensor height, the gait phase."""

    yaw: float
    away: bool
    distance: float
    lateral: float
    sensor_height: float
    phase0: float


def _session_gait(
    rng: np.random.Generator, opts: WalkerOptions, p: dict[str, float], session: str
) -> tuple[dict[str, float], float, float, float]:
    """The walker's parameters for one sequence: within-person variability, and in session A
    other clothes, shoes, cadence and more jitter. Returns (parameters, cadence, noise, amplitude)."""
    gv = opts.gait_variability
    q = dict(p)
    cadence = p["cadence"] * (1 + gv * rng.standard_normal())
    noise = opts.noise
    # other clothes and shoes (drawn for every session so that the random streams line up)
    c = opts.clothing
    torso = 1 + c * rng.standard_normal()
    widths = 1 + c * rng.uniform(0.0, 2.0, size=2)
    shoes = 1 + 4 * c * rng.uniform(-0.5, 1.0)
    shift = opts.session_a_cadence_shift * rng.choice([-1.0, 1.0])
    if session == "A":
        q["low_spine"] *= torso
        q["up_spine"] *= torso
        q["sh_half"] *= widths[0]
        q["hip_half"] *= widths[1]
        q["ankle_h"] *= shoes
        cadence *= 1 + shift
        noise *= opts.session_a_noise
    for key in ("hip_amp", "knee_amp", "arm_amp", "elbow_base", "lean", "head_tilt", "sway"):
        q[key] = p[key] * (1 + gv * rng.standard_normal())
    amp = float(np.clip((cadence / p["cadence"]) ** 0.5, 0.8, 1.2))  # faster walk, larger swing
    return q, cadence, noise, amp


def _distance_range(opts: WalkerOptions, session: str) -> tuple[float, float]:
    if session == "B":
        return opts.session_b_distance_min, opts.session_b_distance_max
    return opts.train_distance_min, opts.train_distance_max


def _placement(rng: np.random.Generator, opts: WalkerOptions, session: str) -> _Placement:
    """View, place and direction of one walk (session B: oblique and farther away)."""
    if session == "B":
        yaw = rng.uniform(opts.session_b_yaw_min, opts.session_b_yaw_max) * rng.choice([-1.0, 1.0])
    else:
        yaw = rng.uniform(-opts.train_yaw, opts.train_yaw)
    dist = rng.uniform(*_distance_range(opts, session))
    away = bool(rng.uniform() < opts.away_prob)
    if away:
        yaw = yaw + 180.0
    yaw = (yaw + 180.0) % 360.0 - 180.0
    lateral = rng.normal(0.0, 0.3)
    sensor_height = rng.uniform(0.8, 1.2)
    phase0 = rng.uniform(0, 2 * np.pi)
    return _Placement(yaw, away, dist, lateral, sensor_height, phase0)


def _in_sensor_frame(
    body: np.ndarray, q: dict[str, float], cadence: float, amp: float, place: _Placement, opts: WalkerOptions,
    session: str,
) -> np.ndarray:
    """Body-frame joints [T, J, 3] walked forward along the walking direction and placed in
    front of the sensor, the walk's midpoint at ``place``'s distance where the walk fits."""
    T = len(body)
    theta = math.radians(place.yaw)
    # forward progression along the walking direction, centred on the midpoint
    leg = q["thigh"] + q["shank"]
    speed = 2 * cadence * 2 * leg * math.sin(q["hip_amp"] * amp) * 0.9
    tt = (np.arange(T) - (T - 1) / 2) / opts.fps
    fwd = body[:, :, 0] + (speed * tt)[:, None]
    f = np.array([-math.sin(theta), 0.0, -math.cos(theta)])  # yaw 0: facing the sensor
    left = np.array([-f[2], 0.0, f[0]])  # f x up
    # keep the whole walk inside the distance range where it fits, else centre it there
    lo, hi = _distance_range(opts, session)
    half = abs(f[2]) * speed * (T - 1) / opts.fps / 2
    dist = float(np.clip(place.distance, lo + half, hi - half)) if 2 * half <= hi - lo else (lo + hi) / 2
    mid = np.array([place.lateral, -place.sensor_height, dist])
    return mid + fwd[..., None] * f + body[:, :, 1:2] * np.array([0.0, 1.0, 0.0]) + body[:, :, 2:3] * left


def _sensed(rng: np.random.Generator, world: np.ndarray, noise: float, opts: WalkerOptions) -> np.ndarray:
    """What a Kinect reports of ``world``: jitter growing with depth, dropped and jumping joints."""
    T = len(world)
    depth = np.clip(world[:, :, 2], 0.5, None)
    scale = noise * _JOINT_NOISE[None, :] * (depth / 2.5) ** 2
    jitter = _ar1_noise(rng, (T, NUM_JOINTS, 3), opts.noise_smoothness) * np.array([1.0, 1.0, 1.5])
    frames = world + jitter * scale[..., None]

    starts = np.argwhere(rng.uniform(size=(T, NUM_JOINTS)) < opts.dropout_prob)
    durations = rng.integers(3, 11, size=len(starts))
    snap = rng.uniform(size=len(starts)) < 0.5
    for (t0, j), d, sn in zip(starts, durations, snap):
        if j == HIP_C:
            continue
        t1 = min(T, t0 + d)
        if sn:  # inferred joint collapses onto its parent
            frames[t0:t1, j] = frames[t0:t1, PARENT[j]]
        elif t0 > 0:  # frozen at the last tracked position
            frames[t0:t1, j] = frames[t0 - 1, j]

    spikes = rng.uniform(size=(T, NUM_JOINTS)) < opts.spike_prob
    if spikes.any():
        jump = rng.normal(0.0, opts.spike_scale, size=(T, NUM_JOINTS, 3))
        two = spikes & (rng.uniform(size=(T, NUM_JOINTS)) < 0.5)
        mask = spikes.copy()
        mask[1:] |= two[:-1]
        jump[1:] = np.where(two[:-1, :, None], jump[:-1], jump[1:])
        frames = frames + jump * mask[..., None]
    return frames


def _sequence(
    opts: WalkerOptions, p: dict[str, float], person: int, session: str, index: int
) -> SkeletonSequence:
    """One walk of ``person``; its own random stream, drawn in a fixed order: length, gait,
    placement, then sensor noise (the order is the data: changing it changes every walker)."""
    rng = np.random.default_rng([opts.seed, 0xF00D, person, _SESSION_CODE[session], index])
    T = int(rng.integers(opts.min_frames, opts.max_frames + 1))
    q, cadence, noise, amp = _session_gait(rng, opts, p, session)
    place = _placement(rng, opts, session)
    body = _walk(q, T, opts.fps, place.phase0, cadence, amp)  # [T, J, 3] forward, up, left
    frames = _sensed(rng, _in_sensor_frame(body, q, cadence, amp, place, opts, session), noise, opts)
    if place.away and opts.mirror_back_views:
        frames = frames[:, MIRROR]

    label = "train" if session == "train" else session
    name = f"p{person:03d}-{label}-{index + 1:02d}"
    return SkeletonSequence(
        frames=frames.astype(np.float32),
        layout=KINECT_V1_20.name,
        person=person,
        sequence=name,
        view=f"yaw{int(round(place.yaw)):+04d}",
        condition="away" if place.away else "toward",
        session=session,
        source=f"synthetic:walkers/v{GENERATOR_VERSION}/seed={opts.seed}/{name}",
    )


def generate_walkers(options: WalkerOptions | None = None) -> list[SkeletonSequence]:
    """All sequences of all people: per person the train, then A, then B sequences."""
    opts = options if options is not None else WalkerOptions()
    opts.validate()
    counts = {"train": opts.train_sequences, "A": opts.test_sequences, "B": opts.test_sequences}
    records: list[SkeletonSequence] = []
    for person in range(1, opts.identities + 1):
        p = _person_params(opts.seed, person, opts.identity_spread, opts.style_spread)
        for session in SESSIONS:
            for index in range(counts[session]):
                records.append(_sequence(opts, p, person, session, index))
    return records


# --------------------------------------------------------------------------------------------
# Dataset plugin
# --------------------------------------------------------------------------------------------


class SyntheticSkeletons(Dataset):
    """Synthetic walkers (the embedded default skeleton data)."""

    modality = "skeleton"
    layout = "kinect-v1-20"
    options_class = WalkerOptions
    loader_version = GENERATOR_VERSION
    description = (
        "Deterministic synthetic walkers in the Kinect v1 20-joint layout: identity in body "
        "proportions and gait dynamics; sessions train / A (other clothes, more jitter) / "
        "B (new place: oblique views, farther away), like IAS-Lab."
    )
    data_format = "generated in memory: SkeletonSequence records, float32 [T, 20, 3] metres (x right, y up, z away)"
    license = "CC0, generated"
    citation = "reid-bench synthetic walkers"
    obtain = "generated on the fly; nothing to download"

    def load(self) -> list[SkeletonSequence]:
        return generate_walkers(self.options)

    def verify(self) -> list[str]:
        opts: WalkerOptions = self.options
        problems: list[str] = []
        try:
            opts.validate()
        except ValueError as exc:
            return [f"invalid options: {exc}"]
        records = self.load()
        expected = {"train": opts.train_sequences, "A": opts.test_sequences, "B": opts.test_sequences}
        counts: dict[tuple[int, str], int] = {}
        names: set[str] = set()
        for rec in records:
            counts[(rec.person, rec.session)] = counts.get((rec.person, rec.session), 0) + 1
            if rec.sequence in names:
                problems.append(f"{rec.sequence}: duplicate sequence name")
            names.add(rec.sequence)
            if rec.layout != KINECT_V1_20.name:
                problems.append(f"{rec.sequence}: layout {rec.layout!r}, expected {KINECT_V1_20.name!r}")
            T, J, D = rec.frames.shape
            if J != KINECT_V1_20.num_joints or D != 3:
                problems.append(f"{rec.sequence}: frames {rec.frames.shape}, expected [T, 20, 3]")
            if not opts.min_frames <= T <= opts.max_frames:
                problems.append(f"{rec.sequence}: {T} frames outside [{opts.min_frames}, {opts.max_frames}]")
            if rec.frames.dtype != np.float32 or not np.isfinite(rec.frames).all():
                problems.append(f"{rec.sequence}: frames must be finite float32")
            if rec.session not in expected:
                problems.append(f"{rec.sequence}: unknown session {rec.session!r}")
        for person in range(1, opts.identities + 1):
            for session, n in expected.items():
                got = counts.get((person, session), 0)
                if got != n:
                    problems.append(f"person {person}, session {session}: {got} sequences, expected {n}")
        extra = {p for p, _ in counts} - set(range(1, opts.identities + 1))
        if extra:
            problems.append(f"unexpected person ids {sorted(extra)}")
        return problems


__all__ = [
    "GENERATOR_VERSION",
    "SESSIONS",
    "SyntheticSkeletons",
    "WalkerOptions",
    "generate_walkers",
]
