"""Windowing and the synthetic protocols' splits (no leaks, determinism, junk handling)."""

from __future__ import annotations

import numpy as np
import pytest

from reid_bench.api import SkeletonSequence
from reid_bench.layouts import KINECT_V1_20
from reid_bench.registry import get_registry
from reid_bench.samples import sequence_windows, windows_from_sequences
from reid_bench.scoring import RetrievalScoring, retrieval_items
from reid_bench.trial import HarnessData, resolve_config
from reid_bench.config import Overrides


def _seq(person, n, view="v", session="train", offset=0.0):
    frames = np.zeros((n, 20, 3), dtype=np.float32)
    frames[:, :, 0] = np.arange(n)[:, None] + offset  # x grows with the frame index
    frames[:, 3, 1] = 1.0 + person  # head height identifies the person
    return SkeletonSequence(frames, "kinect-v1-20", person, f"p{person}-{session}-{n}", view=view, session=session)


def test_sequence_windows():
    assert sequence_windows(12, 6, 3) == [0, 3, 6]
    assert sequence_windows(12, 6, 6) == [0, 6]
    assert sequence_windows(4, 6, 3) == [0]  # short sequence: one padded window
    with pytest.raises(ValueError):
        sequence_windows(10, 0, 1)


def test_windows_are_centred_padded_and_grouped():
    recs = [_seq(1, 12), _seq(2, 4, view="w")]
    split = windows_from_sequences(recs, 6, 3, KINECT_V1_20, labels={1: 0, 2: 1})
    assert split.data.shape == (4, 6, 20, 3)
    assert split.group.tolist() == [0, 0, 0, 1] and split.labels.tolist() == [0, 0, 0, 1]
    assert np.all(split.data[:, :, 0, :] == 0)  # centred on joint 0 (HipCenter)
    np.testing.assert_allclose(split.data[0, :, 3, 1], 2.0)  # relative head height survives centring
    padded = split.data[3]
    assert np.all(padded[4:] == padded[3])  # padding repeats the last frame
    assert split.camera.tolist() == [0, 0, 0, 1]
    unknown = windows_from_sequences(recs, 6, 6, KINECT_V1_20, labels={1: 0})
    assert unknown.labels.tolist() == [0, 0, -1]


def test_windows_reject_wrong_joint_count():
    bad = SkeletonSequence(np.zeros((8, 25, 3), np.float32), "kinect-v1-20", 1, "s", source="/data/x.txt")
    with pytest.raises(ValueError, match="x.txt: 25 joints"):
        windows_from_sequences([bad], 6, 3, KINECT_V1_20)


def test_retrieval_items_per_sequence_and_per_window():
    recs = [_seq(1, 12), _seq(2, 12, view="w")]
    split = windows_from_sequences(recs, 6, 6, KINECT_V1_20)
    feats = np.array([[1, 0], [1, 0], [0, 3], [0, 1]], np.float32)
    emb, pids, cams = retrieval_items(feats, split, RetrievalScoring("cosine", "sequence"))
    np.testing.assert_allclose(emb, [[1, 0], [0, 1]], atol=1e-6)  # normalised windows, normalised mean
    assert pids.tolist() == [1, 2] and cams.tolist() == [0, 1]
    emb, _, _ = retrieval_items(feats, split, RetrievalScoring("euclidean", "sequence"))
    np.testing.assert_allclose(emb, [[1, 0], [0, 2]], atol=1e-6)  # the raw mean
    emb, pids, _ = retrieval_items(feats, split, RetrievalScoring("euclidean", "sample"))
    np.testing.assert_array_equal(emb, feats)  # every window alone, raw
    assert pids.tolist() == [1, 1, 2, 2]


def _fold(protocol_name, fold, trial_seed=0, **data):
    registry = get_registry()
    overrides = Overrides(data={k: str(v) for k, v in data.items()})
    resolved = resolve_config("d13" if "gait" in protocol_name else "cloud-hist", protocol_name, overrides, registry)
    protocol = registry.protocol(protocol_name)()
    return protocol.build_fold(fold, trial_seed, HarnessData(registry, None, resolved.data))


@pytest.mark.parametrize("fold, session", [("A", "A"), ("B", "B")])
def test_synth_gait_closed_set_split(fold, session):
    data = _fold("synth-gait", fold, identities=5, train_sequences=2, test_sequences=1)
    train, test = data.train, data.test
    assert set(train.person) == set(test.person) == {1, 2, 3, 4, 5}
    assert not set(train.meta["sequence"]) & set(test.meta["sequence"])  # no sequence in both
    assert all(f"-{session}-" in s for s in test.meta["sequence"])
    assert train.data.shape[1:] == (6, 20, 3) and test.data.shape[1:] == (6, 20, 3)
    assert data.info["test_identities"] == 5 and data.info["train_sequences"] == 10
    again = _fold("synth-gait", fold, identities=5, train_sequences=2, test_sequences=1)
    np.testing.assert_array_equal(again.test.data, test.data)


def test_synth_gait_dev_is_another_population_with_the_same_cut():
    test = _fold("synth-gait", "B", identities=4, train_sequences=1, test_sequences=1)
    dev = _fold("synth-gait-dev", "B", identities=4, train_sequences=1, test_sequences=1)
    assert dev.train.data.shape[1:] == test.train.data.shape[1:]
    assert set(dev.test.person) == set(test.test.person) == {1, 2, 3, 4}
    assert all("-B-" in s for s in dev.test.meta["sequence"])
    assert not np.allclose(dev.train.data[0], test.train.data[0])  # other people, other walks
    same_draw = _fold("synth-gait", "B", identities=4, train_sequences=1, test_sequences=1, seed=1)
    np.testing.assert_array_equal(dev.test.data, same_draw.test.data)


def test_synth_gait_dev_fixes_its_generator_seed():
    from reid_bench.config import ConfigError

    with pytest.raises(ConfigError, match="data.seed.*synth-gait-dev"):
        resolve_config("d13", "synth-gait-dev", Overrides(data={"seed": "0"}), get_registry())


def test_synth_gait_retrieval_query_and_gallery_sessions():
    data = _fold("synth-gait-retrieval", "A-B", identities=4, train_sequences=1, test_sequences=1)
    assert all("-A-" in s for s in data.query.meta["sequence"])
    assert all("-B-" in s for s in data.gallery.meta["sequence"])


def test_synth_market_split_has_disjoint_identities_and_no_junk():
    data = _fold("synth-market", "all", train_identities=6, test_identities=5, num_points=256)
    train_ids = set(data.train.person)
    test_ids = set(data.query.person)
    assert not train_ids & test_ids
    assert -1 not in set(data.gallery.person)
    assert test_ids <= set(data.gallery.person)
    assert data.train.data.shape[1:] == (256, 6)
    assert (data.train.labels >= 0).all() and (data.query.labels == -1).all()


def test_market_to_duke_tests_on_the_other_domain():
    same = _fold("synth-market", "all", train_identities=6, test_identities=5, num_points=256)
    cross = _fold("synth-market-to-duke", "all", train_identities=6, test_identities=5, num_points=256)
    np.testing.assert_array_equal(same.train.data, cross.train.data)
    assert not np.array_equal(same.gallery.data[: len(cross.gallery)].mean(axis=(0, 1)), cross.gallery.data.mean(axis=(0, 1)))
