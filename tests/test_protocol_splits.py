"""The protocols' shared split steps (reid_bench.protocols.splits) and the build_fold template."""

from __future__ import annotations

import numpy as np
import pytest

from reid_bench.api import FoldData, Protocol, SkeletonSequence
from reid_bench.protocols.splits import centred, check_disjoint, split_info, window_splits
from reid_bench.registry import PluginAPIError, check_plugin
from reid_bench.samples import windows_from_sequences
from reid_bench.layouts import KINECT_V1_20


def _seq(person: int, name: str, n: int = 8, view: str = "v") -> SkeletonSequence:
    frames = np.random.default_rng(person).normal(size=(n, 20, 3)).astype(np.float32)
    return SkeletonSequence(frames, "kinect-v1-20", person, name, view=view, condition="c", session="s", source=f"/x/{name}")


def test_with_frames_keeps_every_other_field():
    rec = _seq(3, "a")
    moved = rec.with_frames(rec.frames[2:] + 1.0)
    assert moved.frames.shape == (6, 20, 3) and moved.frames.dtype == np.float32
    assert (moved.layout, moved.person, moved.sequence, moved.view, moved.condition, moved.session, moved.source) == (
        "kinect-v1-20", 3, "a", "v", "c", "s", "/x/a")
    with pytest.raises(ValueError, match="non-finite"):
        rec.with_frames(rec.frames * np.inf)  # the record's own checks still apply


def test_check_disjoint_named_pairs_list_the_shared_sequences():
    a, b, c = _seq(1, "a"), _seq(2, "b"), _seq(3, "c")
    check_disjoint({"train": [a], "query": [b], "gallery": [c, a]}, (("query", "train"), ("query", "gallery")), fold="f")
    with pytest.raises(ValueError, match=r"^fold 'f': sequences in both query and gallery: \['b'\]$"):
        check_disjoint({"train": [a], "query": [b], "gallery": [b]}, (("query", "train"), ("query", "gallery")), fold="f")


def test_check_disjoint_without_pairs_names_the_first_repeat():
    a, b = _seq(1, "a"), _seq(2, "b")
    check_disjoint({"train": [a], "test": [b]})
    with pytest.raises(ValueError, match=r"^sequence 'b' is in both the train and the gallery split$"):
        check_disjoint({"train": [a, b], "query": [], "gallery": [b]})


def test_split_info_sorts_names_and_records_a_seed():
    sides = {"train": [_seq(1, "z"), _seq(2, "a")], "test": [_seq(1, "m")]}
    assert split_info(sides) == {"train": ["a", "z"], "test": ["m"]}
    assert list(split_info(sides, 7)) == ["train", "test", "split_seed"] and split_info(sides, 7)["split_seed"] == 7


def test_centred_subtracts_the_mean_of_the_joints():
    rec = _seq(1, "a")
    (out,) = centred([rec], (11, 12))
    np.testing.assert_allclose(out.frames[:, [11, 12]].mean(axis=1), 0, atol=1e-6)
    assert centred([rec], None)[0] is rec


def test_window_splits_cut_train_at_half_a_window_and_tests_at_a_window():
    train, test = [_seq(1, "a", 12), _seq(2, "b", 12)], [_seq(2, "c", 12, view="w")]
    cut = window_splits({"train": train, "test": test}, 6, train + test, 0)
    want = windows_from_sequences(train, 6, 3, KINECT_V1_20, {1: 0, 2: 1}, {"v": 0, "w": 1}, 0)
    np.testing.assert_array_equal(cut["train"].data, want.data)
    assert len(cut["train"]) == 6 and len(cut["test"]) == 2
    assert cut["test"].labels.tolist() == [1, 1] and cut["test"].camera.tolist() == [1, 1]


class _Cut(Protocol):
    modality = "skeleton"
    mode = "closed-set"
    folds = ("one", "two")
    calls: list[str] = []

    def cut_fold(self, fold, seed, data):
        self.calls.append(fold)
        return FoldData(train=None, info={"fold": fold})  # type: ignore[arg-type]


class _Whole(Protocol):
    """A plugin written before the template: build_fold overridden whole, no fold check."""

    modality = "skeleton"
    mode = "closed-set"

    def build_fold(self, fold, seed, data):
        return FoldData(train=None, info={"fold": fold})  # type: ignore[arg-type]


def test_template_refuses_an_unknown_fold_before_cutting():
    proto = _Cut()
    assert proto.build_fold("two", 0, None).info == {"fold": "two"}
    with pytest.raises(ValueError, match=r"^protocol has no fold 'three'; folds: one, two$"):
        proto.build_fold("three", 0, None)
    assert _Cut.calls == ["two"]


def test_a_protocol_overriding_build_fold_whole_still_works():
    check_plugin("protocols", "whole", _Whole)
    assert _Whole().build_fold("anything", 0, None).info == {"fold": "anything"}


def test_a_protocol_cutting_no_folds_is_refused():
    class Nothing(Protocol):
        modality = "skeleton"
        mode = "closed-set"

    with pytest.raises(PluginAPIError, match="protocol 'nothing' does not implement build_fold"):
        check_plugin("protocols", "nothing", Nothing)
    with pytest.raises(NotImplementedError, match="Nothing implements neither cut_fold nor build_fold"):
        Nothing().build_fold("all", 0, None)
