"""The synthetic walkers: determinism, counts, layout, identity signal and nuisance."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from reid_bench.api import Dataset, SkeletonSequence
from reid_bench.layouts import KINECT_V1_20
from reid_bench.synthetic.skeletons import SyntheticSkeletons, WalkerOptions, generate_walkers

SMALL = WalkerOptions(identities=6, train_sequences=3, test_sequences=2, min_frames=30, max_frames=50)


@pytest.fixture(scope="module")
def small() -> list[SkeletonSequence]:
    return generate_walkers(SMALL)


def _yaw(view: str) -> int:
    assert view.startswith("yaw")
    return int(view[3:])


def test_defaults_are_the_benchmark_default():
    o = WalkerOptions()
    assert (o.identities, o.train_sequences, o.test_sequences) == (20, 4, 2)
    assert (o.min_frames, o.max_frames, o.fps, o.seed) == (40, 80, 30.0, 0)
    assert all(f.type for f in dataclasses.fields(o))


def test_same_seed_is_bit_identical_other_seed_differs(small):
    again = generate_walkers(dataclasses.replace(SMALL))
    assert [r.sequence for r in again] == [r.sequence for r in small]
    for a, b in zip(small, again):
        assert a.frames.tobytes() == b.frames.tobytes()
        assert (a.view, a.condition, a.session, a.source) == (b.view, b.condition, b.session, b.source)
    other = generate_walkers(dataclasses.replace(SMALL, seed=1))
    assert not np.array_equal(other[0].frames[:30], small[0].frames[:30])


def test_counts_names_and_layout(small):
    assert len(small) == 6 * (3 + 2 + 2)
    counts: dict[tuple[int, str], int] = {}
    for r in small:
        counts[(r.person, r.session)] = counts.get((r.person, r.session), 0) + 1
        assert r.layout == KINECT_V1_20.name == "kinect-v1-20"
        assert r.frames.dtype == np.float32 and r.frames.shape[1:] == (20, 3)
        assert 30 <= len(r.frames) <= 50
        assert np.isfinite(r.frames).all()
        assert r.source.startswith("synthetic:")
        assert r.condition in ("toward", "away")
        assert r.sequence.startswith(f"p{r.person:03d}-")
        _yaw(r.view)
    assert counts == {(p, s): n for p in range(1, 7) for s, n in (("train", 3), ("A", 2), ("B", 2))}
    assert len({r.sequence for r in small}) == len(small)
    assert "p003-A-01" in {r.sequence for r in small}


def test_anatomy_and_camera_frame(small):
    """Metres, y up, people in front of the sensor at a few metres."""
    for r in small:
        f = r.frames
        assert (np.median(f[:, 3, 1]) > np.median(f[:, 0, 1]) > np.median(f[:, 14, 1]))  # head > hip > ankle
        assert 1.3 < np.median(f[:, 0, 2]) < 4.8
    bones = np.concatenate([KINECT_V1_20.bone_lengths(r.frames) for r in small])
    assert 0.05 < np.median(bones) < 0.5


def _bone_profile(recs) -> np.ndarray:
    return np.median(np.concatenate([KINECT_V1_20.bone_lengths(r.frames) for r in recs]), axis=0)


def _session_distances(recs, n_people):
    """Distances of each test sequence's bone profile to every person's train profile."""
    train = np.stack([_bone_profile([r for r in recs if r.person == p and r.session == "train"])
                      for p in range(1, n_people + 1)])
    rows = [(r.person, np.linalg.norm(_bone_profile([r]) - train, axis=1)) for r in recs if r.session != "train"]
    return rows


def test_identity_signal_bone_lengths(small):
    """Bone lengths of a person in sessions A and B are closer to their own train sequences
    than to other people's: always without sensor noise, on average with it."""
    clean = generate_walkers(dataclasses.replace(SMALL, noise=0.0, dropout_prob=0.0, spike_prob=0.0))
    rows = _session_distances(clean, 6)
    assert np.mean([np.argmin(d) + 1 == p for p, d in rows]) >= 0.9  # chance is 1/6

    rows = _session_distances(small, 6)
    same = np.mean([d[p - 1] for p, d in rows])
    other = np.mean([np.delete(d, p - 1).mean() for p, d in rows])
    assert same < 0.9 * other
    assert np.mean([np.argmin(d) + 1 == p for p, d in rows]) >= 0.35


def test_identity_spread_zero_removes_identity():
    opts = dataclasses.replace(SMALL, identity_spread=0.0, noise=0.0, dropout_prob=0.0, spike_prob=0.0, gait_variability=0.0)
    recs = [r for r in generate_walkers(opts) if r.session == "train" and r.condition == "toward"]
    bones = np.array([KINECT_V1_20.bone_lengths(r.frames[0]) for r in recs])
    assert np.allclose(bones, bones[0], atol=1e-4)  # everybody has the same body


def test_views_differ_between_sessions(small):
    def off_axis(r):  # angle between the walking direction and the sensor axis, in [0, 90]
        y = abs(_yaw(r.view))
        return min(y, 180 - y)

    train = [off_axis(r) for r in small if r.session == "train"]
    a = [off_axis(r) for r in small if r.session == "A"]
    b = [off_axis(r) for r in small if r.session == "B"]
    assert max(train) <= SMALL.train_yaw and max(a) <= SMALL.train_yaw
    assert min(b) >= SMALL.session_b_yaw_min - 1
    depth = {s: np.mean([r.frames[:, 0, 2].mean() for r in small if r.session == s]) for s in ("train", "B")}
    assert depth["B"] > depth["train"]


def test_noise_knobs_change_only_the_nuisance():
    clean = dataclasses.replace(SMALL, noise=0.0, dropout_prob=0.0, spike_prob=0.0)
    noisy = dataclasses.replace(SMALL, noise=0.05)
    c, n = generate_walkers(clean)[0], generate_walkers(noisy)[0]
    # a clean skeleton moves smoothly; the noisy one jitters
    jerk = lambda f: np.abs(np.diff(f, n=2, axis=0)).mean()  # noqa: E731
    assert jerk(n.frames) > 3 * jerk(c.frames)
    assert c.view == n.view and len(c.frames) == len(n.frames)


def test_default_generation_is_fast():
    t0 = time.perf_counter()
    recs = generate_walkers(WalkerOptions())
    assert time.perf_counter() - t0 < 2.0
    assert len(recs) == 20 * 8


def test_dataset_plugin(small):
    ds = SyntheticSkeletons(options=SMALL)
    assert isinstance(ds, Dataset) and ds.modality == "skeleton"
    assert ds.options_class is WalkerOptions and isinstance(SyntheticSkeletons().options, WalkerOptions)
    assert ds.license.startswith("CC0") and ds.citation and ds.obtain and ds.description and ds.data_format
    assert ds.verify() == []
    assert [r.sequence for r in ds.load()] == [r.sequence for r in small]
    assert ds.checksum() != SyntheticSkeletons(options=dataclasses.replace(SMALL, seed=3)).checksum()
    with pytest.raises(ValueError, match="min_frames"):  # refused when the options are made
        dataclasses.replace(SMALL, min_frames=60, max_frames=50)
