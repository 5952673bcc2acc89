"""OG-Net point-cloud releases (OBJ / PLY / NPY), their image naming, and OG-Net's protocols."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from formats_pointclouds import (FORMATS, write_cuhk03np3d, write_duke3d, write_market3d, write_msmt3d,
                                 write_npy, write_obj, write_ply)
from reid_bench.api import DataAccess
from reid_bench.config import apply_overrides
from reid_bench.datasets import DataFormatError, DatasetNotFoundError
from reid_bench.datasets.lifted_images import CUHK03NPCloud, DukeMTMCCloud, Market1501Cloud, MSMT17Cloud
from reid_bench.datasets.pointclouds import ReleaseOptions, image_name, read_cloud
from reid_bench.protocols import lifted_images as P

CLASSES = {"market1501-3d": Market1501Cloud, "dukemtmc-3d": DukeMTMCCloud, "msmt17-3d": MSMT17Cloud,
           "cuhk03np-3d": CUHK03NPCloud}
WRITERS = {"market1501-3d": write_market3d, "dukemtmc-3d": write_duke3d, "msmt17-3d": write_msmt3d,
           "cuhk03np-3d": write_cuhk03np3d}
ALL_SUBSETS = ("train", "train_all", "val", "query", "gallery")


def _load(written, cls, **options):
    return cls(root=written.root, options=ReleaseOptions(**options)).load()


def _by_source(records):
    return {r.source: r for r in records}


# ------------------------------------------------------------------------------ image naming

# Each name is parsed the way torchreid does it (Market/Duke/CUHK03-NP: ``([-\d]+)_c(\d)``;
# MSMT17: camera = ``split('_')[2]``), keeping the camera as written (torchreid subtracts 1).
@pytest.mark.parametrize("cls, name, expected", [
    (Market1501Cloud, "0002_c1s1_000451_03", (2, 1)),
    (Market1501Cloud, "-1_c3s2_012345_01", (-1, 3)),
    (Market1501Cloud, "0000_c6s4_002202_07", (0, 6)),
    (DukeMTMCCloud, "0005_c2_f0046985", (5, 2)),
    (DukeMTMCCloud, "7140_c8_f0172843", (7140, 8)),
    (MSMT17Cloud, "0000_000_01_0303morning_0015_0", (0, 1)),
    (MSMT17Cloud, "3059_045_15_0113noon_0806_1", (3059, 15)),
    (CUHK03NPCloud, "0001_c1_1", (1, 1)),
    (CUHK03NPCloud, "1467_c2_10", (1467, 2)),
])
def test_image_names_parse_like_torchreid(cls, name, expected):
    assert cls.naming.parse(name, "x") == expected
    if cls is MSMT17Cloud:
        assert int(name.split("_")[2]) == expected[1] and int(name[:4]) == expected[0]
    else:
        assert tuple(map(int, re.search(r"([-\d]+)_c(\d)", name).groups())) == expected


@pytest.mark.parametrize("cls, name, message", [
    (Market1501Cloud, "0002_c7s1_000451_03", "camera 7 outside"),
    (Market1501Cloud, "-2_c1s1_000451_03", "person id -2"),
    (DukeMTMCCloud, "-1_c1_f0000001", "person id -1"),
    (DukeMTMCCloud, "0005_c9_f0046985", "camera 9 outside"),
    (MSMT17Cloud, "0001_000_16_0303morning_0015_0", "camera 16 outside"),
    (MSMT17Cloud, "0002_c1s1_000451_03", "does not follow the MSMT17 naming"),
    (CUHK03NPCloud, "0001_c3_1", "camera 3 outside"),
    (Market1501Cloud, "img_0001", "does not follow the Market-1501 naming"),
])
def test_bad_image_names_are_errors(cls, name, message):
    with pytest.raises(DataFormatError, match=message):
        cls.naming.parse(name, "/data/x.obj")


def test_image_name_strips_cloud_and_image_extensions():
    assert image_name("0002_c1s1_000451_03.jpg.obj") == "0002_c1s1_000451_03"
    assert image_name("0001_c1_1.png.ply") == "0001_c1_1"
    assert image_name("0005_c2_f0046985.npy") == "0005_c2_f0046985"


# ------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("dataset", sorted(CLASSES))
def test_release_loads_every_subset_with_ids_cameras_and_points(tmp_path, dataset):
    written = WRITERS[dataset](tmp_path, cameras=2)
    records = _load(written, CLASSES[dataset], subsets=ALL_SUBSETS)
    assert len(records) == len(written.clouds)
    got = _by_source(records)
    for cloud in written.clouds:
        rec = got[str(cloud["file"])]
        assert (rec.person, rec.camera, rec.subset) == (cloud["person"], cloud["camera"], cloud["subset"])
        assert rec.domain == CLASSES[dataset].domain
        assert rec.points.dtype == np.float32 and rec.points.shape == cloud["points"].shape
        np.testing.assert_allclose(rec.points, cloud["points"], atol=1e-5)
    counts = {s: sum(r.subset == s for r in records) for s in ALL_SUBSETS}
    assert counts["train_all"] == 4 * 2 * 2 == counts["train"] + counts["val"]
    assert counts["val"] == 4  # the first image of every training identity
    assert counts["query"] == 4 * 2  # one per test identity and camera


@pytest.mark.parametrize("fmt", FORMATS)
def test_obj_ply_and_npy_releases_read_the_same_clouds(tmp_path, fmt):
    written = write_market3d(tmp_path, fmt=fmt, identities=2, cameras=2)
    records = _load(written, Market1501Cloud)
    suffix = ".npy" if fmt == "npy" else ".ply" if fmt.startswith("ply") else ".obj"
    assert all(r.source.endswith(".jpg" + suffix) for r in records)
    expected = {str(c["file"]): c["points"] for c in written.clouds}
    for rec in records:
        np.testing.assert_allclose(rec.points, expected[rec.source], atol=1e-5)
        assert rec.points[:, 3:].min() >= 0 and rec.points[:, 3:].max() <= 1


def test_default_subsets_are_train_all_query_gallery_and_folder_is_the_subset(tmp_path):
    written = write_market3d(tmp_path)
    records = _load(written, Market1501Cloud)
    assert {r.subset for r in records} == {"train_all", "query", "gallery"}
    assert ReleaseOptions().subsets == ("train_all", "query", "gallery")
    split = _load(written, Market1501Cloud, subsets=("train", "val"))
    names = lambda recs: sorted(Path(r.source).name for r in recs)  # noqa: E731
    assert names(split) == names([r for r in records if r.subset == "train_all"])


def test_market_junk_and_distractors_are_kept_in_the_gallery(tmp_path):
    records = _load(write_market3d(tmp_path, junk=2, distractors=3), Market1501Cloud)
    gallery = [r for r in records if r.subset == "gallery"]
    assert sum(r.person == -1 for r in gallery) == 2 and sum(r.person == 0 for r in gallery) == 3
    assert all(r.person > 0 for r in records if r.subset != "gallery")
    junk = [r for r in gallery if r.person == -1][0]
    assert Path(junk.source).parent.name == "-1" and Path(junk.source).name.startswith("-1_c")


def test_msmt_test_identities_are_offset_so_they_never_meet_training_ids(tmp_path):
    written = write_msmt3d(tmp_path)
    records = _load(written, MSMT17Cloud)
    train = {r.person for r in records if r.subset == "train_all"}
    test = {r.person for r in records if r.subset in ("query", "gallery")}
    assert train == {0, 1, 2, 3} and test == {10000, 10001, 10002, 10003}
    query = [r for r in records if r.subset == "query"][0]
    assert query.person - 10000 == int(Path(query.source).name[:4])


def test_cuhk03np_clouds_keep_the_png_image_name(tmp_path):
    records = _load(write_cuhk03np3d(tmp_path), CUHK03NPCloud)
    assert all(r.source.endswith(".png.obj") for r in records)
    assert {r.camera for r in records} == {1, 2}


def test_release_folder_may_be_the_dataset_root(tmp_path):
    written = write_duke3d(tmp_path, release="")
    assert (written.root / "query").is_dir()
    assert len(_load(written, DukeMTMCCloud)) == len([c for c in written.clouds if c["subset"] != "train"
                                                      and c["subset"] != "val"])


def test_no_background_release_is_chosen_by_option(tmp_path):
    written = write_market3d(tmp_path, release="3DMarket", identities=1, cameras=2)
    records = _load(written, Market1501Cloud, release="3DMarket")
    assert all("/3DMarket/" in r.source for r in records)


def test_missing_data_names_the_folder_it_looked_in(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        Market1501Cloud(root=tmp_path / "market1501-3d").load()
    (tmp_path / "market1501-3d" / "elsewhere").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "market1501-3d" / "3DMarket+bg"))):
        Market1501Cloud(root=tmp_path / "market1501-3d").load()
    written = write_market3d(tmp_path / "b", identities=1)
    shutil.rmtree(written.release / "gallery")
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(written.release / "gallery"))):
        _load(written, Market1501Cloud)


def test_options_are_validated_and_settable_from_the_command_line():
    with pytest.raises(ValueError, match="subsets"):
        ReleaseOptions(subsets=("train_all", "test"))
    with pytest.raises(ValueError, match="twice"):
        ReleaseOptions(subsets=("query", "query"))
    opts = apply_overrides(ReleaseOptions(), {"subsets": "train,val", "pid_mismatch": "file-name"}, "dataset")
    assert opts.subsets == ("train", "val") and opts.pid_mismatch == "file-name"


def test_checksum_follows_the_selected_subsets_and_loading_is_deterministic(tmp_path):
    written = write_market3d(tmp_path, identities=2)
    a = Market1501Cloud(root=written.root)
    b = Market1501Cloud(root=written.root, options=ReleaseOptions(subsets=("query", "gallery")))
    assert a.checksum() != b.checksum()
    first, second = a.load(), Market1501Cloud(root=written.root).load()
    assert [r.source for r in first] == [r.source for r in second]
    assert all(np.array_equal(x.points, y.points) for x, y in zip(first, second))


def test_hidden_files_are_ignored_and_counted(tmp_path):
    written = write_market3d(tmp_path, identities=1)
    (written.release / "query" / ".DS_Store").write_bytes(b"\0")
    (written.release / "gallery" / "0001" / "._0001_c1s1.jpg.obj").write_bytes(b"\0")
    ds = Market1501Cloud(root=written.root)
    ds.load()
    assert ds.drop_report() == {"hidden files ignored (names starting with '.')": 2}


# ------------------------------------------------------------------------------ bad input


def _first_obj(written, subset="query"):
    return next(c["file"] for c in written.clouds if c["subset"] == subset)


def _rewrite_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("line, message", [
    ("v 0.1 0.2 0.3 0.5", "vertex line has 4 values, expected 6"),
    ("v 0.1 0.2 0.3 0.5 0.5 0.5 0.5", "vertex line has 7 values"),
    ("v 0.1 abc 0.3 0.5 0.5 0.5", "non-numeric value in '0.1 abc 0.3 0.5 0.5 0.5'"),
    ("v 0.1 nan 0.3 0.5 0.5 0.5", r"non-finite coordinate or colour \(NaN/inf\)"),
    ("v 0.1 0.2 inf 0.5 0.5 0.5", "non-finite"),
    ("v 0.1 0.2 0.3 1.5 0.5 0.5", r"colour \[1.5, 0.5, 0.5\] outside \[0, 1\]"),
    ("v 0.1 0.2 0.3 0.5 -0.1 0.5", r"colour \[0.5, -0.1, 0.5\] outside \[0, 1\]"),
])
def test_bad_obj_lines_name_file_and_line(tmp_path, line, message):
    written = write_market3d(tmp_path, identities=1)
    path = _first_obj(written)
    _rewrite_line(path, 3, line)
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}:3: {message}") as err:
        _load(written, Market1501Cloud)
    assert err.value.line == 3 and err.value.path == str(path)


def test_obj_without_vertices_is_an_empty_cloud(tmp_path):
    written = write_market3d(tmp_path, identities=1)
    path = _first_obj(written, "gallery")
    path.write_text("# exported\nf 1 2 3\n")
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: empty cloud"):
        _load(written, Market1501Cloud)


def test_obj_ignores_faces_normals_and_comments(tmp_path):
    path = tmp_path / "x.jpg.obj"
    path.write_text("# comment\nmtllib a.mtl\nv 1 2 3 0 0.5 1\nvn 0 0 1\nvt 0.5 0.5\nv 4 5 6 1 1 1 # tail\nf 1 2 1\n")
    np.testing.assert_allclose(read_cloud(path), [[1, 2, 3, 0, 0.5, 1], [4, 5, 6, 1, 1, 1]])


def test_person_folder_must_match_the_file_name(tmp_path):
    written = write_market3d(tmp_path, identities=2)
    path = _first_obj(written)
    moved = path.parent.parent / "0003" / path.name
    moved.parent.mkdir(exist_ok=True)
    path.rename(moved)
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(moved))}: file name says person 1 but it lies in "
                                              "person folder '0003'"):
        _load(written, Market1501Cloud)
    records = _load(written, Market1501Cloud, pid_mismatch="file-name")
    assert _by_source(records)[str(moved)].person == 1
    ds = Market1501Cloud(root=written.root, options=ReleaseOptions(pid_mismatch="file-name"))
    ds.load()
    assert ds.drop_report() == {"clouds filed under another person's folder (person taken from the file name)": 1}


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "0001" / "0001_c1s1_000001_01.jpg.txt").write_text("v 0 0 0 0 0 0\n"),
     "unknown point-cloud extension '.txt'"),
    (lambda d: (d / "0001" / "0001_c1s1_000001_01.jpg").write_bytes(b"\xff\xd8"),
     "unknown point-cloud extension '.jpg'"),
    (lambda d: (d / "0001" / "snapshot.jpg.obj").write_text("v 0 0 0 0 0 0\n"), "does not follow the Market-1501"),
    (lambda d: (d / "0001" / "0001_c9s1_000001_01.jpg.obj").write_text("v 0 0 0 0 0 0\n"), "camera 9 outside"),
    (lambda d: (d / "0042").mkdir(), "person folder holds no point clouds"),
    (lambda d: (d / "notes.txt").write_text("hi"), "expected one folder per person"),
])
def test_bad_files_in_the_tree_are_errors_naming_them(tmp_path, make, message):
    written = write_market3d(tmp_path, identities=1)
    make(written.release / "query")
    with pytest.raises(DataFormatError, match=message) as err:
        _load(written, Market1501Cloud)
    assert str(written.release / "query") in str(err.value)


def _ply_case(tmp_path, binary=False):
    points = np.array([[0.1, 0.2, 0.3, 0.0, 0.5, 1.0], [1, 2, 3, 1, 1, 1], [4, 5, 6, 0.2, 0.4, 0.6]])
    points[:, 3:] = np.rint(points[:, 3:] * 255) / 255
    path = tmp_path / "0001_c1_1.png.ply"
    write_ply(path, points, binary=binary)
    return path, points


@pytest.mark.parametrize("binary", [False, True])
def test_ply_scales_uchar_colours(tmp_path, binary):
    path, points = _ply_case(tmp_path, binary)
    np.testing.assert_allclose(read_cloud(path), points, atol=1e-6)


def test_ply_errors(tmp_path):
    path, _ = _ply_case(tmp_path)
    text = path.read_bytes()
    header_end = text.index(b"end_header\n") + len(b"end_header\n")
    header_lines = text[:header_end].count(b"\n")

    path.write_bytes(text.replace(b"property uchar green\n", b""))
    with pytest.raises(DataFormatError, match=r"lacks properties \['green'\]"):
        read_cloud(path)
    path.write_bytes(text.replace(b"format ascii 1.0", b"format utf8 1.0"))
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}:2: unknown PLY format"):
        read_cloud(path)
    body = text[header_end:].splitlines(keepends=True)
    path.write_bytes(text[:header_end] + body[0] + b"1 two 3 4 5 6\n" + b"".join(body[2:]))
    with pytest.raises(DataFormatError, match=f":{header_lines + 2}: non-numeric value in '1 two 3 4 5 6'"):
        read_cloud(path)
    path.write_bytes(text[:header_end] + body[0])
    with pytest.raises(DataFormatError, match="truncated: header declares 3 vertices, file has 1"):
        read_cloud(path)
    path.write_bytes(text[:header_end] + b"0 0 0 0 0 300\n" + b"".join(body[1:]))
    with pytest.raises(DataFormatError, match=f":{header_lines + 1}: vertex 0: blue 300 outside 0..255"):
        read_cloud(path)
    path.write_bytes(text.replace(b"element vertex 3", b"element vertex 0"))
    with pytest.raises(DataFormatError, match="empty cloud"):
        read_cloud(path)
    path.write_bytes(b"solid mesh\n")
    with pytest.raises(DataFormatError, match="not a PLY file"):
        read_cloud(path)

    (tmp_path / "binary").mkdir()
    bpath, _ = _ply_case(tmp_path / "binary", binary=True)
    data = bpath.read_bytes()
    vertex_bytes = 3 * 4 + 3  # float x y z, uchar red green blue
    bpath.write_bytes(data[: data.index(b"end_header\n") + 11 + 2 * vertex_bytes + 4])
    with pytest.raises(DataFormatError, match="truncated binary data: header declares 3 vertices, file holds 2"):
        read_cloud(bpath)


def test_ply_float_colours_must_already_be_in_unit_range(tmp_path):
    path = tmp_path / "a.ply"
    header = (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
              b"property float red\nproperty float green\nproperty float blue\nend_header\n")
    path.write_bytes(header + b"0 0 0 0.5 0.5 0.5\n0 0 0 0.5 1.2 0.5\n")
    with pytest.raises(DataFormatError, match=":12: vertex 1: green 1.2 outside"):
        read_cloud(path)
    path.write_bytes(header + b"0 0 0 0.5 0.5 0.5\n1 1 1 0.25 1 0\n")
    np.testing.assert_allclose(read_cloud(path), [[0, 0, 0, 0.5, 0.5, 0.5], [1, 1, 1, 0.25, 1, 0]])


@pytest.mark.parametrize("array, message", [
    (np.zeros((5, 3), np.float32), r"expected shape \[N, 6\]"),
    (np.zeros((0, 6), np.float32), "empty cloud"),
    (np.zeros((4, 6), np.int64), "expected a float array"),
    (np.array([[0, 0, 0, 0.5, 0.5, 0.5], [0, np.nan, 0, 0.5, 0.5, 0.5]]), "row 1: non-finite"),
    (np.array([[0, 0, 0, 0.5, 0.5, 0.5], [0, 0, 0, 0.5, 2.0, 0.5]]), r"row 1: colour \[0.5, 2.0, 0.5\] outside"),
])
def test_bad_npy_arrays(tmp_path, array, message):
    path = tmp_path / "0002_c1s1_000451_03.jpg.npy"
    np.save(path, array)
    with pytest.raises(DataFormatError, match=f"^{re.escape(str(path))}: {message}"):
        read_cloud(path)


def test_npy_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"points": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="not a plain numeric .npy array"):
        read_cloud(path)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_cloud(path)


def test_npy_round_trip(tmp_path):
    points = np.random.default_rng(0).random((10, 6))
    write_npy(tmp_path / "c.npy", points)
    np.testing.assert_allclose(read_cloud(tmp_path / "c.npy"), points, atol=1e-7)
    write_obj(tmp_path / "c.obj", points, face=False)
    np.testing.assert_allclose(read_cloud(tmp_path / "c.obj"), points, atol=1e-6)


# ------------------------------------------------------------------------------ verify


def test_verify_checks_identities_and_train_val_consistency(tmp_path):
    written = write_market3d(tmp_path, cameras=2)
    ds = Market1501Cloud(root=written.root, options=ReleaseOptions(subsets=ALL_SUBSETS))
    assert ds.verify() == []
    # a test person leaks into training, a query loses its gallery match, val gets an extra file
    leak = _first_obj(written, "query")
    target = written.release / "train_all" / leak.parent.name / leak.name
    target.parent.mkdir()
    shutil.copy(leak, target)
    for cloud in written.subset("gallery"):
        if cloud["person"] == 3:
            cloud["file"].unlink()
    shutil.rmtree(written.release / "gallery" / "0003")
    problems = Market1501Cloud(root=written.root, options=ReleaseOptions(subsets=ALL_SUBSETS)).verify()
    assert any("identities appear in both training and test folders: [1]" in p for p in problems)
    assert any("query identities have no gallery cloud from another camera: [3]" in p for p in problems)
    assert any("train + val differ from train_all by 1 files" in p for p in problems)


# ------------------------------------------------------------------------------ protocols


class FolderData(DataAccess):
    """Loads the fixture folders directly, recording what each protocol asked for."""

    def __init__(self, data_root: Path):
        self.data_root = data_root
        self.calls: list[tuple[str, dict]] = []

    def load(self, dataset, **options):
        self.calls.append((dataset, options))
        return CLASSES[dataset](root=self.data_root / dataset, options=ReleaseOptions(**options)).load()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("clouds")
    for name, writer in WRITERS.items():
        writer(root, fmt="npy" if name == "msmt17-3d" else "obj", cameras=2)
    return root


def test_market3d_fold(data_root):
    data = FolderData(data_root)
    fold = P.Market3D().build_fold("all", 0, data)
    assert data.calls == [("market1501-3d", {"subsets": ("train_all", "query", "gallery")})] * 2
    train, query, gallery = fold.train, fold.query, fold.gallery
    assert len(train) == 4 * 2 * 2 and sorted(set(train.person)) == [2, 4, 6, 8]
    assert sorted(set(train.labels)) == [0, 1, 2, 3]
    assert len(query) == 8 and len(gallery) == 8 + 1  # one distractor kept, the junk image dropped
    assert -1 not in gallery.person and (gallery.person == 0).sum() == 1
    assert set(query.labels) == set(gallery.labels) == {-1}  # test people are never training classes
    assert not set(train.person) & (set(query.person) | set(gallery.person))
    assert set(query.camera) == {1, 2}
    assert query.data.shape[1:] == train.data.shape[1:] and train.data.shape[2] == 6
    assert fold.info["gallery_junk_dropped"] == 1 and fold.info["gallery_distractors"] == 1
    assert fold.info["split"] == {"train": "market1501-3d/train_all", "query": "market1501-3d/query",
                                  "gallery": "market1501-3d/gallery"}
    json.dumps(fold.info)
    again = P.Market3D().build_fold("all", 0, FolderData(data_root))
    np.testing.assert_array_equal(again.train.data, train.data)
    np.testing.assert_array_equal(again.gallery.data, gallery.data)


@pytest.mark.parametrize("protocol, dataset, test_people", [
    (P.Duke3D, "dukemtmc-3d", {1, 3, 5, 7, 5001}),
    (P.MSMT3D, "msmt17-3d", {10000, 10001, 10002, 10003}),
    (P.CUHK03NP3D, "cuhk03np-3d", {1, 3, 5, 7}),
])
def test_same_dataset_folds(data_root, protocol, dataset, test_people):
    fold = protocol().build_fold("all", 1, FolderData(data_root))
    assert protocol.datasets == (dataset,) and protocol.main_score == "mAP" and protocol.filter_same_camera
    assert set(fold.query.person) | set(fold.gallery.person) == test_people
    assert not set(fold.train.person) & test_people
    assert fold.info["train_identities"] == 4


@pytest.mark.parametrize("protocol, source, target", [
    (P.Market3DToDuke3D, "market1501-3d", "dukemtmc-3d"),
    (P.Duke3DToMarket3D, "dukemtmc-3d", "market1501-3d"),
    (P.Market3DToMSMT3D, "market1501-3d", "msmt17-3d"),
])
def test_direct_transfer_folds(data_root, protocol, source, target):
    data = FolderData(data_root)
    fold = protocol().build_fold("all", 0, data)
    assert data.calls == [(source, {"subsets": ("train_all",)}), (target, {"subsets": ("query", "gallery")})]
    assert protocol.datasets == (source, target)
    assert fold.info["split"]["train"] == f"{source}/train_all"
    assert fold.info["split"]["gallery"] == f"{target}/gallery"
    assert len(fold.train) == 16 and set(fold.query.labels) == {-1}
    assert protocol.references == {}


def test_same_dataset_protocol_refuses_shared_identities(tmp_path):
    written = write_cuhk03np3d(tmp_path, identities=2)
    leak = _first_obj(written, "gallery")
    target = written.release / "train_all" / leak.parent.name / leak.name
    target.parent.mkdir()
    shutil.copy(leak, target)
    with pytest.raises(ValueError, match=r"identities \[1\] occur in both train_all and query/gallery"):
        P.CUHK03NP3D().build_fold("all", 0, FolderData(tmp_path))


@pytest.mark.parametrize("protocol", [P.Market3D, P.Duke3D, P.MSMT3D, P.CUHK03NP3D],
                         ids=lambda protocol: protocol.__name__)
def test_references_are_og_nets_single_fold_numbers(protocol):
    known = {"OG-Net", "OG-Net-Small", "OG-Net-Deep", "OG-Net + Circle", "OG-Net-Small + Circle", "OG-Net-Deep + Circle"}
    # OG-Net's numbers; on Market-1501 also PointReIDNet's, from layumi's 3D leaderboard
    extra = {"PointReIDNet", "PointReIDNet-efficient"} if protocol is P.Market3D else set()
    assert protocol.references and set(protocol.references) <= known | extra
    for per_fold in protocol.references.values():
        assert set(per_fold) == {"all"}
        assert all(0 < v < 100 for v in per_fold["all"].values()) and set(per_fold["all"]) == {"rank1", "map_trapz"}
    assert "5a0bda93931258e70c3aa8db6cd6c30b608781f7" in protocol.reference_source


def test_fold_names_and_references():
    with pytest.raises(ValueError, match="no fold 'A'"):
        P.Market3D().build_fold("A", 0, FolderData(Path("/nonexistent")))
    assert P.Market3D.references["OG-Net"]["all"] == {"rank1": 86.82, "map_trapz": 69.02}  # the release's trapezoid AP
    assert P.MSMT3D.references["OG-Net-Deep + Circle"]["all"] == {"rank1": 47.32, "map_trapz": 24.07}
    assert P.Market3D.reference_score == "map_trapz"


# ------------------------------------------------------------------------------ harness integration


class _Registry:
    def dataset(self, name):
        return CLASSES[name]


def test_harness_cache_round_trips_clouds(tmp_path, data_root):
    from reid_bench.trial import HarnessData

    cold = HarnessData(_Registry(), str(data_root), {"market1501-3d": {}}, cache_dir=tmp_path / "cache")
    first = cold.load("market1501-3d", subsets=("train_all", "query", "gallery"))
    warm = HarnessData(_Registry(), str(data_root), {"market1501-3d": {}}, cache_dir=tmp_path / "cache")
    second = warm.load("market1501-3d", subsets=["train_all", "query", "gallery"])
    assert list(cold.cache_hits.values()) == [False] and list(warm.cache_hits.values()) == [True]
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert (a.person, a.camera, a.subset, a.domain, a.source) == (b.person, b.camera, b.subset, b.domain, b.source)
        np.testing.assert_array_equal(a.points, b.points)


def test_ply_big_endian_with_extra_properties(tmp_path):
    import struct

    header = (b"ply\nformat binary_big_endian 1.0\nobj_info from a scanner\nelement vertex 2\n"
              b"property double x\nproperty double y\nproperty double z\nproperty float nx\n"
              b"property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\nend_header\n")
    body = struct.pack(">dddfBBBB", 1, 2, 3, 0.5, 255, 0, 51, 9) + struct.pack(">dddfBBBB", 4, 5, 6, 0.5, 0, 255, 0, 9)
    path = tmp_path / "a.ply"
    path.write_bytes(header + body)
    np.testing.assert_allclose(read_cloud(path), [[1, 2, 3, 1, 0, 0.2], [4, 5, 6, 0, 1, 0]], atol=1e-7)
