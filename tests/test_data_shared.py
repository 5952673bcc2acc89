"""Kinder-Gator, PsyMo and the generic format: loaders, protocols and import, on fixtures written in
the original formats (tests/formats_shared.py), plus optional checks on ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from formats_shared import (
    KINDER_GATOR_ACTIONS,
    STICK_LAYOUT,
    coco_keypoints,
    kinder_gator_header,
    kinect_frames,
    make_kinder_gator,
    make_psymo,
    psymo_stem,
    skeleton_samples,
    write_generic_source,
    write_kinder_gator_trial,
    write_psymo_walk,
)
from reid_bench.api import DataAccess
from reid_bench.datasets import DataFormatError, DatasetNotFoundError
from reid_bench.datasets.generic import (
    GenericCloudDataset,
    GenericDataset,
    GenericOptions,
    import_dataset,
)
from reid_bench.datasets.kinder_gator import CHILD_ID_OFFSET, KinderGator
from reid_bench.datasets.psymo import DROP_EXTRA, DROP_GAPS, DROP_LOW, PsyMo, PsyMoOptions, parse_walk_name
from reid_bench.protocols.generic import GenericCloudRetrieval, GenericClosedSet, GenericRetrieval
from reid_bench.protocols.shared_data import (
    KINDER_GATOR_OTHER,
    KINDER_GATOR_WALK_RUN,
    KinderGatorCrossAction,
    PsyMoCrossView,
)
from reid_bench.registry import get_registry, reset_registry
from reid_bench.trial import training_fingerprint

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Records(DataAccess):
    """Records by dataset name; ``datasets`` gives dataset instances (the generic protocols read
    the manifest's splits through them, as they do through HarnessData)."""

    def __init__(self, records=None, datasets=None):
        self.records = records or {}
        self.datasets = datasets or {}

    def load(self, dataset, **options):
        if dataset not in self.records:
            self.records[dataset] = self.datasets[dataset].load()
        return self.records[dataset]

    def dataset(self, dataset, **options):
        return self.datasets[dataset]


def _fold_sequences(fold, side):
    split = getattr(fold, side)
    return {str(s) for s in np.unique(split.meta["sequence"])}


# ------------------------------------------------------------------------------ Kinder-Gator


def _kg_file(tmp_path, text, name="POSE-p565_05-Bow-1469182474370.csv"):
    path = tmp_path / "kg" / "Adults" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return tmp_path / "kg", path


def test_kinder_gator_loads_fixture_by_joint_name(tmp_path):
    order = list(reversed([j for j in kinder_gator_header().split(",")[1:61:3]]))  # joints written in reverse
    order = [j[:-1] for j in order]
    exp = make_kinder_gator(tmp_path / "kg", adults=(565, 577), children=(103,), joint_order=order)
    ds = KinderGator(root=tmp_path / "kg")
    recs = ds.load()
    assert len(recs) == 3 * 12 == len(exp["files"])
    assert {r.person for r in recs} == {565, 577, 103}
    assert {r.condition for r in recs} == set(KINDER_GATOR_ACTIONS)
    for r in recs:
        np.testing.assert_allclose(r.frames, exp["frames"][r.sequence], rtol=1e-6, atol=1e-6)
        assert (r.person, r.session, r.condition) == (exp["person"][r.sequence], exp["session"][r.sequence],
                                                      exp["condition"][r.sequence])
        assert r.layout == "kinect-v1-20" and r.view == "" and r.source.endswith(r.sequence + ".csv")
    assert ds.drop_report() == {} and ds.verify() == []


def test_kinder_gator_release_folder_and_id_clash(tmp_path):
    make_kinder_gator(tmp_path / "kg", adults=(300,), children=(300, 42), actions=("Bow", "Jump"), nested=True)
    recs = KinderGator(root=tmp_path / "kg").load()
    assert sorted({(r.session, r.person) for r in recs}) == [("adult", 300), ("child", 42),
                                                             ("child", CHILD_ID_OFFSET + 300)]


@pytest.mark.parametrize(
    "mutate, message, line",
    [
        (lambda lines: lines[:3] + [",".join(lines[3].split(",")[:30])], "fields, the header has 64", 4),
        (lambda lines: lines[:2] + [lines[2].replace(lines[2].split(",")[5], "abc", 1)] + lines[3:],
         "'abc' is not a number", 3),
        (lambda lines: lines[:2] + [lines[2].replace(lines[2].split(",")[7], "NaN", 1)] + lines[3:], "non-finite", 3),
        (lambda lines: [lines[0].replace("KneeLeftX", "KneeLftX")] + lines[1:], "unknown joint name 'KneeLft'", 1),
        (lambda lines: lines[:1], "no frames", 2),
        (lambda lines: lines[:2] + [lines[2].replace(",565,", ",577,")] + lines[3:], "User-ID 577 differs", 3),
        (lambda lines: lines[:2] + [""] + lines[2:], "blank line inside the data", 3),
    ],
)
def test_kinder_gator_bad_rows_name_file_and_line(tmp_path, mutate, message, line):
    root, good = _kg_file(tmp_path, "")
    write_kinder_gator_trial(good, kinect_frames(565, 5), 565, "Bow")
    lines = good.read_text().splitlines()
    good.write_text("\n".join(mutate(lines)) + "\n")
    with pytest.raises(DataFormatError) as err:
        KinderGator(root=root).load()
    assert f"{good}:{line}:" in str(err.value) and message in str(err.value)


def test_kinder_gator_bad_name_and_missing_data(tmp_path):
    root, path = _kg_file(tmp_path, "", name="POSE-565-Bow.csv")
    write_kinder_gator_trial(path, kinect_frames(565, 5), 565, "Bow")
    with pytest.raises(DataFormatError, match="POSE-565-Bow.csv: file name"):
        KinderGator(root=root).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="jainlab"):
        KinderGator(root=tmp_path / "empty").load()


def test_kinder_gator_verify_reports_missing_trials(tmp_path):
    make_kinder_gator(tmp_path / "kg", adults=(565, 577), children=(),
                      actions=("Bow", "Jump-as-high-as-you-can", "Swim"))
    for p in (tmp_path / "kg" / "Adults").glob("POSE-p5*-Swim-*.csv"):
        if "p577" in p.name:
            p.unlink()
    for p in (tmp_path / "kg" / "Adults").glob("POSE-p565_*-Jump-as-high*.csv"):
        p.unlink()  # the README documents this one as lost
    assert KinderGator(root=tmp_path / "kg").verify() == ["Adults PID 577: no trial of Swim"]


def test_kinder_gator_cross_action_folds_do_not_leak(tmp_path):
    make_kinder_gator(tmp_path / "kg", adults=(565, 577, 604), children=(103, 106), frames=10)
    data = Records({"kinder-gator": KinderGator(root=tmp_path / "kg").load()})
    proto = KinderGatorCrossAction()
    for fold in proto.folds:
        out = proto.build_fold(fold, 0, data)
        gallery_actions, probe_actions = proto.fold_actions[fold]
        train, query, gallery = (_fold_sequences(out, s) for s in ("train", "query", "gallery"))
        assert train == gallery and not (query & train)
        assert all(any(f"-{a}-" in s for a in gallery_actions) for s in gallery)
        assert all(any(f"-{a}-" in s for a in probe_actions) for s in query)
        assert len(query) == 5 * len(probe_actions) and set(np.unique(out.query.person)) == {565, 577, 604, 103, 106}
        assert out.train.data.shape[1:] == (6, 20, 3) and np.allclose(out.train.data[:, :, 0], 0)  # HipCenter centred
        assert sorted(out.info["split"]["query"]) == sorted(query)
        again = proto.build_fold(fold, 1, data)
        assert np.array_equal(again.query.data, out.query.data)  # no seed dependence
    assert set(KINDER_GATOR_WALK_RUN) | set(KINDER_GATOR_OTHER) == set(KINDER_GATOR_ACTIONS)
    with pytest.raises(ValueError, match="no fold"):
        proto.build_fold("walk", 0, data)


@pytest.mark.filterwarnings("ignore:max_rank")
def test_kinder_gator_runs_with_d13(tmp_path):
    from reid_bench.api import DataSpec, TrialContext
    from reid_bench.trial import evaluate
    from reid_bench_handcrafted.d13 import D13, D13Config

    make_kinder_gator(tmp_path / "kg", adults=(565, 577, 604), children=(103,), frames=12)
    data = Records({"kinder-gator": KinderGator(root=tmp_path / "kg").load()})
    proto = KinderGatorCrossAction()
    fold = proto.build_fold("gallery-walkrun", 0, data)
    model = D13(D13Config(), DataSpec("skeleton", fold.train.num_classes, fold.train.layout, proto.window))
    model.fit(fold.train, TrialContext("cpu", 0, tmp_path))
    result = evaluate(proto, fold, model, "d13", None, 0, "cpu")
    assert 0.0 <= result["metrics"]["mAP"] <= 1.0 and result["num_valid_queries"] == 4 * 8
    assert result["metrics"]["rank1"] > 0.5  # proportions differ per person in the fixture


# ------------------------------------------------------------------------------------- PsyMo


def test_psymo_loads_fixture(tmp_path):
    exp = make_psymo(tmp_path / "psymo", ids=(0, 7), frames=10)
    ds = PsyMo(root=tmp_path / "psymo")
    recs = ds.load()
    assert len(recs) == 2 * 48 and {r.person for r in recs} == {0, 7}
    assert sorted({r.view for r in recs}) == ["0", "45", "90"]
    assert {r.condition for r in recs} == {"nm", "bg", "cl", "ph", "txt", "wsf", "wss"}
    by_seq = {r.sequence: r for r in recs}
    r = by_seq["007_45_1_1_nm"]
    assert (r.person, r.view, r.condition, r.session) == (7, "45", "nm", "dir1-run1")
    np.testing.assert_allclose(r.frames[:, :, :2], exp["keypoints"]["007_45_1_1_nm"][:, :, :2], rtol=1e-6)
    assert np.all(r.frames[:, :, 2] == 0) and r.layout == "coco-17"
    assert ds.drop_report() == {} and ds.verify() == []


def test_psymo_extra_detections_gaps_and_confidence(tmp_path):
    root = tmp_path / "psymo"
    kp = coco_keypoints(3, 6)
    other = coco_keypoints(9, 1)[0]
    other[:, 0] += 500
    path = root / "semantic_data" / "skeletons" / "3" / f"{psymo_stem(3, 90, 0, 0, 'bg')}.json"
    kp[2, :, 2] = 0.01  # one unsure frame
    write_psymo_walk(path, kp, frame_numbers=[5, 6, 7, 10, 11, 12],
                     extra=[(6, other, 0.9), (6, other, 0.5), (10, other, 3.5)])
    ds = PsyMo(root=root)
    (rec,) = ds.load()
    assert ds.drop_report() == {DROP_EXTRA: 3, DROP_GAPS: 2}
    assert len(rec.frames) == 6
    np.testing.assert_allclose(rec.frames[1, :, :2], kp[1, :, :2], rtol=1e-6)  # the walker outscored 0.9 and 0.5
    np.testing.assert_allclose(rec.frames[3, :, :2], other[:, :2], rtol=1e-6)  # 3.5 beats the walker's 2.9
    strict = PsyMo(root=root, options=PsyMoOptions(min_frame_confidence=0.2))
    (rec,) = strict.load()
    assert len(rec.frames) == 5 and strict.drop_report()[DROP_LOW] == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ('[{"image_id": "5.jpg", "keypoints": [1.0, 2.0', "invalid JSON"),
        ("[]", "no detections"),
        ('{"image_id": "5.jpg"}', "expected a JSON list"),
        ('[{"image_id": "5.jpg", "keypoints": [1, 2, 3], "score": 1}]', "keypoints has 3 values"),
        ('[{"image_id": "x.jpg", "keypoints": [], "score": 1}]', "is not <frame number>.jpg"),
        ('[{"image_id": "5.jpg", "keypoints": %s, "score": 1}]' % json.dumps(["a"] + [1.0] * 50),
         "'a' is not a finite"),
        ('[{"image_id": "5.jpg", "keypoints": %s}]' % json.dumps([1.0] * 51), "has no 'score'"),
    ],
)
def test_psymo_bad_json_names_the_file(tmp_path, content, message):
    path = tmp_path / "p" / "semantic_data" / "skeletons" / "0" / "000_00_0_0_nm.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DataFormatError) as err:
        PsyMo(root=tmp_path / "p").load()
    assert str(path) in str(err.value) and message in str(err.value)
    if message == "invalid JSON":
        assert f"{path}:1:" in str(err.value)


def test_psymo_naming_errors_and_verify(tmp_path):
    root = tmp_path / "p"
    make_psymo(root, ids=(0,), frames=4)
    (root / "semantic_data" / "skeletons" / "0" / "000_00_0_0_bg.json").unlink()
    assert PsyMo(root=root).verify() == [f"{root / 'walks-v2.csv'}: lists 000_00_0_0_bg but semantic_data/skeletons "
                                         "has no such file"]
    bad = root / "semantic_data" / "skeletons" / "0" / "000_00_0_0_run.json"
    write_psymo_walk(bad, coco_keypoints(0, 3))
    with pytest.raises(DataFormatError, match="unknown variation 'run'"):
        PsyMo(root=root).load()
    bad.unlink()
    wrong = root / "semantic_data" / "skeletons" / "0" / "001_00_0_0_bg.json"
    write_psymo_walk(wrong, coco_keypoints(0, 3))
    with pytest.raises(DataFormatError, match="walk of ID 1 in folder '0'"):
        PsyMo(root=root).load()
    wrong.unlink()
    (root / "semantic_data" / "skeletons" / "4").mkdir()
    with pytest.raises(DataFormatError, match="person folder without any skeleton"):
        PsyMo(root=root).load()
    with pytest.raises(ValueError):
        parse_walk_name("000_00_2_0_nm")


def test_psymo_cross_view_folds(tmp_path):
    make_psymo(tmp_path / "p", ids=(0, 1, 2), frames=12)
    data = Records({"psymo": PsyMo(root=tmp_path / "p").load()})
    proto = PsyMoCrossView()
    assert len(proto.folds) == 21 and proto.folds[:3] == ("nm-0", "nm-45", "nm-90")
    assert len({proto.training_set(fold) for fold in proto.folds}) == 1  # one fit serves every fold
    trained_on = set()
    for fold in proto.folds:
        variation, view = fold.rsplit("-", 1)
        out = proto.build_fold(fold, 0, data)
        trained_on.add(training_fingerprint(out.train))
        train, query, gallery = (_fold_sequences(out, s) for s in ("train", "query", "gallery"))
        assert len(train) == 3 * 6 and all(s.endswith("_0_nm") for s in train)  # nm run 0, all views
        assert gallery == {s for s in train if parse_walk_name(s).view == view} and len(gallery) == 3 * 2
        assert not (query & train) and len(query) == 3 * 2 * 2
        assert all(parse_walk_name(s).variation == variation and parse_walk_name(s).view != view for s in query)
        assert all(parse_walk_name(s).run == (1 if variation == "nm" else 0) for s in query)
        assert not set(np.unique(out.query.camera)) & set(np.unique(out.gallery.camera))  # cross-view only
        hips = out.query.data[:, :, [11, 12], :].mean(axis=2)
        assert np.allclose(hips, 0, atol=1e-5)  # centred on the hip midpoint
        torso = np.linalg.norm(out.query.data[:, :, [5, 6], :].mean(axis=2), axis=-1)
        assert np.allclose(torso, 1, atol=1e-4)  # scaled by the torso length
        assert out.query.data.shape[1:] == (20, 17, 3)
    assert len(trained_on) == 1  # what the trial checks before it scores one fit on several folds


# ----------------------------------------------------------------------------------- generic


def _generic(data_root, name):
    return GenericDataset(root=data_root / "generic", options=GenericOptions(name=name))


def test_generic_round_trip_npy_and_csv(tmp_path):
    samples = skeleton_samples([1, 2, 3], {"train": 2, "test": 1})
    for i, s in enumerate(samples):
        s["format"] = "csv" if i % 2 else "npy"
        if i == 1:
            s["csv_header"] = ",".join(f"c{k}" for k in range(60))
    src = write_generic_source(tmp_path / "src", samples, columns=["path", "person", "sequence", "view", "condition",
                                                                     "session", "split", "x_note"])
    summary = import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    assert summary["samples"] == 9 and summary["persons"] == 3 and summary["splits"] == {"train": 6, "test": 3}
    ds = _generic(tmp_path / "data", "mine")
    recs = ds.load()
    by_seq = {r.sequence: r for r in recs}
    for s in samples:
        r = by_seq[s["sequence"]]
        np.testing.assert_allclose(r.frames, s["array"], rtol=1e-6, atol=1e-6)
        assert (r.person, r.view, r.condition, r.session) == (s["person"], s["view"], "walk", s["session"])
    assert ds.splits()[samples[0]["sequence"]] == "train"
    assert not any(p.name.startswith(".") for p in (tmp_path / "data").iterdir())  # no staging left
    assert (tmp_path / "data" / "mine" / "dataset.toml").read_text().count('layout = "kinect-v1-20"') == 1


def test_generic_protocols_take_splits_from_manifest(tmp_path):
    samples = skeleton_samples([1, 2, 3, 4], {"train": 2, "test": 1, "query": 1, "gallery": 1},
                               view_of={"query": "a", "gallery": "b"})
    write_generic_source(tmp_path / "data" / "mine", samples,
                         settings={"modality": "skeleton", "layout": "kinect-v1-20",
                                   "protocol": {"window": 4, "center_joint": "HipCenter", "filter_same_view": True}},
                         columns=["path", "person", "sequence", "view", "condition", "session", "split"])
    data = Records(datasets={"generic": _generic(tmp_path / "data", "mine")})
    closed = GenericClosedSet().build_fold("all", 0, data)
    assert _fold_sequences(closed, "train") == {s["sequence"] for s in samples if s["split"] == "train"}
    assert _fold_sequences(closed, "test") == {s["sequence"] for s in samples if s["split"] == "test"}
    assert closed.train.data.shape[1] == 4 and closed.info["ignored_rows"] == {"gallery": 4, "query": 4}
    proto = GenericRetrieval()
    ret = proto.build_fold("all", 0, data)
    assert proto.filter_same_camera is True and proto.window == 4
    assert _fold_sequences(ret, "query") == {s["sequence"] for s in samples if s["split"] == "query"}
    assert set(ret.info["split"]) == {"train", "query", "gallery"}


def test_generic_closed_set_refuses_unseen_test_identity(tmp_path):
    samples = skeleton_samples([1, 2], {"train": 1}) + skeleton_samples([3], {"test": 1})
    write_generic_source(tmp_path / "data" / "x", samples, settings={"modality": "skeleton", "layout": "kinect-v1-20"},
                         columns=["path", "person", "sequence", "split"])
    data = Records(datasets={"generic": _generic(tmp_path / "data", "x")})
    with pytest.raises(ValueError, match=r"test identities missing from training: \[3\]"):
        GenericClosedSet().build_fold("all", 0, data)
    with pytest.raises(ValueError, match="no rows with split=query"):
        GenericRetrieval().build_fold("all", 0, data)


def test_generic_user_layout_2d_and_cache_hit_registration(tmp_path):
    rng = np.random.default_rng(0)
    samples = [{"array": rng.normal(size=(8, 5, 2)), "person": p, "split": "train" if k else "test",
                "sequence": f"s{p}{k}"} for p in (1, 2) for k in range(2)]
    src = write_generic_source(tmp_path / "src", samples, settings={"modality": "skeleton", "layout": "layout.toml"},
                               layout_file=STICK_LAYOUT, columns=["path", "person", "sequence", "split"])
    reset_registry()
    try:
        import_dataset(src, tmp_path / "data", "sticks")
        reset_registry()  # as in a fresh process whose records come from the cache: read() never runs
        _generic(tmp_path / "data", "sticks").checksum()
        assert get_registry().layout("stick-5").num_joints == 5
        recs = _generic(tmp_path / "data", "sticks").load()
        assert all(np.all(r.frames[:, :, 2] == 0) for r in recs) and recs[0].layout == "stick-5"
        data = Records(datasets={"generic": _generic(tmp_path / "data", "sticks")})
        fold = GenericClosedSet().build_fold("all", 0, data)
        assert np.allclose(fold.train.data[:, :, 0, :], 0)  # centred on joint 0 (user layouts' default)
    finally:
        reset_registry()


def test_generic_point_clouds(tmp_path):
    rng = np.random.default_rng(1)
    samples = []
    for p, split, cam in [(1, "train", 0), (2, "train", 1), (3, "query", 0), (3, "gallery", 1), (4, "query", 1),
                          (4, "gallery", 0), (-1, "gallery", 0)]:
        pts = np.concatenate([rng.normal(size=(20, 3)), rng.uniform(size=(20, 3))], axis=1)
        samples.append({"array": pts, "person": p, "view": cam, "split": split, "domain": "d"})
    samples[1]["array"] = samples[1]["array"][:, :3]  # xyz only: grey
    samples[1]["format"] = "csv"
    src = write_generic_source(tmp_path / "src", samples, columns=["path", "person", "camera", "split", "domain"])
    summary = import_dataset(src, tmp_path / "data", "clouds", modality="pointcloud")
    assert summary["modality"] == "pointcloud" and summary["points"] == 7 * 20
    ds = GenericCloudDataset(root=tmp_path / "data" / "generic-clouds", options=GenericOptions(name="clouds"))
    recs = ds.load()
    assert sorted(r.subset for r in recs).count("gallery") == 3 and np.allclose(recs[1].points[:, 3:], 0.5)
    fold = GenericCloudRetrieval().build_fold("all", 0, Records({"generic-clouds": recs}))
    assert len(fold.gallery) == 2 and len(fold.query) == 2  # junk -1 left out
    with pytest.raises(DataFormatError, match="holds pointcloud data"):
        _generic(tmp_path / "data", "clouds").load()


def _import_error(tmp_path, samples, columns=None, **kwargs):
    src = write_generic_source(tmp_path / "src", samples, columns=columns)
    with pytest.raises((DataFormatError, ValueError, FileExistsError)) as err:
        import_dataset(src, tmp_path / "data", kwargs.pop("name", "mine"), layout="kinect-v1-20", **kwargs)
    leftovers = list((tmp_path / "data").iterdir()) if (tmp_path / "data").exists() else []
    return str(err.value), src, leftovers


def _with_nan(sample: dict) -> dict:
    array = np.array(sample["array"])
    array[2, 3, 1] = np.nan
    return dict(sample, array=array)


# Each case turns the two good samples (persons 1 and 2, one train sequence each) into bad ones.
IMPORT_ERRORS = [
    pytest.param(lambda good: [dict(good[0]), dict(good[1], person="bob")], None,
                 "manifest.csv:3: person 'bob' is not an integer", id="person-not-an-integer"),
    pytest.param(lambda good: [dict(good[0], split="dev"), good[1]], None, "manifest.csv:2: split 'dev'",
                 id="unknown-split"),
    pytest.param(lambda good: good, ["path", "person", "persn"], "manifest.csv:1: unknown column 'persn'",
                 id="unknown-column"),
    pytest.param(lambda good: [dict(good[0], path="arrays/a.npy"), dict(good[1], path="arrays/a.npy")], None,
                 "manifest.csv:3: path 'arrays/a.npy' is listed twice (also line 2)", id="path-listed-twice"),
    pytest.param(lambda good: [dict(good[0], path="../x.npy")], None, "leaves the dataset folder",
                 id="path-leaves-the-folder"),
    pytest.param(lambda good: [dict(good[0], array=np.zeros((4, 19, 3)))], None,
                 "shape (4, 19, 3): expected [T, 20, 3]", id="wrong-joint-count"),
    pytest.param(lambda good: [_with_nan(good[0])], None, "non-finite value at index [2, 3, 1]", id="nan"),
]


@pytest.mark.parametrize("make_samples, columns, message", IMPORT_ERRORS)
def test_import_errors_name_file_and_line(tmp_path, make_samples, columns, message):
    samples = make_samples(skeleton_samples([1, 2], {"train": 1}))
    text, _, leftovers = _import_error(tmp_path, samples, columns)
    assert message in text, (message, text)
    assert leftovers == []  # nothing half-written


def test_import_csv_array_errors_and_pickles(tmp_path):
    good = skeleton_samples([1], {"train": 1})
    src = write_generic_source(tmp_path / "src", [dict(good[0], format="csv")])
    array = src / "arrays" / "s000.csv"
    lines = array.read_text().splitlines()
    array.write_text("\n".join(lines[:3] + [lines[3].replace(lines[3].split(",")[4], "x", 1)] + lines[4:]) + "\n")
    with pytest.raises(DataFormatError, match=f"{array}:4: 'x' is not a number"):
        import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    array.write_text("\n".join(lines[:2] + [",".join(lines[2].split(",")[:-3])] + lines[3:]) + "\n")
    with pytest.raises(DataFormatError, match=f"{array}:3: 57 values, the first row has 60"):
        import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    array.unlink()
    np.save(src / "arrays" / "s000.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (src / "manifest.csv").write_text((src / "manifest.csv").read_text().replace(".csv,", ".npy,"))
    with pytest.raises(DataFormatError, match="object arrays/pickles are refused"):
        import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    assert not (tmp_path / "data").exists() or list((tmp_path / "data").iterdir()) == []


def test_import_refuses_existing_names_and_replaces_atomically(tmp_path):
    samples = skeleton_samples([1, 2], {"train": 1})
    src = write_generic_source(tmp_path / "src", samples)
    import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    with pytest.raises(FileExistsError):
        import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20")
    with pytest.raises(ValueError, match="plain folder name"):
        import_dataset(src, tmp_path / "data", "../up", layout="kinect-v1-20")
    with pytest.raises(ValueError, match="installed dataset plugin"):
        import_dataset(src, tmp_path / "data", "synth-skeletons", layout="kinect-v1-20")
    with pytest.raises(DataFormatError, match="unknown layout 'kinect-v9'"):
        import_dataset(src, tmp_path / "data", "other", layout="kinect-v9")
    # A failing replacement keeps the old folder intact.
    (src / "arrays" / "s001.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataFormatError, match="s001.npy"):
        import_dataset(src, tmp_path / "data", "mine", layout="kinect-v1-20", overwrite=True)
    assert len(_generic(tmp_path / "data", "mine").load()) == 2
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mine"]


def test_generic_dataset_needs_a_name_and_settings(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="--set data.name"):
        GenericDataset(root=tmp_path / "generic").load()
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        _generic(tmp_path, "absent").load()
    write_generic_source(tmp_path / "bare", skeleton_samples([1], {"train": 1}))
    with pytest.raises(DataFormatError, match="dataset.toml: missing"):
        _generic(tmp_path, "bare").load()
    (tmp_path / "bare" / "dataset.toml").write_text('modality = "skeleton"\nlayout = "kinect-v1-20"\nwindow = 3\n')
    with pytest.raises(DataFormatError, match="unknown key 'window'"):
        _generic(tmp_path, "bare").load()


# ---------------------------------------------------------------------- the real shared data


shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real datasets not present at {SHARED_DATA}")


@pytest.fixture(scope="module")
def kinder_gator_records():
    if not (SHARED_DATA / "kinder-gator").is_dir():
        pytest.skip(f"Kinder-Gator not present at {SHARED_DATA / 'kinder-gator'}")
    return KinderGator(root=SHARED_DATA / "kinder-gator").load()


@pytest.fixture(scope="module")
def psymo_records():
    if not (SHARED_DATA / "psymo-subset").is_dir():
        pytest.skip(f"PsyMo subset not present at {SHARED_DATA / 'psymo-subset'}")
    return PsyMo(root=SHARED_DATA / "psymo-subset").load()


@shared
@pytest.mark.shared_data
def test_real_kinder_gator(kinder_gator_records):
    recs = kinder_gator_records
    assert len(recs) == 240 and len({r.person for r in recs}) == 20
    assert {r.session for r in recs} == {"adult", "child"}
    assert {r.condition for r in recs} == set(KINDER_GATOR_WALK_RUN) | set(KINDER_GATOR_OTHER)
    assert KinderGator(root=SHARED_DATA / "kinder-gator").verify() == []
    proto = KinderGatorCrossAction()
    data = Records({"kinder-gator": recs})
    for fold in proto.folds:
        out = proto.build_fold(fold, 0, data)
        assert out.info["gallery_sequences"] + out.info["query_sequences"] == 240
        assert out.info["query_identities"] == out.info["gallery_identities"] == 20


@shared
@pytest.mark.shared_data
def test_real_psymo(psymo_records):
    recs = psymo_records
    assert len(recs) == 480 and len({r.person for r in recs}) == 10
    assert all(n == 48 for n in np.unique([r.person for r in recs], return_counts=True)[1])
    assert PsyMo(root=SHARED_DATA / "psymo-subset").verify() == []
    proto = PsyMoCrossView()
    data = Records({"psymo": recs})
    for fold in proto.folds:
        out = proto.build_fold(fold, 0, data)
        assert out.info["gallery_sequences"] == 20 and out.info["query_sequences"] == 40
        assert out.info["train_sequences"] == 60 and out.info["query_identities"] == 10


@pytest.mark.parametrize("cls", [KinderGator, PsyMo, GenericDataset, GenericCloudDataset], ids=lambda cls: cls.__name__)
def test_dataset_plugins_satisfy_the_plugin_api(cls):
    from reid_bench.registry import check_plugin

    check_plugin("datasets", cls.__name__, cls)


@pytest.mark.parametrize("cls", [KinderGatorCrossAction, PsyMoCrossView, GenericClosedSet, GenericRetrieval,
                                 GenericCloudRetrieval], ids=lambda cls: cls.__name__)
def test_protocol_plugins_satisfy_the_plugin_api(cls):
    from reid_bench.registry import check_plugin

    check_plugin("protocols", cls.__name__, cls)
    assert cls.folds and cls.description and cls.version
