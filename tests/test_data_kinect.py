"""IAS-Lab, KGBD and KS20 loaders on fixtures in the release formats, and the Kinect protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from formats_kinect import (
    IAS_SESSIONS,
    KS20_VIEWS,
    ias_frame_text,
    walker_frame,
    write_biwi,
    write_ias_lab,
    write_kgbd,
    write_ks20,
)

from reid_bench.api import DataAccess
from reid_bench.datasets import DataFormatError, DatasetNotFoundError
from reid_bench.datasets.ias_lab import EMPTY_SEQUENCE_DROP, UNTRACKED_DROP, IASLab
from reid_bench.datasets.kgbd import KGBD
from reid_bench.datasets.ks20 import KS20
from reid_bench.protocols import kinect as K

ATOL = 1e-5  # the fixtures print 7 significant digits


class Records(DataAccess):
    """Hands a protocol the records of already loaded datasets."""

    def __init__(self, **datasets):
        self.datasets = datasets
        self.calls = 0

    def load(self, dataset, **options):
        self.calls += 1
        return self.datasets[dataset]


def error_of(fn) -> str:
    with pytest.raises(DataFormatError) as info:
        fn()
    return str(info.value)


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ IAS-Lab


def test_ias_lab_reads_every_session_in_sdk_joint_order(tmp_path):
    root = write_ias_lab(tmp_path, persons=3, frames=12)
    ds = IASLab(root)
    records = ds.load()
    assert len(records) == 9
    assert sorted({r.session for r in records}) == sorted(IAS_SESSIONS)
    assert {r.person for r in records} == {1, 2, 3}
    assert {r.sequence for r in records} == {f"{s}/{p:03d}" for s in IAS_SESSIONS for p in (1, 2, 3)}
    rec = next(r for r in records if r.sequence == "TestingB/002")
    assert rec.layout == "kinect-v1-20" and rec.frames.shape == (12, 20, 3) and rec.frames.dtype == np.float32
    expected = np.stack([walker_frame(2, t, sequence=2) for t in range(12)])
    np.testing.assert_allclose(rec.frames, expected, atol=ATOL)
    assert ds.drop_report() == {}
    assert ds.verify() == []
    assert len(ds.source_files()) == 9 * 12


def test_ias_lab_frames_follow_numeric_file_order(tmp_path):
    root = write_ias_lab(tmp_path, persons=1, frames=12, sessions=("Training",))
    folder = root / "Training" / "001"
    for f in folder.iterdir():  # unpadded names: '10_skel.txt' sorts before '2_skel.txt' as text
        f.rename(folder / f"{int(f.name.split('_')[0])}_skel.txt")
    rec = IASLab(root).load()[0]
    np.testing.assert_allclose(rec.frames[9], walker_frame(1, 9), atol=ATOL)


def test_ias_lab_drops_and_counts_untracked_frames(tmp_path):
    root = write_ias_lab(tmp_path, persons=3, frames=12, untracked_frames=[0, 5])
    ds = IASLab(root)
    records = ds.load()
    assert all(len(r.frames) == 10 for r in records)
    assert ds.drop_report() == {UNTRACKED_DROP: 2 * 9}
    rec = next(r for r in records if r.sequence == "Training/001")
    np.testing.assert_allclose(rec.frames[0], walker_frame(1, 1), atol=ATOL)  # frame 0 was dropped
    np.testing.assert_allclose(rec.frames[4], walker_frame(1, 6), atol=ATOL)  # and so was frame 5


def test_ias_lab_sequence_with_only_untracked_frames_is_a_counted_drop(tmp_path):
    root = write_ias_lab(tmp_path, persons=2, frames=6)
    for f in (root / "TestingA" / "002").iterdir():
        f.write_text(ias_frame_text(walker_frame(2, 0), states=[0] * 20))
    ds = IASLab(root)
    records = ds.load()
    assert "TestingA/002" not in {r.sequence for r in records}
    assert ds.drop_report() == {UNTRACKED_DROP: 6, EMPTY_SEQUENCE_DROP: 1}


def test_ias_lab_nan_in_an_untracked_frame_is_dropped_but_in_a_tracked_one_is_an_error(tmp_path):
    root = write_ias_lab(tmp_path, persons=2, frames=6)
    coords = walker_frame(1, 2)
    coords[5, 0] = np.nan
    states = [2] * 20
    states[4] = 0
    (root / "Training" / "001" / "00003_skel.txt").write_text(ias_frame_text(coords, states))
    ds = IASLab(root)
    ds.load()
    assert ds.drop_report() == {UNTRACKED_DROP: 1}
    replace_line(root / "Training" / "001" / "00004_skel.txt", 7, "1,nan,1.0,3.0,300,200,2,0,5,6,0,0,0,1")
    message = error_of(IASLab(root).load)
    assert "00004_skel.txt:7" in message and "non-finite" in message


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: replace_line(p, 3, "1,0.1,abc,2.5,300,200,2,0,1,2,0,0,0,1"), ("00002_skel.txt:3", "'y' is not a number")),
        (lambda p: replace_line(p, 4, "1,0.1,0.2"), ("00002_skel.txt:4", "at least 8")),
        (lambda p: replace_line(p, 5, "1,0.1,0.2,2.5,300,200,7,0,1,2,0,0,0,1"), ("00002_skel.txt:5", "trackingState")),
        (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:19]) + "\n"), ("00002_skel.txt:19", "found 19")),
        (lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[0] + "\n"), ("00002_skel.txt:21", "found 21")),
        (lambda p: p.write_bytes(b"\xff\xfe\x00binary"), ("00002_skel.txt", "not a text file")),
    ],
    ids=["non-numeric", "truncated-row", "bad-tracking-state", "truncated-file", "extra-joint", "binary"],
)
def test_ias_lab_bad_files_name_file_and_line(tmp_path, damage, expected):
    root = write_ias_lab(tmp_path, persons=2, frames=6)
    damage(root / "TestingB" / "001" / "00002_skel.txt")
    message = error_of(IASLab(root).load)
    for part in expected:
        assert part in message


def test_ias_lab_person_folder_without_frames_is_an_error(tmp_path):
    root = write_ias_lab(tmp_path, persons=2, frames=6)
    (root / "TestingA" / "003").mkdir()
    message = error_of(IASLab(root).load)
    assert str(root / "TestingA" / "003") in message and "no *skel.txt" in message


def test_ias_lab_named_person_folders_get_consistent_ids(tmp_path):
    root = write_ias_lab(tmp_path, frames=6, person_names=["bob", "alice", "carol"])
    records = IASLab(root).load()
    ids = {(r.session, r.sequence.split("/")[1]): r.person for r in records}
    assert {ids[(s, "alice")] for s in IAS_SESSIONS} == {1}
    assert {ids[(s, "carol")] for s in IAS_SESSIONS} == {3}


def test_ias_lab_missing_data_names_the_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        IASLab(tmp_path / "nowhere").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="robotics.dei.unipd.it"):
        IASLab(tmp_path / "empty").load()


def test_ias_lab_verify_reports_missing_sessions_and_unknown_test_persons(tmp_path):
    root = write_ias_lab(tmp_path, persons=2, frames=6, sessions=("Training", "TestingA"))
    (root / "TestingA" / "009").mkdir()
    problems = IASLab(root).verify()
    assert any("TestingB" in p for p in problems)
    assert any("'009'" in p for p in problems)


# ------------------------------------------------------------------------------ KGBD


def test_kgbd_reads_uneven_walks_and_maps_joints_by_name(tmp_path):
    root = write_kgbd(tmp_path, walks_per_person=(3, 4, 5), frames=12)
    ds = KGBD(root)
    records = ds.load()
    assert len(records) == 12
    per_person = {p: sum(r.person == p for r in records) for p in (1, 2, 3)}
    assert per_person == {1: 3, 2: 4, 3: 5}
    rec = next(r for r in records if r.sequence == "Person002/4")
    assert rec.layout == "kinect-v1-20" and rec.frames.shape == (12, 20, 3)
    expected = np.stack([walker_frame(2, t, sequence=4) for t in range(12)])
    np.testing.assert_allclose(rec.frames, expected, atol=ATOL)
    assert ds.verify() == []


def test_kgbd_joint_order_in_the_file_does_not_matter(tmp_path):
    root = write_kgbd(tmp_path, walks_per_person=(1,), frames=2)
    path = root / "kinect gait raw dataset" / "Person001" / "1.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(list(reversed(lines[:20])) + lines[20:][::3] + lines[20:][1::3] + lines[20:][2::3]) + "\n")
    rec = KGBD(root).load()[0]
    np.testing.assert_allclose(rec.frames, np.stack([walker_frame(1, t, sequence=1) for t in range(2)]), atol=ATOL)


@pytest.mark.parametrize("layout", ["flat", "release", "dataset-a"])
def test_kgbd_finds_person_folders_where_the_archive_puts_them(tmp_path, layout):
    root = write_kgbd(tmp_path, walks_per_person=(2, 2), frames=3, release_folder=layout != "flat")
    if layout == "dataset-a":
        (root / "Dataset A").mkdir()
        (root / "kinect gait raw dataset").rename(root / "Dataset A" / "kinect gait raw dataset")
    assert len(KGBD(root).load()) == 4


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: replace_line(p, 12, "Hip-Center;0.1;0.2;2.5"), (":12", "unknown joint name 'Hip-Center'")),
        (lambda p: replace_line(p, 3, "Shoulder-Right;0.1;zz;2.5"), (":3", "'y' is not a number")),
        (lambda p: replace_line(p, 25, "Elbow-Right;nan;0.2;2.5"), (":25", "non-finite x")),
        (lambda p: replace_line(p, 7, "Wrist-Right;0.1;0.2"), (":7", "4 fields")),
        (lambda p: replace_line(p, 2, "Head;0.1;0.2;2.5"), (":2", "'Head' appears twice in frame 1")),
        (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:50]) + "\n"), (":50", "not a whole number")),
        (lambda p: p.write_text(""), ("2.txt", "empty sequence")),
    ],
    ids=["unknown-joint", "non-numeric", "nan", "wrong-field-count", "duplicate-joint", "truncated", "empty"],
)
def test_kgbd_bad_files_name_file_and_line(tmp_path, damage, expected):
    root = write_kgbd(tmp_path, walks_per_person=(2, 3), frames=4)
    path = root / "kinect gait raw dataset" / "Person002" / "2.txt"
    damage(path)
    message = error_of(KGBD(root).load)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_kgbd_person_folder_without_walks_is_an_error(tmp_path):
    root = write_kgbd(tmp_path, walks_per_person=(2, 2), frames=3)
    empty = root / "kinect gait raw dataset" / "Person003"
    empty.mkdir()
    message = error_of(KGBD(root).load)
    assert str(empty) in message and "no walk files" in message


# ------------------------------------------------------------------------------ KS20


def test_ks20_reads_views_cycles_and_orders_frames_by_timestamp(tmp_path):
    root = write_ks20(tmp_path, bodies=(1, 2, 7), frames=10)
    ds = KS20(root)
    records = ds.load()
    assert len(records) == 3 * 3 * 5
    assert {r.view for r in records} == set(KS20_VIEWS)
    assert {r.condition for r in records} == {"gc1", "gc2", "gc3"}
    assert {r.person for r in records} == {1, 2, 7}  # the release's body numbers, not renumbered
    rec = next(r for r in records if r.sequence == "left_lateral/gc2_body7")
    assert rec.layout == "kinect-v2-25" and rec.frames.shape == (10, 25, 3)
    v = KS20_VIEWS.index("left_lateral")
    expected = np.stack([walker_frame(7, t, sequence=1 + 3 * v, kinect_v2=True) for t in range(10)])
    np.testing.assert_allclose(rec.frames, expected, atol=ATOL)  # timestamps 907..1204 cross 1000
    assert ds.verify() == []


def test_ks20_accepts_a_suffix_after_the_timestamp(tmp_path):
    root = write_ks20(tmp_path, bodies=(3,), cycles=("gc1",), views=("frontal",), frames=4, suffix="_skeleton.txt")
    rec = KS20(root).load()[0]
    assert rec.sequence == "frontal/gc1_body3" and len(rec.frames) == 4


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:24]) + "\n"), (":24", "expected 25 joint rows, found 24")),
        (lambda p: replace_line(p, 9, "8,0.1,x,2.5"), (":9", "'y' is not a number")),
        (lambda p: replace_line(p, 10, "9,0.1,0.2,inf"), (":10", "non-finite z")),
        (lambda p: replace_line(p, 11, "10,0.1"), (":11", "at least 4")),
        (lambda p: p.rename(p.with_name("notes.txt")), ("notes.txt", "unexpected file name")),
    ],
    ids=["wrong-joint-count", "non-numeric", "inf", "truncated-row", "bad-name"],
)
def test_ks20_bad_files_name_file_and_line(tmp_path, damage, expected):
    root = write_ks20(tmp_path, bodies=(1,), cycles=("gc1",), views=("frontal",), frames=3)
    damage(root / "frontal" / "gc1_body1_933")
    message = error_of(KS20(root).load)
    for part in expected:
        assert part in message


# ------------------------------------------------------------------------------ protocols


def _windows_per_sequence(frames: int, window: int, stride: int) -> int:
    return 1 if frames <= window else (frames - window) // stride + 1


@pytest.fixture
def kinect_data(tmp_path):
    return Records(
        **{
            "ias-lab": IASLab(write_ias_lab(tmp_path, persons=4, frames=12)).load(),
            "kgbd": KGBD(write_kgbd(tmp_path, walks_per_person=(3, 4, 5, 1), frames=12)).load(),
            "ks20": KS20(write_ks20(tmp_path, bodies=(1, 2, 7), frames=9)).load(),
        }
    )


@pytest.mark.parametrize("fold, test_session", [("A", "TestingA"), ("B", "TestingB")])
def test_ias_closed_set_trains_on_training_and_tests_on_one_session(kinect_data, fold, test_session):
    fold_data = K.IASClosedSet().build_fold(fold, 0, kinect_data)
    split = fold_data.info["split"]
    assert split["train"] == [f"Training/{p:03d}" for p in range(1, 5)]
    assert split["test"] == [f"{test_session}/{p:03d}" for p in range(1, 5)]
    train, test = fold_data.train, fold_data.test
    assert train.data.shape == (4 * _windows_per_sequence(12, 6, 3), 6, 20, 3)
    assert test.data.shape == (4 * _windows_per_sequence(12, 6, 6), 6, 20, 3)
    assert np.abs(train.data[:, :, 0]).max() == 0 and np.abs(test.data[:, :, 0]).max() == 0  # centred on joint 0
    assert set(test.labels) <= set(train.labels) and (test.labels >= 0).all()
    json.dumps(fold_data.info)


def test_kgbd_closed_set_holds_out_one_walk_per_person_with_a_fixed_seeded_split(kinect_data):
    protocol = K.KGBDClosedSet()
    fold = protocol.build_fold("all", 0, kinect_data)
    split = fold.info["split"]
    test = split["test"]
    assert sorted(s.split("/")[0] for s in test) == ["Person001", "Person002", "Person003"]
    assert not set(test) & set(split["train"])
    assert len(split["train"]) + len(test) == 13
    assert split["train_only_groups"] == ["4"]  # one walk: nothing to hold out
    assert set(fold.test.person) <= set(fold.train.person)
    again = protocol.build_fold("all", 7, kinect_data)  # the trial seed never moves the split
    assert again.info["split"] == split
    assert np.array_equal(again.test.data, fold.test.data)
    json.dumps(fold.info)


def test_random_splits_do_not_depend_on_other_persons(kinect_data, tmp_path):
    full = K.KGBDClosedSet().build_fold("all", 0, kinect_data).info["split"]["test"]
    fewer = Records(kgbd=[r for r in kinect_data.datasets["kgbd"] if r.person != 2])
    part = K.KGBDClosedSet().build_fold("all", 0, fewer).info["split"]["test"]
    assert part == [s for s in full if not s.startswith("Person002")]


def test_split_seed_changes_the_split():
    keys = [f"Person{p:03d}/{k}" for p in range(1, 30) for k in range(1, 6)]
    held = lambda seed: [min((k for k in keys if k.startswith(f"Person{p:03d}")),  # noqa: E731
                             key=lambda k: K.split_rank(seed, "all", k)) for p in range(1, 30)]
    assert held(2021) == held(2021) and held(2021) != held(2022)


def test_ks20_closed_set_holds_out_one_sequence_per_person_and_view(kinect_data):
    fold = K.KS20ClosedSet().build_fold("all", 0, kinect_data)
    split = fold.info["split"]
    held = {(s.split("/")[0], s.split("_body")[1]) for s in split["test"]}
    assert len(split["test"]) == len(held) == 3 * 5
    assert len(split["train"]) == 2 * 3 * 5 and not set(split["train"]) & set(split["test"])
    assert fold.train.data.shape[1:] == (6, 25, 3)
    assert np.abs(fold.test.data[:, :, 0]).max() == 0


@pytest.fixture
def long_walks(tmp_path):
    """Sequences long enough for the release's trimming (10 frames at the ends) to leave windows."""
    return Records(
        **{
            "ias-lab": IASLab(write_ias_lab(tmp_path, persons=4, frames=40)).load(),
            "kgbd": KGBD(write_kgbd(tmp_path, walks_per_person=(3, 4, 5, 1), frames=32)).load(),
            "ks20": KS20(write_ks20(tmp_path, bodies=(1, 2, 7), frames=9)).load(),
        }
    )


def _dense_training_windows(frames: int, f: int = 6) -> int:
    """The release's training cut: every f/2 frames, again from each of the first f frames."""
    return sum((frames - o - f) // (f // 2) + 1 for o in range(f) if frames - o >= f)


def test_ias_retrieval_folds_swap_probe_and_gallery(long_walks):
    ab = K.IASRetrieval().build_fold("A-B", 0, long_walks)
    ba = K.IASRetrieval().build_fold("B-A", 0, long_walks)
    assert ab.info["split"]["query"] == ba.info["split"]["gallery"] == [f"TestingA/{p:03d}" for p in range(1, 5)]
    assert ab.info["split"]["gallery"] == ba.info["split"]["query"]
    assert ab.info["split"]["train"] == [f"Training/{p:03d}" for p in range(1, 5)]
    # every probe and gallery window is its own retrieval item, as in SPC-MGR/SimMC (the protocol's
    # scoring says so; the windows keep their sequence as their group)
    assert K.IASRetrieval.scoring.item == "sample"
    assert len(np.unique(ab.query.group)) == 4
    assert set(ab.query.meta["sequence"]) == {f"TestingA/{p:03d}" for p in range(1, 5)}
    # the release: test sequences lose 10 frames at each end (40 -> 20: 3 windows of 6, 2 frames
    # left over), training sequences 10 at the start (40 -> 30), cut densely
    assert ab.info["query_sequences"] == 4 and ab.info["query_windows"] == 4 * 3
    assert len(ab.train) == 4 * _dense_training_windows(30) == 4 * 47
    assert np.abs(ab.query.data[:, :, 0]).max() == 0
    starts = ab.train.data[:, 0, 5, 2]  # the swinging elbow traces the frame a window starts at
    assert len(np.unique(np.round(starts[: _dense_training_windows(30)], 6))) == 30 - 6 + 1  # every start


def test_retrieval_sequences_too_short_after_trimming_are_counted(kinect_data):
    fold_error = pytest.raises(ValueError, match="no train sequence keeps 6 frames after trimming")
    with fold_error:  # 12 frames - 10 at the start leave 2
        K.IASRetrieval().build_fold("A-B", 0, kinect_data)


def test_kgbd_retrieval_splits_walks_into_gallery_probe_and_train(long_walks):
    fold = K.KGBDRetrieval().build_fold("all", 0, long_walks)
    split = fold.info["split"]
    count = lambda role, person: sum(s.startswith(f"Person{person:03d}/") for s in split[role])  # noqa: E731
    # walks per person (3, 4, 5, 1) -> gallery/probe/train
    assert [(count("gallery", p), count("query", p), count("train", p)) for p in (1, 2, 3, 4)] == [
        (1, 1, 1), (2, 1, 1), (2, 1, 2), (1, 0, 0)]
    assert not (set(split["train"]) & set(split["query"]) or set(split["train"]) & set(split["gallery"])
                or set(split["query"]) & set(split["gallery"]))
    assert K.KGBDRetrieval().build_fold("all", 3, long_walks).info["split"] == split
    # 32 frames - 10 at each end = 12: two non-overlapping windows, for training too
    assert len(fold.train) == 2 * len(split["train"]) and len(fold.query) == 2 * len(split["query"])


def test_ks20_retrieval_uses_whole_gait_cycles_across_views(long_walks):
    fold = K.KS20Retrieval().build_fold("all", 0, long_walks)
    split = fold.info["split"]
    for role in ("gallery", "query", "train"):
        cycles = {}
        for seq in split[role]:
            view, name = seq.split("/")
            cycle, body = name.split("_body")
            cycles.setdefault(body, set()).add(cycle)
            assert view in KS20_VIEWS
        assert all(len(c) == 1 for c in cycles.values())  # one cycle per person and role
        assert len(split[role]) == 3 * 5  # ... seen from all five views
    roles = [{s.split("/")[1] for s in split[r]} for r in ("gallery", "query", "train")]
    assert not (roles[0] & roles[1] or roles[0] & roles[2] or roles[1] & roles[2])
    assert len(fold.train) == 15 * _dense_training_windows(9)  # no trimming on KS20


@pytest.mark.parametrize("cls", [K.IASClosedSet, K.KGBDClosedSet, K.KS20ClosedSet, K.IASRetrieval, K.KGBDRetrieval,
                                 K.KS20Retrieval, K.BIWIRetrieval], ids=lambda cls: cls.__name__)
def test_references_are_keyed_by_the_protocols_folds(cls):
    assert cls.reference_source
    for method, folds in cls.references.items():
        assert set(folds) <= set(cls.folds)
        metrics = cls().metrics
        assert all(set(values) <= set(metrics) for values in folds.values())


def test_references_hold_the_published_tables():
    from reid_bench.protocols.field import FIELD_TABLE

    # SM-SGE's table: its "nAUC" is the released code's micro ROC AUC
    assert K.IASClosedSet.references["SM-SGE"]["B"] == {"rank1": 69.8, "roc_auc_micro": 90.4}
    # the field's table on every retrieval protocol: twelve methods, IAS-A = fold A-B; the
    # 3D-SRID-Survey figure adds Rank-1 of methods the first table lacks (not on KGBD)
    from reid_bench.protocols.field import SRID_FIGURE

    assert set(FIELD_TABLE) <= set(K.IASRetrieval.references) and len(FIELD_TABLE) == 12
    assert set(K.IASRetrieval.references) - set(FIELD_TABLE) == {
        m for m, rows in SRID_FIGURE.items() if "IAS-A" in rows} - set(FIELD_TABLE)
    assert set(K.KGBDRetrieval.references) == set(FIELD_TABLE)
    assert K.IASRetrieval.references["MoCos"] == {"A-B": {"rank1": 51.9}, "B-A": {"rank1": 61.5}}
    assert K.IASRetrieval.references["TranSG"]["A-B"] == {"mAP": 32.8, "rank1": 49.2, "rank5": 68.5, "rank10": 76.2}
    assert K.BIWIRetrieval.references["TranSG"]["S"]["rank1"] == 68.7
    assert K.BIWIRetrieval.references["D_PG"]["W"] == {"mAP": 8.7, "rank1": 6.5, "rank5": 15.5, "rank10": 20.3}
    assert K.KGBDRetrieval.references["AGE"]["all"]["rank1"] == 2.9
    assert K.KS20Retrieval.references["D16"]["all"]["mAP"] == 24.0


# ------------------------------------------------------------------------------ end to end


def test_d13_runs_the_ias_protocol_through_the_trial_code(tmp_path):
    from reid_bench.registry import PluginEntry, Registry
    from reid_bench.trial import TrialSpec, execute_trial

    registry = Registry()
    registry._scan()
    for kind, name, obj in (("datasets", "ias-lab", IASLab), ("protocols", "ias", K.IASClosedSet)):
        registry._entries[kind][name] = PluginEntry(kind, name, f"{obj.__module__}:{obj.__name__}", "reid-bench", "test")
        registry._loaded[(kind, name)] = obj
    write_ias_lab(tmp_path / "data", persons=4, frames=12, untracked_frames=[11])
    spec = TrialSpec("d13", "ias", "A", 0, data_root=str(tmp_path / "data"), device="cpu",
                     work_dir=str(tmp_path / "work"), cache_dir=str(tmp_path / "cache"))
    result = execute_trial(spec, registry=registry)
    assert 0.0 <= result["metrics"]["rank1"] <= 1.0 and "nAUC" in result["metrics"]
    assert result["fold_info"]["split"]["test"] == [f"TestingA/{p:03d}" for p in range(1, 5)]
    assert result["dataset_drops"]["ias-lab"] == {UNTRACKED_DROP: 12}


# ------------------------------------------------------------------------------ BIWI RGBD-ID


def test_biwi_reads_its_three_sessions_and_counts_drops(tmp_path):
    from reid_bench.datasets.biwi import BIWI
    from reid_bench.datasets.ias_lab import EXTRA_SKELETON_DROP

    root = write_biwi(tmp_path, persons=4, test_persons=3, frames=25, untracked_frames=[0, 1],
                      second_skeleton_frames=[5])
    ds = BIWI(root)
    records = ds.load()
    assert sorted({r.session for r in records}) == ["Still", "Training", "Walking"]
    assert {r.sequence for r in records if r.session == "Still"} == {f"Still/{p:03d}" for p in (1, 2, 3)}
    assert {r.person for r in records if r.session == "Training"} == {1, 2, 3, 4}
    assert all(len(r.frames) == 23 and r.layout == "kinect-v1-20" for r in records)  # 2 untracked frames dropped
    assert ds.drop_report() == {UNTRACKED_DROP: 2 * 10, EXTRA_SKELETON_DROP: 10}
    second = [r for r in records if r.sequence == "Training/002"][0]
    np.testing.assert_allclose(second.frames[3], walker_frame(2, 5, sequence=0), rtol=1e-5)  # the first skeleton
    assert len(ds.source_files()) == 10 * 25 and all(f.name.endswith("_skel.txt") for f in ds.source_files())
    assert ds.verify() == []
    assert "CC BY-NC-SA 3.0" in ds.license and "robotics.dei.unipd.it" in ds.obtain


def test_biwi_bad_frame_names_file_and_line(tmp_path):
    from reid_bench.datasets.biwi import BIWI

    root = write_biwi(tmp_path, persons=2, test_persons=1, frames=12)
    frame = root / "Testing" / "Walking" / "001" / "00004_skel.txt"
    frame.write_text("\n".join(frame.read_text().splitlines()[:7]) + "\n")
    message = error_of(BIWI(root).load)
    assert "Testing/Walking/001/00004_skel.txt" in message and "expected 20 joint rows, found 7" in message


def test_biwi_folds_rank_still_against_walking_and_back(tmp_path):
    from reid_bench.datasets.biwi import BIWI

    records = Records(biwi=BIWI(write_biwi(tmp_path, persons=4, test_persons=3, frames=40)).load())
    s = K.BIWIRetrieval().build_fold("S", 0, records)
    w = K.BIWIRetrieval().build_fold("W", 0, records)
    assert s.info["split"]["query"] == w.info["split"]["gallery"] == [f"Still/{p:03d}" for p in (1, 2, 3)]
    assert s.info["split"]["train"] == [f"Training/{p:03d}" for p in range(1, 5)]
    # 10 frames trimmed at both ends of every sequence, training ones too: 40 -> 20
    assert len(s.query) == 3 * 3 and len(s.train) == 4 * _dense_training_windows(20)
    assert K.BIWIRetrieval.references["TranSG"]["S"]["mAP"] == 30.1


def test_d13_runs_biwi_end_to_end(cli, tracking_uri, tmp_path):
    write_biwi(tmp_path / "data", persons=4, test_persons=3, frames=40)
    result = cli("run", "--model", "d13", "--protocol", "biwi", "--data-root", str(tmp_path / "data"), "--no-ray",
                 "--seeds", "1", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    assert [t["fold"] for t in trials] == ["S", "W"] and all(0 <= t["metrics"]["mAP"] <= 1 for t in trials)
    info = cli("data", "verify", "biwi", "--data-root", str(tmp_path / "data"), "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["sessions"] == {"Still": 3, "Training": 4, "Walking": 3}
