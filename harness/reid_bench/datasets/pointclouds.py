"""Coloured point clouds as OG-Net releases them, and the OBJ / PLY / NPY readers they need.

OG-Net (Zheng et al., "Parameter-Efficient Person Re-identification in the 3D Space", code
layumi/person-reid-3d) lifts every 2D pedestrian image to 3D with a modified HMR
(layumi/hmr, ``generate_3D<DS>_bg.py``) and writes one cloud per image:

    <release>/<subset>/<pid folder>/<image file name>.obj      e.g.
    3DMarket+bg/train_all/0002/0002_c1s1_000451_03.jpg.obj

``<subset>`` is one of the folders of layumi's ``prepare*.py`` scripts: ``train_all`` (every
training image), ``train`` + ``val`` (the same images, split so that ``val`` holds the first
image of each identity), ``query`` and ``gallery``. The pid folder is the file name's first
``_`` field (``-1`` for Market-1501's junk, ``0000`` for its distractors). Each OBJ holds
``v x y z r g b`` lines (rgb in [0, 1]: pixel / 255) and a single ``f`` line that readers ignore.

A dataset subclasses :class:`PointCloudRelease` with a :class:`NamingRule` (how its image names
encode person and camera) and the release folder name; everything else is shared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from reid_bench.api import PointCloud
from reid_bench.datasets import DataFormatError, DatasetNotFoundError, FileDataset, data_files

CLOUD_SUFFIXES: tuple[str, ...] = (".obj", ".ply", ".npy")
#: Image extensions kept inside OG-Net's cloud names (``<image>.jpg.obj``); stripped before parsing.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
#: The folders layumi's prepare scripts create; ``train`` + ``val`` = ``train_all``.
SUBSETS: tuple[str, ...] = ("train", "train_all", "val", "query", "gallery")
TRAIN_SUBSETS: tuple[str, ...] = ("train", "train_all", "val")
TEST_SUBSETS: tuple[str, ...] = ("query", "gallery")


# --------------------------------------------------------------------------------------------
# Readers: each returns float32 [N, 6] = xyz + rgb in [0, 1], or raises DataFormatError.
# --------------------------------------------------------------------------------------------

_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]+([^\r\n]*)", re.MULTILINE)


def read_obj(path: Path | str) -> np.ndarray:
    """``v x y z r g b`` lines of a Wavefront OBJ; faces, normals, comments are ignored."""
    path = Path(path)
    data = path.read_bytes()
    found = _OBJ_VERTEX.findall(data)
    if not found:
        raise DataFormatError(path, "empty cloud: no 'v x y z r g b' vertex lines")
    try:  # fast path (C parser); any trouble is located line by line below
        points = np.loadtxt(found, dtype=np.float64, ndmin=2, comments="#")
    except ValueError:
        points = None
    if points is None or points.shape != (len(found), 6) or not _clean(points):
        _locate_obj_error(path, data)
        raise DataFormatError(path, "unreadable vertex data")  # not reached: the scan raises
    return points.astype(np.float32)


def _clean(points: np.ndarray) -> bool:
    return bool(np.isfinite(points).all() and (points[:, 3:] >= 0).all() and (points[:, 3:] <= 1).all())


def _locate_obj_error(path: Path, data: bytes) -> None:
    """Slow scan that raises the precise error (with its line number) the fast path hit."""
    for number, raw in enumerate(data.splitlines(), start=1):
        fields = raw.split(b"#", 1)[0].split()
        if not fields or fields[0] != b"v":
            continue
        values = fields[1:]
        if len(values) != 6:
            raise DataFormatError(path, f"vertex line has {len(values)} values, expected 6 (x y z r g b)", line=number)
        _check_row(path, values, number, "vertex")


def _check_row(path: Path, values: list, number: int | None, what: str, row: int | None = None) -> None:
    where = {"line": number} if number is not None else {}
    label = f"{what} {row}: " if row is not None else ""
    try:
        nums = [float(v) for v in values]
    except ValueError:
        text = b" ".join(values).decode("utf-8", "replace") if isinstance(values[0], bytes) else " ".join(values)
        raise DataFormatError(path, f"{label}non-numeric value in {text!r}", **where) from None
    if not all(np.isfinite(nums)):
        raise DataFormatError(path, f"{label}non-finite coordinate or colour (NaN/inf)", **where)
    rgb = nums[3:6]
    if any(c < 0.0 or c > 1.0 for c in rgb):
        raise DataFormatError(path, f"{label}colour {rgb} outside [0, 1]", **where)


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_PLY_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_PLY_COLUMNS = ("x", "y", "z", "red", "green", "blue")


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)  # (name, numpy code)
    has_list: bool = False


def read_ply(path: Path | str) -> np.ndarray:
    """Vertices of an ASCII or binary PLY with x, y, z, red, green, blue properties.

    Integer colours (``uchar`` as Open3D and most tools write them) are 0-255 and scaled to
    [0, 1]; float colours must already lie in [0, 1]. Other properties and elements are ignored.
    """
    path = Path(path)
    data = path.read_bytes()
    fmt, elements, body_start, header_lines = _ply_header(path, data)
    before = elements[: [e.name for e in elements].index("vertex")]
    vertex = next(e for e in elements if e.name == "vertex")
    names = [p[0] for p in vertex.properties]
    missing = [c for c in _PLY_COLUMNS if c not in names]
    if missing:
        raise DataFormatError(path, f"vertex element lacks properties {missing} (needs x y z red green blue)")
    if vertex.has_list:
        raise DataFormatError(path, "vertex element has a list property; only scalar properties are supported")
    if vertex.count == 0:
        raise DataFormatError(path, "empty cloud: 'element vertex 0'")
    if fmt == "ascii":
        table, first_line = _ply_ascii_vertices(path, data[body_start:], before, vertex, header_lines)
        cols = [table[:, names.index(c)] for c in _PLY_COLUMNS]
        points = np.stack(cols, axis=1)
        codes = dict(vertex.properties)
        points = _scale_colours(path, points, [codes[c] for c in _PLY_COLUMNS[3:]], first_line=first_line)
    else:
        order = _PLY_FORMATS[fmt]
        offset = body_start
        for elem in before:
            if elem.has_list:
                raise DataFormatError(path, f"element {elem.name!r} before 'vertex' has a list property; "
                                            "not supported in binary files")
            offset += elem.count * np.dtype([(n, order + c) for n, c in elem.properties]).itemsize
        dtype = np.dtype([(n, order + c) for n, c in vertex.properties])
        need = vertex.count * dtype.itemsize
        if len(data) - offset < need:
            have = max(0, (len(data) - offset) // dtype.itemsize)
            raise DataFormatError(path, f"truncated binary data: header declares {vertex.count} vertices, "
                                        f"file holds {have}")
        table = np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)
        points = np.stack([table[c].astype(np.float64) for c in _PLY_COLUMNS], axis=1)
        codes = dict(vertex.properties)
        points = _scale_colours(path, points, [codes[c] for c in _PLY_COLUMNS[3:]], first_line=None)
    return points.astype(np.float32)


def _ply_header(path: Path, data: bytes) -> tuple[str, list[_PlyElement], int, int]:
    end = re.search(rb"end_header[ \t]*\r?\n", data)
    if not data.startswith(b"ply") or end is None:
        raise DataFormatError(path, "not a PLY file: expected 'ply' ... 'end_header'", line=1)
    lines = data[: end.start()].decode("ascii", "replace").splitlines()
    fmt = None
    elements: list[_PlyElement] = []
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _PLY_FORMATS:
                raise DataFormatError(path, f"unknown PLY format {' '.join(words[1:])!r}", line=number)
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise DataFormatError(path, f"malformed element line {line!r}", line=number)
            elements.append(_PlyElement(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise DataFormatError(path, "property before any element", line=number)
            if len(words) >= 2 and words[1] == "list":
                if len(words) != 5 or words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
                    raise DataFormatError(path, f"malformed list property {line!r}", line=number)
                elements[-1].has_list = True
                elements[-1].properties.append((words[4], "list"))
            else:
                if len(words) != 3 or words[1] not in _PLY_TYPES:
                    raise DataFormatError(path, f"malformed property {line!r}", line=number)
                elements[-1].properties.append((words[2], _PLY_TYPES[words[1]]))
        else:
            raise DataFormatError(path, f"unexpected header line {line!r}", line=number)
    if fmt is None:
        raise DataFormatError(path, "PLY header has no 'format' line")
    if "vertex" not in [e.name for e in elements]:
        raise DataFormatError(path, "PLY header declares no 'vertex' element")
    return fmt, elements, end.end(), len(lines) + 1


def _ply_ascii_vertices(path: Path, body: bytes, before: list[_PlyElement], vertex: _PlyElement,
                        header_lines: int) -> tuple[np.ndarray, int]:
    lines = body.splitlines()
    skip = sum(e.count for e in before)
    first = header_lines + skip + 1  # file line number of the first vertex
    rows = lines[skip : skip + vertex.count]
    if len(rows) < vertex.count:
        raise DataFormatError(path, f"truncated: header declares {vertex.count} vertices, file has {len(rows)} "
                                    "vertex lines", line=header_lines + len(lines))
    width = len(vertex.properties)
    try:
        table = np.loadtxt(rows, dtype=np.float64, ndmin=2)
        ok = table.shape == (vertex.count, width) and np.isfinite(table).all()
    except ValueError:
        ok = False
    if not ok:
        for i, raw in enumerate(rows):
            values = raw.split()
            if len(values) != width:
                raise DataFormatError(path, f"vertex line has {len(values)} values, header declares {width}",
                                      line=first + i)
            try:
                nums = [float(v) for v in values]
            except ValueError:
                raise DataFormatError(path, f"non-numeric value in {raw.decode('utf-8', 'replace')!r}",
                                      line=first + i) from None
            if not all(np.isfinite(nums)):
                raise DataFormatError(path, "non-finite coordinate or colour (NaN/inf)", line=first + i)
        raise DataFormatError(path, "unreadable vertex data", line=first)
    return table, first


def _scale_colours(path: Path, points: np.ndarray, codes: list[str], first_line: int | None) -> np.ndarray:
    if not np.isfinite(points).all():
        row = int(np.argwhere(~np.isfinite(points))[0, 0])
        raise DataFormatError(path, f"vertex {row}: non-finite coordinate or colour (NaN/inf)",
                              line=None if first_line is None else first_line + row)
    for k, code in enumerate(codes):
        col = points[:, 3 + k]
        integer = code[0] in "iu"
        if integer:
            bad = np.flatnonzero((col < 0) | (col > 255))
        else:
            bad = np.flatnonzero((col < 0) | (col > 1))
        if len(bad):
            row = int(bad[0])
            bound = "0..255" if integer else "[0, 1]"
            raise DataFormatError(path, f"vertex {row}: {_PLY_COLUMNS[3 + k]} {col[row]:g} outside {bound}",
                                  line=None if first_line is None else first_line + row)
        if integer:
            points[:, 3 + k] = col / 255.0
    return points


def read_npy(path: Path | str) -> np.ndarray:
    """A float array [N, 6] (xyz, rgb in [0, 1]) saved with ``np.save``; never unpickled."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays, pickles, corrupt headers
        raise DataFormatError(path, f"not a plain numeric .npy array ({exc})") from None
    except EOFError:
        raise DataFormatError(path, "truncated or empty .npy file") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise DataFormatError(path, f"expected a float array [N, 6], got dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise DataFormatError(path, f"expected shape [N, 6] (x y z r g b), got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise DataFormatError(path, "empty cloud: 0 points")
    bad_rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if len(bad_rows):
        raise DataFormatError(path, f"row {int(bad_rows[0])}: non-finite coordinate or colour (NaN/inf)")
    rgb = arr[:, 3:]
    bad_rows = np.flatnonzero(((rgb < 0) | (rgb > 1)).any(axis=1))
    if len(bad_rows):
        row = int(bad_rows[0])
        raise DataFormatError(path, f"row {row}: colour {rgb[row].tolist()} outside [0, 1]")
    return arr.astype(np.float32)


_READERS = {".obj": read_obj, ".ply": read_ply, ".npy": read_npy}


def read_cloud(path: Path | str) -> np.ndarray:
    """Dispatch on the file extension (``.obj``, ``.ply``, ``.npy``)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataFormatError(path, f"unknown point-cloud extension {path.suffix!r}; expected one of "
                                    f"{', '.join(CLOUD_SUFFIXES)}")
    return reader(path)


def image_name(cloud_file: str) -> str:
    """``0002_c1s1_000451_03.jpg.obj`` -> ``0002_c1s1_000451_03`` (the original image's stem)."""
    stem = cloud_file
    for suffix in CLOUD_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for suffix in IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


# --------------------------------------------------------------------------------------------
# Image naming rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamingRule:
    """How a dataset's image names encode person and camera (regex groups ``pid`` and ``cam``).

    Camera ids are kept as written in the name (Market-1501 ``c1`` -> 1); torchreid subtracts 1,
    which changes nothing for retrieval since only camera equality matters.
    """

    dataset: str
    pattern: str
    example: str
    cameras: tuple[int, int]
    junk: bool = False
    """Whether person -1 (Market-1501's junk images) is a legal id."""

    def parse(self, name: str, path: Path | str) -> tuple[int, int]:
        match = re.match(self.pattern, name)
        if match is None:
            raise DataFormatError(path, f"image name {name!r} does not follow the {self.dataset} naming "
                                        f"(e.g. {self.example!r})")
        pid, cam = int(match["pid"]), int(match["cam"])
        if pid < 0 and not (self.junk and pid == -1):
            raise DataFormatError(path, f"person id {pid} is not valid in {self.dataset}")
        lo, hi = self.cameras
        if not lo <= cam <= hi:
            raise DataFormatError(path, f"camera {cam} outside {self.dataset}'s cameras {lo}..{hi}")
        return pid, cam


# --------------------------------------------------------------------------------------------
# The release layout
# --------------------------------------------------------------------------------------------


@dataclass
class ReleaseOptions:
    """Which part of an OG-Net-style release to read."""

    release: str = ""
    """Release folder under the dataset root; "" = the dataset's default (e.g. "3DMarket+bg").
    "3DMarket" / "3DDuke" read the releases without background points."""
    subsets: tuple[str, ...] = ("train_all", "query", "gallery")
    """Folders to read, of train, train_all, val, query, gallery (train + val = train_all, so
    reading train_all with train or val duplicates clouds)."""
    pid_mismatch: Literal["error", "file-name"] = "error"
    """A cloud whose person folder disagrees with its file name: "error", or "file-name" (trust the
    name, count it). layumi's prepare_MSMT.py copies every val image into one train_all folder
    (the last training identity's), so MSMT17 releases built with it need "file-name" there."""

    def __post_init__(self) -> None:
        self.subsets = tuple(self.subsets)
        unknown = [s for s in self.subsets if s not in SUBSETS]
        if unknown or not self.subsets:
            raise ValueError(f"subsets must be a non-empty selection of {', '.join(SUBSETS)}; got {list(self.subsets)}")
        if len(set(self.subsets)) != len(self.subsets):
            raise ValueError(f"subsets lists a folder twice: {list(self.subsets)}")
        if self.pid_mismatch not in ("error", "file-name"):
            raise ValueError(f"pid_mismatch must be 'error' or 'file-name', got {self.pid_mismatch!r}")


class PointCloudRelease(FileDataset):
    """A dataset released as OG-Net's ``<release>/<subset>/<pid>/<image>.<obj|ply|npy>`` tree."""

    modality = "pointcloud"
    options_class = ReleaseOptions
    loader_version = "1"
    naming: ClassVar[NamingRule]
    release_folder: ClassVar[str]
    domain: ClassVar[str]
    test_person_offset: ClassVar[int] = 0
    """Added to the person ids of query/gallery clouds where a dataset numbers its train and test
    halves independently (MSMT17), so that ``person`` names one person across the dataset."""

    def __init__(self, root: Path | None = None, options: ReleaseOptions | None = None) -> None:
        super().__init__(root, options)
        self._listing: list[tuple[str, str, Path]] | None = None
        self._hidden = 0

    # -- layout
    def release_root(self) -> Path:
        """``<root>/<release>``, or ``<root>`` itself when it directly holds the subset folders."""
        root = self.require_root()
        name = self.options.release or self.release_folder
        candidate = root / name
        if candidate.is_dir():
            return candidate
        if any((root / s).is_dir() for s in SUBSETS):
            return root
        raise DatasetNotFoundError(
            f"{type(self).__name__}: no release folder {candidate} (nor subset folders {', '.join(SUBSETS)} "
            f"directly under {root}). Obtain the data from: {self.obtain}"
        )

    def listing(self) -> list[tuple[str, str, Path]]:
        """(subset, person folder, file) for every file of the selected subsets, sorted."""
        if self._listing is not None:
            return self._listing
        base = self.release_root()
        out: list[tuple[str, str, Path]] = []
        hidden = 0
        for subset in self.options.subsets:
            folder = base / subset
            if not folder.is_dir():
                present = sorted(p.name for p in base.iterdir() if p.is_dir())
                raise DatasetNotFoundError(
                    f"subset folder {folder} does not exist (found: {', '.join(present) or 'nothing'}). "
                    f"Obtain the data from: {self.obtain}"
                )
            for person_dir in sorted(folder.iterdir()):
                if person_dir.name.startswith("."):  # .DS_Store and the like
                    hidden += 1
                    continue
                if not person_dir.is_dir():
                    raise DataFormatError(person_dir, f"expected one folder per person inside {subset}/, found a file")
                entries = sorted(person_dir.iterdir())
                files = data_files((p for p in entries if not p.name.startswith(".")),
                                   "a point cloud (every entry of a person folder is one)")
                hidden += len(entries) - len(files)
                if not files:
                    raise DataFormatError(person_dir, "person folder holds no point clouds")
                out.extend((subset, person_dir.name, f) for f in files)
        self._listing = out
        self._hidden = hidden
        return out

    def source_files(self) -> list[Path]:
        return [f for _, _, f in self.listing()]

    # -- parsing
    def identify(self, subset: str, person_folder: str, path: Path, count: bool = True) -> tuple[int, int]:
        """(person, camera) of one cloud from its file name, checked against its person folder."""
        if path.is_dir():
            raise DataFormatError(path, "unexpected folder inside a person folder")
        if path.suffix.lower() not in CLOUD_SUFFIXES:
            raise DataFormatError(path, f"unknown point-cloud extension {path.suffix!r}; expected one of "
                                        f"{', '.join(CLOUD_SUFFIXES)}")
        pid, cam = self.naming.parse(image_name(path.name), path)
        if not re.fullmatch(r"-?\d+", person_folder) or int(person_folder) != pid:
            if self.options.pid_mismatch == "error":
                raise DataFormatError(path, f"file name says person {pid} but it lies in person folder "
                                            f"{person_folder!r} (--set data.pid_mismatch=file-name trusts the name)")
            if count:
                self.drop("clouds filed under another person's folder (person taken from the file name)")
        if subset in TEST_SUBSETS:
            pid = pid + self.test_person_offset if pid >= 0 else pid
        return pid, cam

    def read(self) -> list[PointCloud]:
        records = []
        listing = self.listing()
        if self._hidden:
            self.drop("hidden files ignored (names starting with '.')", self._hidden)
        for subset, person_folder, path in listing:
            person, camera = self.identify(subset, person_folder, path)
            points = read_cloud(path)
            records.append(PointCloud(points, person=person, camera=camera, source=str(path), subset=subset,
                                      domain=self.domain))
        return records

    def verify(self) -> list[str]:
        """Checks on file names across subsets: disjoint train/test people, query people findable in
        the gallery from another camera, and train + val = train_all where those folders exist."""
        problems: list[str] = []
        ids: dict[str, set[int]] = {}
        seen: dict[str, dict[int, set[int]]] = {}
        for subset, folder, path in self.listing():
            person, camera = self.identify(subset, folder, path, count=False)
            ids.setdefault(subset, set()).add(person)
            seen.setdefault(subset, {}).setdefault(person, set()).add(camera)
        train = set().union(*(ids.get(s, set()) for s in TRAIN_SUBSETS))
        test = set().union(*(ids.get(s, set()) for s in TEST_SUBSETS)) - {-1}
        shared = sorted(train & test)
        if shared:
            problems.append(f"{len(shared)} identities appear in both training and test folders: {shared[:10]}")
        if "query" in seen and "gallery" in seen:
            unmatched = sorted(p for p, cams in seen["query"].items()
                               if p != -1 and any(not (seen["gallery"].get(p, set()) - {c}) for c in cams))
            if unmatched:
                problems.append(f"{len(unmatched)} query identities have no gallery cloud from another camera: "
                                f"{unmatched[:10]}")
        base = self.release_root()
        names = {s: {p.name for d in (base / s).iterdir() if d.is_dir() for p in d.iterdir()}
                 for s in TRAIN_SUBSETS if (base / s).is_dir()}
        if {"train", "val", "train_all"} <= names.keys():
            if names["train"] | names["val"] != names["train_all"]:
                extra = len((names["train"] | names["val"]) ^ names["train_all"])
                problems.append(f"train + val differ from train_all by {extra} files")
        return problems
