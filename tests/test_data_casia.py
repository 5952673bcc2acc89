"""CASIA-B loaders (3D 14-joint, GaitGraph COCO CSV), SM-SGE's .npy layout and the CASIA-B protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from formats_casia import (
    COCO_HEADER,
    all_sessions,
    coco_rows,
    coco_sequence,
    make_casia_3d_dataset,
    make_gaitgraph_csvs,
    make_smsge_dataset,
    random_windows,
    walking_casia_14,
    write_casia_3d_npy,
    write_casia_3d_txt,
    write_gaitgraph_csv,
)
from reid_bench.api import DataAccess
from reid_bench.datasets import DataFormatError, DatasetNotFoundError
from reid_bench.datasets.casia_b import CasiaB3D, CasiaBCoco
from reid_bench.datasets.smsge_npy import SmsgeNpy, SmsgeNpyOptions
from reid_bench.protocols.casia import (
    SMSGE_CASIA_B_RANK1,
    CasiaBCocoConditionMatching,
    CasiaBConditionMatching,
    CasiaBCrossView,
    CasiaBCrossViewNpy,
    adjacent_views,
)


def by_name(records):
    return {r.sequence: r for r in records}


# --------------------------------------------------------------------------------------------
# casia-b-3d
# --------------------------------------------------------------------------------------------


def test_3d_txt_and_npy_read_with_ids_and_joint_order(tmp_path: Path):
    a = walking_casia_14(1, 25)
    b = walking_casia_14(124, 7)
    write_casia_3d_txt(tmp_path / "001" / "001-nm-01-090.txt", a)
    write_casia_3d_txt(tmp_path / "124-cl-02-180.txt", b, sep=" ")
    write_casia_3d_npy(tmp_path / "002-bg-02-000.npy", a[:9])
    write_casia_3d_npy(tmp_path / "003-nm-06-018.npy", b, flat=True)
    (tmp_path / "README.txt").write_text("notes about the release\n")
    ds = CasiaB3D(root=tmp_path)
    recs = by_name(ds.load())
    assert sorted(recs) == ["001-nm-01-090", "002-bg-02-000", "003-nm-06-018", "124-cl-02-180"]
    r = recs["001-nm-01-090"]
    assert (r.person, r.view, r.condition, r.session, r.layout) == (1, "090", "nm", "nm-01", "casia-14")
    assert r.frames.shape == (25, 14, 3) and r.frames.dtype == np.float32
    np.testing.assert_allclose(r.frames, a, atol=1e-5)  # joint k of the file is joint k of casia-14
    assert r.source.endswith("001-nm-01-090.txt")
    assert recs["124-cl-02-180"].person == 124 and recs["124-cl-02-180"].session == "cl-02"
    np.testing.assert_allclose(recs["003-nm-06-018"].frames, b, atol=1e-5)
    assert recs["002-bg-02-000"].frames.shape == (9, 14, 3)
    assert ds.drop_report() == {}
    assert all(p.name != "README.txt" for p in ds.source_files())


@pytest.mark.parametrize(
    "line_values, message",
    [
        ("1," * 40 + "1", "41 values, expected 42"),
        (",".join(["1"] * 41 + ["abc"]), "non-numeric value 'abc'"),
        (",".join(["1"] * 41 + ["nan"]), "NaN or infinite"),
        (",".join(["inf"] + ["1"] * 41), "NaN or infinite"),
        ("", "an empty line"),
    ],
)
def test_3d_txt_bad_line_names_file_and_line(tmp_path: Path, line_values: str, message: str):
    path = write_casia_3d_txt(tmp_path / "005-nm-02-036.txt", walking_casia_14(5, 4))
    lines = path.read_text().splitlines()
    lines.insert(2, line_values)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        CasiaB3D(root=tmp_path).load()
    assert f"005-nm-02-036.txt:3: {message}" in str(err.value)


def test_3d_truncated_last_line_and_empty_sequence(tmp_path: Path):
    path = write_casia_3d_txt(tmp_path / "007-bg-01-054.txt", walking_casia_14(7, 5))
    path.write_text(path.read_text()[:-40])  # cut inside the last frame
    with pytest.raises(DataFormatError, match=r"007-bg-01-054.txt:5: \d+ values, expected 42"):
        CasiaB3D(root=tmp_path).load()
    path.unlink()
    (tmp_path / "008-bg-01-054.txt").write_text("")
    with pytest.raises(DataFormatError, match=r"008-bg-01-054.txt: empty sequence"):
        CasiaB3D(root=tmp_path).load()


@pytest.mark.parametrize(
    "name, message",
    [
        ("001-xx-01-090", "unknown walking condition 'xx'"),
        ("001-nm-07-090", "nm-01..06 only"),
        ("001-bg-03-090", "bg-01..02 only"),
        ("001-nm-01-095", "unknown view '095'"),
        ("125-nm-01-090", "outside CASIA-B's 001-124"),
        ("001_nm_01_090", "not a CASIA-B sequence name"),
    ],
)
def test_3d_bad_sequence_names(tmp_path: Path, name: str, message: str):
    write_casia_3d_txt(tmp_path / f"{name}.txt", walking_casia_14(1, 3))
    with pytest.raises(DataFormatError, match=message) as err:
        CasiaB3D(root=tmp_path).load()
    assert f"{name}.txt" in str(err.value)


def test_3d_npy_bad_arrays(tmp_path: Path):
    np.save(tmp_path / "001-nm-01-090.npy", np.zeros((5, 17, 3)))
    with pytest.raises(DataFormatError, match=r"001-nm-01-090.npy: array of shape \(5, 17, 3\), expected \[T, 14, 3\]"):
        CasiaB3D(root=tmp_path).load()
    frames = walking_casia_14(1, 5)
    frames[3, 2, 1] = np.inf
    np.save(tmp_path / "001-nm-01-090.npy", frames)
    with pytest.raises(DataFormatError, match="NaN or infinite coordinate in frame 3"):
        CasiaB3D(root=tmp_path).load()
    np.save(tmp_path / "001-nm-01-090.npy", np.zeros((0, 14, 3)))
    with pytest.raises(DataFormatError, match="empty sequence"):
        CasiaB3D(root=tmp_path).load()
    np.save(tmp_path / "001-nm-01-090.npy", np.array([{"frames": 1}], dtype=object))  # a pickle
    with pytest.raises(DataFormatError, match="not a readable numeric .npy"):
        CasiaB3D(root=tmp_path).load()
    (tmp_path / "001-nm-01-090.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(DataFormatError, match="001-nm-01-090.npy: not a readable numeric .npy"):
        CasiaB3D(root=tmp_path).load()


def test_3d_duplicates_strays_and_missing_data(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        CasiaB3D(root=tmp_path / "absent").load()
    (tmp_path / "README.md").write_text("only docs")
    with pytest.raises(DatasetNotFoundError, match="no .* files found"):
        CasiaB3D(root=tmp_path).load()
    write_casia_3d_txt(tmp_path / "001-nm-01-090.txt", walking_casia_14(1, 3))
    write_casia_3d_npy(tmp_path / "sub" / "001-nm-01-090.npy", walking_casia_14(1, 3))
    with pytest.raises(DataFormatError, match="sequence 001-nm-01-090 also read from"):
        CasiaB3D(root=tmp_path).load()
    (tmp_path / "sub" / "001-nm-01-090.npy").unlink()
    (tmp_path / "poses.mat").write_bytes(b"MATLAB")
    with pytest.raises(DataFormatError, match=r"poses.mat: unexpected file"):
        CasiaB3D(root=tmp_path).load()


# --------------------------------------------------------------------------------------------
# casia-b-coco (GaitGraph CSV)
# --------------------------------------------------------------------------------------------


def test_coco_csv_groups_sorts_and_merges_the_split_files(tmp_path: Path):
    data = make_gaitgraph_csvs(tmp_path, subjects=(1, 75), views=("000", "090"), sessions=["nm-01", "cl-02"], frames=6)
    ds = CasiaBCoco(root=tmp_path)
    recs = by_name(ds.load())
    assert sorted(recs) == sorted(data) and len(recs) == 2 * 2 * 2
    r = recs["075-cl-02-090"]
    assert (r.person, r.view, r.condition, r.session, r.layout) == (75, "090", "cl", "cl-02", "coco-17")
    np.testing.assert_allclose(r.frames[..., :2], data["075-cl-02-090"][..., :2], rtol=1e-6)
    assert (r.frames[..., 2] == 0).all()  # the confidence column is not depth
    # Every row appears twice: in casia-b_pose_coco.csv and in one of the split files.
    assert ds.drop_report() == {"frame rows repeated in another CSV with identical values (kept once)": 8 * 6}


def test_coco_frames_ordered_by_number_with_gaps(tmp_path: Path):
    seq = coco_sequence(3, 5)
    rows = coco_rows("003-bg-01-018", seq)
    rows[2][0] = "./003-bg-01-018/000010.jpg"  # a frame without a detection is absent: numbers skip
    write_gaitgraph_csv(tmp_path / "poses.csv", [rows[4], rows[2], rows[0], rows[3], rows[1]])
    r = CasiaBCoco(root=tmp_path).load()[0]
    np.testing.assert_allclose(r.frames[:, :, :2], seq[[0, 1, 3, 4, 2], :, :2], rtol=1e-6)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda row: row[:-1], "50 keypoint values, expected 51"),
        (lambda row: row[:10], "9 keypoint values, expected 51"),
        (lambda row: row[:5] + ["x"] + row[6:], "non-numeric value 'x'"),
        (lambda row: row[:5] + [float("nan")] + row[6:], "NaN or infinite keypoint value"),
        (lambda row: row[:5] + ["-inf"] + row[6:], "NaN or infinite keypoint value"),
        (lambda row: ["./001-nm-01-090/frame.jpg"] + row[1:], "frame file 'frame.jpg' is not <number>.jpg"),
        (lambda row: ["001-nm-01-090.jpg"] + row[1:], "is not <...>/SSS-CC-NN-VVV/<frame>.jpg"),
        (lambda row: ["./001-qq-01-090/000003.jpg"] + row[1:], "unknown walking condition 'qq'"),
    ],
)
def test_coco_bad_rows_name_file_and_line(tmp_path: Path, mutate, message: str):
    rows = [[str(v) for v in row] for row in coco_rows("001-nm-01-090", coco_sequence(1, 4))]
    rows[2] = mutate(rows[2])
    write_gaitgraph_csv(tmp_path / "casia-b_pose_test.csv", rows)
    with pytest.raises(DataFormatError) as err:
        CasiaBCoco(root=tmp_path).load()
    assert "casia-b_pose_test.csv:4: " in str(err.value) and message in str(err.value)


def test_coco_header_duplicates_and_empty_table(tmp_path: Path):
    rows = coco_rows("001-nm-01-090", coco_sequence(1, 3))
    header = list(COCO_HEADER)
    header[4] = "left_eye_X"
    write_gaitgraph_csv(tmp_path / "a.csv", rows, header=header)
    with pytest.raises(DataFormatError, match=r"a.csv:1: not a GaitGraph COCO-17 pose header: column 5 is 'left_eye_X'"):
        CasiaBCoco(root=tmp_path).load()
    write_gaitgraph_csv(tmp_path / "a.csv", rows + [rows[1]])
    with pytest.raises(DataFormatError, match=r"a.csv:5: frame 2 of 001-nm-01-090 repeated \(first at .*a.csv:3\)"):
        CasiaBCoco(root=tmp_path).load()
    write_gaitgraph_csv(tmp_path / "a.csv", rows)
    changed = [list(r) for r in rows]
    changed[0][1] += 1.0
    write_gaitgraph_csv(tmp_path / "b.csv", changed)
    with pytest.raises(DataFormatError, match=r"b.csv:2: frame 1 of 001-nm-01-090 differs from .*a.csv:2"):
        CasiaBCoco(root=tmp_path).load()
    write_gaitgraph_csv(tmp_path / "b.csv", [])
    with pytest.raises(DataFormatError, match="b.csv: no pose rows after the header"):
        CasiaBCoco(root=tmp_path).load()


# --------------------------------------------------------------------------------------------
# smsge-npy
# --------------------------------------------------------------------------------------------


def test_smsge_ias_train_and_both_test_splits(tmp_path: Path, monkeypatch):
    persons = [0, 0, 1, 2, 2, 2]
    train = random_windows(persons, 6, 20, seed=1)
    a, b = random_windows([0, 1, 2], 6, 20, seed=2), random_windows([1, 2], 6, 20, seed=3)
    make_smsge_dataset(tmp_path, "IAS", 6, {"train": (train, persons), "A": (a, [0, 1, 2]), "B": (b, [1, 2])})
    calls: list[tuple[str, Any]] = []
    real_load = np.load

    def spy(path, *args, **kwargs):
        calls.append((str(path), kwargs.get("allow_pickle")))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    ds = SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="IAS", frames=6))
    recs = ds.load()
    assert calls and all(flag is False for _, flag in calls)
    assert not any("/ids_" in p or "target_" in p for p, _ in calls)  # pickles and reversed copies never read
    assert not any("ids_" in p.name for p in ds.source_files())
    assert [r.session for r in recs].count("train") == 6
    assert [r.session for r in recs].count("A") == 3 and [r.session for r in recs].count("B") == 2
    first = recs[0]
    assert (first.sequence, first.person, first.layout, first.frames.shape) == ("IAS-train-000000", 0, "kinect-v1-20", (6, 20, 3))
    np.testing.assert_allclose(np.stack([r.frames for r in recs if r.session == "train"]), train, rtol=1e-6)
    np.testing.assert_allclose(np.stack([r.frames for r in recs if r.session == "B"]), b, rtol=1e-6)
    assert [r.person for r in recs if r.session == "A"] == [0, 1, 2]


def test_smsge_ks20_layout_and_datasets_folder_as_root(tmp_path: Path):
    persons = [3, 4, 19]
    make_smsge_dataset(tmp_path, "KS20", 4, {"train": (random_windows(persons, 4, 25), persons),
                                            "test": (random_windows([3], 4, 25), [3])})
    recs = SmsgeNpy(root=tmp_path / "Datasets", options=SmsgeNpyOptions(dataset_name="KS20", frames=4)).load()
    assert {r.layout for r in recs} == {"kinect-v2-25"} and recs[-1].session == "test"
    assert recs[-1].frames.shape == (4, 25, 3) and [r.person for r in recs] == [3, 4, 19, 3]


def test_smsge_casia_views_and_condition_matching(tmp_path: Path):
    persons = list(range(1, 5))
    make_smsge_dataset(tmp_path, "CASIA_B", 20, {"train": (random_windows(persons, 20, 14), persons),
                                                 "test": (random_windows(persons, 20, 14), persons)}, view=5)
    recs = SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="CASIA_B", frames=20, view=5)).load()
    assert {r.view for r in recs if r.session == "test"} == {"090"}
    assert {r.view for r in recs if r.session == "train"} == {""}  # unknown in the release
    assert {r.layout for r in recs} == {"casia-14"}
    make_smsge_dataset(tmp_path, "CASIA_B_match", 10, {s: (random_windows(persons, 10, 14), persons)
                                                       for s in ("train", "nm", "bg", "cl")})
    recs = SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="CASIA_B_match", frames=10)).load()
    assert sorted({r.session for r in recs}) == ["bg", "cl", "nm", "train"]
    assert {r.condition for r in recs if r.session == "cl"} == {"cl"}
    with pytest.raises(ValueError, match="'view' selects a CASIA_B cross-view folder"):
        SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="KGBD", view=1)).load()
    with pytest.raises(ValueError, match="unknown dataset_name 'NTU'"):
        SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="NTU")).load()


def _kgbd(tmp_path: Path, persons=(1, 1, 2), f: int = 6) -> Path:
    return make_smsge_dataset(tmp_path, "KGBD", f, {"train": (random_windows(persons, f, 20), persons),
                                                    "test": (random_windows([1, 2], f, 20), [1, 2])})


def _load_kgbd(tmp_path: Path):
    return SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="KGBD", frames=6)).load()


def test_smsge_bad_arrays(tmp_path: Path):
    base = _kgbd(tmp_path)
    train = base / "KGBD_train_npy_data"
    x = train / "source_x_KGBD_6.npy"
    good = np.load(x)
    np.save(x, good[:-2])  # truncated: not whole windows
    with pytest.raises(DataFormatError, match=r"source_x_KGBD_6.npy: 16 skeleton rows is not a whole number of 6-frame"):
        _load_kgbd(tmp_path)
    np.save(x, good[:-6])
    with pytest.raises(DataFormatError, match=r"source_x_KGBD_6.npy: 2 windows but frame_id_KGBD_6.npy labels 3"):
        _load_kgbd(tmp_path)
    np.save(x, good[:, :19])
    with pytest.raises(DataFormatError, match=r"array of shape \(18, 19\), expected \[N\*6, 20\]"):
        _load_kgbd(tmp_path)
    bad = good.copy()
    bad[13, 4] = np.nan
    np.save(x, bad)
    with pytest.raises(DataFormatError, match=r"source_x_KGBD_6.npy: NaN or infinite coordinate in row 13 \(window 2\)"):
        _load_kgbd(tmp_path)
    np.save(x, good)
    np.save(train / "frame_id_KGBD_6.npy", np.array([1.0, 1.5, 2.0]))
    with pytest.raises(DataFormatError, match="person label 1.5 at window 1 is not an integer"):
        _load_kgbd(tmp_path)
    np.save(train / "frame_id_KGBD_6.npy", np.array(["a", "b", "c"]))
    with pytest.raises(DataFormatError, match="frame_id_KGBD_6.npy: expected a numeric array"):
        _load_kgbd(tmp_path)
    np.save(train / "frame_id_KGBD_6.npy", np.array([], dtype=np.int64))
    with pytest.raises(DataFormatError, match="no windows"):
        _load_kgbd(tmp_path)


def test_smsge_missing_files(tmp_path: Path):
    base = _kgbd(tmp_path)
    (base / "KGBD_test_npy_data" / "t_source_z_KGBD_6.npy").unlink()
    with pytest.raises(DataFormatError, match=r"t_source_z_KGBD_6.npy: missing: split 'test'"):
        _load_kgbd(tmp_path)
    for p in (base / "KGBD_train_npy_data").glob("*source*"):
        p.unlink()
    for p in (base / "KGBD_test_npy_data").glob("*"):
        p.unlink()
    with pytest.raises(DataFormatError, match="missing: split 'train'"):
        _load_kgbd(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no .* files found"):
        SmsgeNpy(root=tmp_path, options=SmsgeNpyOptions(dataset_name="IAS", frames=6)).load()


# --------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------


class FixtureData(DataAccess):
    """Loads this module's datasets from fixture folders, as the harness would."""

    def __init__(self, roots: dict[str, Path]):
        self.roots = roots
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def load(self, dataset: str, **options: Any):
        self.calls.append((dataset, options))
        cls = {"casia-b-3d": CasiaB3D, "casia-b-coco": CasiaBCoco, "smsge-npy": SmsgeNpy}[dataset]
        opts = cls.options_class(**options) if cls.options_class else None
        return cls(root=self.roots[dataset], options=opts).load()


@pytest.fixture(scope="module")
def casia_3d(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casia-b-3d")
    make_casia_3d_dataset(root, subjects=(1, 2, 75, 76), views=("000", "018", "072", "090", "108"), frames=45)
    return root


def test_adjacent_views():
    assert adjacent_views("000") == ("018",) and adjacent_views("180") == ("162",)
    assert adjacent_views("090") == ("072", "108")


def test_casia_b_cross_view_fold(casia_3d: Path):
    protocol = CasiaBCrossView()
    assert protocol.folds == ("000", "018", "036", "054", "072", "090", "108", "126", "144", "162", "180")
    data = FixtureData({"casia-b-3d": casia_3d})
    fold = protocol.build_fold("090", seed=0, data=data)
    split = fold.info["split"]
    assert {s.rsplit("-", 1)[1] for s in split["train"]} == {"072", "108"}
    assert {s.rsplit("-", 1)[1] for s in split["test"]} == {"090"}
    assert not set(split["train"]) & set(split["test"])
    assert len(split["test"]) == 4 * 10 and len(split["train"]) == 4 * 10 * 2
    assert set(fold.test.person) <= set(fold.train.person) and (fold.test.labels >= 0).all()
    assert fold.train.data.shape[1:] == (20, 14, 3)
    # 45 frames: train windows start at 0, 10, 20; test windows at 0, 20.
    assert len(fold.train) == 80 * 3 and len(fold.test) == 40 * 2
    assert np.abs(fold.train.data[:, :, 0]).max() == 0  # centred on joint 0
    again = protocol.build_fold("090", seed=5, data=data)
    assert again.info["split"] == split
    end = protocol.build_fold("000", seed=0, data=data).info
    assert end["train_views"] == ["018"] and end["test_sequences"] == 40


def test_casia_b_cross_view_unseen_identities_are_reported(tmp_path: Path, caplog):
    make_casia_3d_dataset(tmp_path, subjects=(1,), views=("072", "090"), sessions=["nm-01"], frames=25)
    make_casia_3d_dataset(tmp_path, subjects=(2,), views=("090",), sessions=["nm-01"], frames=25)
    fold = CasiaBCrossView().build_fold("090", 0, FixtureData({"casia-b-3d": tmp_path}))
    assert any("not scored: [2]" in r.getMessage() for r in caplog.records)
    assert fold.info["unscored_test_identities"] == [2] and set(fold.test.person) == {1}


def test_casia_b_references_are_the_papers_table():
    refs = CasiaBCrossView.references["SM-SGE"]
    assert set(refs) == set(CasiaBCrossView.folds)
    assert refs["090"] == {"rank1": 59.3} and refs["000"] == {"rank1": 18.4} and refs["180"] == {"rank1": 13.6}
    assert SMSGE_CASIA_B_RANK1["054"] == 40.9 and "SM-SGE-results.png" in CasiaBCrossView.reference_source
    assert CasiaBConditionMatching.references == {}


def test_casia_b_cme_folds_disjoint_identities(casia_3d: Path):
    protocol = CasiaBConditionMatching()
    data = FixtureData({"casia-b-3d": casia_3d})
    for fold_name in protocol.folds:
        fold = protocol.build_fold(fold_name, 0, data)
        split = fold.info["split"]
        train_people = {int(s[:3]) for s in split["train"]}
        test_people = {int(s[:3]) for s in split["query"] + split["gallery"]}
        assert train_people == {1, 2} and test_people == {75, 76}
        assert not set(split["query"]) & set(split["gallery"])
        probe, gallery = protocol.fold_sessions[fold_name]
        assert {s[4:9] for s in split["query"]} == set(probe) and {s[4:9] for s in split["gallery"]} == set(gallery)
        assert (fold.query.labels == -1).all() and (fold.gallery.labels == -1).all()
        assert len(split["train"]) == 2 * 10 * 5  # every sequence of the training subjects
    nm = protocol.build_fold("nm-nm", 0, data)
    assert len(nm.info["split"]["query"]) == 2 * 2 * 5 and len(nm.info["split"]["gallery"]) == 2 * 4 * 5
    assert nm.query.data.shape[1:] == (40, 14, 3)
    # The camera of a sample is its view, so same-person same-view gallery entries are junk.
    assert protocol.filter_same_camera and len(np.unique(nm.gallery.camera)) == 5


def test_casia_b_coco_cme_centres_on_the_hips(tmp_path: Path):
    make_gaitgraph_csvs(tmp_path, subjects=(3, 80), views=("036",), sessions=all_sessions(), frames=12, split_at=None)
    fold = CasiaBCocoConditionMatching().build_fold("cl-nm", 0, FixtureData({"casia-b-coco": tmp_path}))
    hips = fold.query.data[:, :, [11, 12], :].mean(axis=2)
    assert np.abs(hips).max() < 1e-4 and fold.query.data.shape[1:] == (60, 17, 3)
    assert (fold.query.data[..., 2] == 0).all()
    assert fold.info["split"]["query"] == ["080-cl-01-036", "080-cl-02-036"]


def test_casia_b_npy_protocol_reads_the_fold_view_folder(tmp_path: Path):
    persons = [1, 1, 2, 2, 3]
    for view in (2, 3):
        make_smsge_dataset(tmp_path, "CASIA_B", 20, {"train": (random_windows(persons, 20, 14, seed=view), persons),
                                                     "test": (random_windows([1, 2, 3], 20, 14), [1, 2, 3])}, view=view)
    protocol = CasiaBCrossViewNpy()
    data = FixtureData({"smsge-npy": tmp_path})
    fold = protocol.build_fold("036", 0, data)
    assert data.calls[-1] == ("smsge-npy", {"dataset_name": "CASIA_B", "frames": 20, "view": 2})
    assert len(fold.train) == 5 and len(fold.test) == 3 and fold.info["view_folder"] == "view_2"
    assert np.abs(fold.test.data[:, :, 0]).max() == 0
    assert "view" in protocol.fixed_data_options()
    with pytest.raises(DatasetNotFoundError):
        protocol.build_fold("090", 0, data)  # view_5 was not written


def test_coco_csv_with_crlf_line_ends_and_blank_lines(tmp_path: Path):
    seq = coco_sequence(9, 3)
    path = write_gaitgraph_csv(tmp_path / "poses.csv", coco_rows("009-nm-03-144", seq))
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n")
    r = CasiaBCoco(root=tmp_path).load()[0]
    assert r.sequence == "009-nm-03-144" and r.frames.shape == (3, 17, 3)
    np.testing.assert_allclose(r.frames[..., :2], seq[..., :2], rtol=1e-6)
