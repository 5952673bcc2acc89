"""The generic on-disk format: bring any skeleton or point-cloud dataset without writing a plugin.

A folder ``<data-root>/<name>`` holds ``dataset.toml`` (modality, layout, optional protocol
settings), ``manifest.csv`` (one row per sample: path, person, view, condition, session, split)
and the arrays (``.npy`` or ``.csv``). docs/generic-format.md is the user's description; this
module is its only reader, used both by the ``generic`` datasets and by ``import_dataset``,
which validates a user's files and writes such a folder atomically.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from reid_bench.api import Layout, PointCloud, Record, SkeletonSequence
from reid_bench.datasets import DataFormatError, DatasetNotFoundError, FileDataset

MANIFEST = "manifest.csv"
SETTINGS = "dataset.toml"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "test", "query", "gallery", "")
ARRAY_SUFFIXES = (".npy", ".csv")
#: Manifest columns; ``camera`` is another name for ``view``; columns starting with ``x_`` are ignored.
COLUMNS: tuple[str, ...] = ("path", "person", "sequence", "view", "condition", "session", "split", "domain")
_SKELETON_ONLY = ("condition", "session")
_CLOUD_ONLY = ("domain",)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PROTOCOL_KEYS = {"window", "center_joint", "filter_same_view"}
_TOP_KEYS = {"format_version", "modality", "layout", "description", "license", "citation", "protocol"}

#: Skeleton centre per built-in layout (a joint, or the mean of several): SM-SGE centres on the
#: hip; casia-14 has no pelvis (the neck is its root), coco-17 uses the hip midpoint.
DEFAULT_CENTRES: dict[str, tuple[int, ...]] = {
    "kinect-v1-20": (0,),
    "kinect-v2-25": (0,),
    "casia-14": (1,),
    "coco-17": (11, 12),
}


@dataclass
class GenericOptions:
    """``name``: the folder under the data root (``--set data.name=<folder>``)."""

    name: str = ""


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: str
    person: int
    sequence: str
    view: str = ""
    condition: str = ""
    session: str = ""
    split: str = ""
    domain: str = ""


@dataclass
class GenericSettings:
    """What ``dataset.toml`` says, with the layout resolved."""

    modality: str
    layout: Layout | None = None
    layout_file: Path | None = None
    window: int = 6
    center: tuple[int, ...] | None = None
    filter_same_view: bool = False
    description: str = ""
    license: str = ""
    citation: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataFormatError(path, f"invalid TOML: {exc}") from None


def _is_layout_file(value: str) -> bool:
    return value.lower().endswith((".toml", ".json"))


def resolve_layout(value: str, folder: Path, where: Path) -> tuple[Layout, Path | None]:
    """A built-in (installed) layout name, or a layout file inside ``folder``."""
    from reid_bench.layouts import load_layout_file
    from reid_bench.registry import PluginError, get_registry

    if _is_layout_file(value):
        path = _inside(folder, value, where, None)
        if not path.is_file():
            raise DataFormatError(where, f"layout file {value!r} not found in {folder}")
        try:
            return load_layout_file(path), path
        except ValueError as exc:
            raise DataFormatError(path, str(exc)) from None
    try:
        return get_registry().layout(value), None
    except PluginError as exc:
        raise DataFormatError(where, f"layout {value!r}: {exc} (or name a layout file, e.g. 'layout.toml')") from None


def _centre_indices(value: Any, layout: Layout, where: Path) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise DataFormatError(where, "protocol.center_joint is an empty list")
    out = []
    for item in items:
        if isinstance(item, bool):
            raise DataFormatError(where, f"protocol.center_joint: {item!r} is neither a joint name nor an index")
        if isinstance(item, int):
            if not 0 <= item < layout.num_joints:
                raise DataFormatError(where, f"protocol.center_joint {item} out of range 0..{layout.num_joints - 1}")
            out.append(item)
        elif isinstance(item, str):
            try:
                out.append(layout.joint_index(item))
            except KeyError as exc:
                raise DataFormatError(where, f"protocol.center_joint: {exc.args[0]}") from None
        else:
            raise DataFormatError(where, f"protocol.center_joint: {item!r} is neither a joint name nor an index")
    return tuple(out)


def settings_from_dict(raw: dict[str, Any], folder: Path, where: Path) -> GenericSettings:
    """Validate the content of a ``dataset.toml`` (``where`` names it in errors)."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise DataFormatError(where, f"unknown key {unknown[0]!r} (keys: {', '.join(sorted(_TOP_KEYS))})")
    version = raw.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise DataFormatError(where, f"format_version {version!r}; this reid-bench reads version {FORMAT_VERSION}")
    modality = raw.get("modality")
    if modality not in ("skeleton", "pointcloud"):
        raise DataFormatError(where, f"modality must be 'skeleton' or 'pointcloud', got {modality!r}")
    for key in ("description", "license", "citation"):
        if not isinstance(raw.get(key, ""), str):
            raise DataFormatError(where, f"{key} must be a string")
    settings = GenericSettings(modality=modality, description=raw.get("description", ""),
                               license=raw.get("license", ""), citation=raw.get("citation", ""), raw=raw)
    protocol = raw.get("protocol", {})
    if not isinstance(protocol, dict):
        raise DataFormatError(where, "[protocol] must be a table")
    bad = sorted(set(protocol) - _PROTOCOL_KEYS)
    if bad:
        raise DataFormatError(where, f"unknown key protocol.{bad[0]} (keys: {', '.join(sorted(_PROTOCOL_KEYS))})")
    if modality == "pointcloud":
        if "layout" in raw:
            raise DataFormatError(where, "point clouds have no layout; remove the 'layout' key")
        if protocol:
            raise DataFormatError(where, "[protocol] settings apply to skeleton datasets only")
        return settings
    layout_value = raw.get("layout")
    if not isinstance(layout_value, str) or not layout_value:
        raise DataFormatError(where, "skeleton datasets need layout = '<built-in name>' or '<layout file>.toml|.json'")
    settings.layout, settings.layout_file = resolve_layout(layout_value, folder, where)
    window = protocol.get("window", 6)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise DataFormatError(where, f"protocol.window must be a positive integer, got {window!r}")
    settings.window = window
    if "center_joint" in protocol:
        settings.center = _centre_indices(protocol["center_joint"], settings.layout, where)
    else:
        settings.center = DEFAULT_CENTRES.get(settings.layout.name, (0,))
    same_view = protocol.get("filter_same_view", False)
    if not isinstance(same_view, bool):
        raise DataFormatError(where, f"protocol.filter_same_view must be true or false, got {same_view!r}")
    settings.filter_same_view = same_view
    return settings


def read_settings(folder: Path) -> GenericSettings:
    path = folder / SETTINGS
    if not path.is_file():
        raise DataFormatError(path, f"missing: a generic dataset folder needs {SETTINGS} (see docs/generic-format.md)")
    return settings_from_dict(_read_toml(path), folder, path)


# ----------------------------------------------------------------------------------- manifest


def _inside(folder: Path, value: str, where: Path, line: int | None, allow_absolute: bool = False) -> Path:
    """A manifest path as a file under ``folder``: no '..', and no symbolic link that leads out of
    the folder. An absolute path is accepted only when importing (the user wrote it explicitly)."""
    p = Path(value)
    if p.is_absolute():
        if not allow_absolute:
            raise DataFormatError(where, f"path {value!r} must be relative to the dataset folder", line=line)
        return p
    if ".." in p.parts:
        raise DataFormatError(where, f"path {value!r} leaves the dataset folder ('..')", line=line)
    target = folder / p
    root, resolved = folder.resolve(), target.resolve()
    if not resolved.is_relative_to(root):
        raise DataFormatError(where, f"path {value!r} is a link to {resolved}, outside the dataset folder {root}",
                              line=line)
    return target


def read_manifest(path: Path, modality: str, allow_absolute: bool = False) -> list[ManifestRow]:
    """Rows of ``manifest.csv``, validated; array files must exist (they are parsed later)."""
    folder = path.parent
    if path.exists() and not path.is_file():  # a FIFO would block the read: refuse it by what it is
        raise DataFormatError(path, "not a regular file (a manifest is a CSV file)")
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    rows: list[ManifestRow] = []
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(path, "empty manifest (no header row)", line=1) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFormatError(path, f"unreadable CSV: {exc}", line=1) from None
        names = [h.strip().lower() for h in header]
        names = ["view" if n == "camera" else n for n in names]
        for n in names:
            if n.startswith("x_"):
                continue
            if n not in COLUMNS:
                raise DataFormatError(path, f"unknown column {n!r} (columns: {', '.join(COLUMNS)}, camera; "
                                            "prefix your own columns with x_)", line=1)
        for required in ("path", "person"):
            if required not in names:
                raise DataFormatError(path, f"the header has no {required!r} column", line=1)
        dupes = sorted({n for n in names if names.count(n) > 1 and not n.startswith("x_")})
        if dupes:
            raise DataFormatError(path, f"column {dupes[0]!r} appears twice (camera and view are the same column)",
                                  line=1)
        seen_paths: dict[str, int] = {}
        seen_sequences: dict[str, int] = {}
        try:
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue  # blank line: no sample
                if len(fields) != len(names):
                    raise DataFormatError(path, f"{len(fields)} fields, the header has {len(names)}", line=line)
                row = {n: f.strip() for n, f in zip(names, fields) if not n.startswith("x_")}
                rows.append(_manifest_row(path, folder, row, line, modality, allow_absolute, seen_paths,
                                          seen_sequences))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataFormatError(path, f"unreadable CSV: {exc}", line=reader.line_num) from None
    if not rows:
        raise DataFormatError(path, "the manifest lists no samples", line=2)
    return rows


def _manifest_row(path: Path, folder: Path, row: dict[str, str], line: int, modality: str, allow_absolute: bool,
                  seen_paths: dict[str, int], seen_sequences: dict[str, int]) -> ManifestRow:
    value = row["path"]
    if not value:
        raise DataFormatError(path, "empty path", line=line)
    file = _inside(folder, value, path, line, allow_absolute)
    if file.suffix.lower() not in ARRAY_SUFFIXES:
        raise DataFormatError(path, f"path {value!r}: arrays must be .npy or .csv", line=line)
    if not file.is_file():
        raise DataFormatError(path, f"path {value!r}: no such file", line=line)
    key = file.resolve().as_posix()
    if key in seen_paths:
        raise DataFormatError(path, f"path {value!r} is listed twice (also line {seen_paths[key]})", line=line)
    seen_paths[key] = line
    try:
        person = int(row["person"])
    except ValueError:
        raise DataFormatError(path, f"person {row['person']!r} is not an integer id", line=line) from None
    lowest = -1 if modality == "pointcloud" else 0
    if person < lowest:
        raise DataFormatError(path, f"person {person} < {lowest} (-1 marks junk, point clouds only)", line=line)
    default = Path(value).stem if Path(value).is_absolute() else Path(value).with_suffix("").as_posix()
    sequence = row.get("sequence", "") or default
    if sequence in seen_sequences:
        raise DataFormatError(path, f"sequence {sequence!r} is listed twice (also line {seen_sequences[sequence]})",
                              line=line)
    seen_sequences[sequence] = line
    split = row.get("split", "").lower()
    if split not in SPLITS:
        raise DataFormatError(path, f"split {row['split']!r} is not one of train, test, query, gallery or empty",
                              line=line)
    view = row.get("view", "")
    if modality == "pointcloud":
        if view:
            try:
                int(view)
            except ValueError:
                raise DataFormatError(path, f"camera {view!r} must be an integer for point clouds", line=line) from None
        for col in _SKELETON_ONLY:
            if row.get(col):
                raise DataFormatError(path, f"column {col!r} has no meaning for point clouds (use x_{col})", line=line)
    else:
        for col in _CLOUD_ONLY:
            if row.get(col):
                raise DataFormatError(path, f"column {col!r} applies to point clouds only (use x_{col})", line=line)
    return ManifestRow(line=line, path=value, person=person, sequence=sequence, view=view,
                       condition=row.get("condition", ""), session=row.get("session", ""), split=split,
                       domain=row.get("domain", ""))


# ------------------------------------------------------------------------------------- arrays


def _numeric_csv(path: Path) -> tuple[np.ndarray, int]:
    """Rows of numbers from a CSV array file (an optional header row of non-numbers is skipped);
    returns the values and the line number of the first data row."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    first = 1
    if lines:
        head = [f.strip() for f in lines[0].split(",")]
        if all(not _is_number(f) for f in head):
            first = 2
    rows, numbers = [], []
    for n, line in enumerate(lines[first - 1 :], start=first):
        if not line.strip():
            if any(rest.strip() for rest in lines[n:]):
                raise DataFormatError(path, "blank line inside the data", line=n)
            break
        rows.append(line.split(","))
        numbers.append(n)
    if not rows:
        raise DataFormatError(path, "no data rows (empty array)", line=first)
    width = len(rows[0])
    for fields, n in zip(rows, numbers):
        if len(fields) != width:
            raise DataFormatError(path, f"{len(fields)} values, the first row has {width} (truncated row?)", line=n)
    try:
        values = np.asarray(rows, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        for fields, n in zip(rows, numbers):
            for f in fields:
                if not _is_number(f):
                    raise DataFormatError(path, f"{f.strip()!r} is not a number", line=n)
                if not np.isfinite(float(f)):
                    raise DataFormatError(path, f"non-finite value {f.strip()!r}", line=n)
    return values, first


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataFormatError(path, f"not a plain numeric .npy (object arrays/pickles are refused): {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataFormatError(path, f"unreadable or truncated .npy: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise DataFormatError(path, f"array dtype {getattr(arr, 'dtype', '?')} is not numeric")
    if arr.size == 0:
        raise DataFormatError(path, f"empty array {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise DataFormatError(path, f"non-finite value at index {bad}")
    return arr


def read_skeleton_array(path: Path, layout: Layout) -> np.ndarray:
    """Frames [T, J, 3] from .npy ([T, J, 3|2] or [T, J*3|J*2]) or .csv (one frame per row)."""
    j = layout.num_joints
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.ndim == 2 and arr.shape[1] in (j * 3, j * 2):
            arr = arr.reshape(len(arr), j, arr.shape[1] // j)
        if arr.ndim != 3 or arr.shape[1] != j or arr.shape[2] not in (2, 3):
            raise DataFormatError(path, f"shape {arr.shape}: expected [T, {j}, 3] or [T, {j}, 2] "
                                        f"for layout {layout.name!r}")
    else:
        arr, first = _numeric_csv(path)
        if arr.shape[1] not in (j * 3, j * 2):
            raise DataFormatError(path, f"{arr.shape[1]} values per row; layout {layout.name!r} needs {j * 3} "
                                        f"(x,y,z per joint) or {j * 2} (x,y)", line=first)
        arr = arr.reshape(len(arr), j, arr.shape[1] // j)
    if arr.shape[2] == 2:
        arr = np.concatenate([arr, np.zeros(arr.shape[:2] + (1,))], axis=2)  # 2D: z = 0
    return arr.astype(np.float32)


def read_cloud_array(path: Path) -> np.ndarray:
    """Points [N, 6] (xyz + rgb in [0, 1]) from .npy or .csv with 6 (or 3: grey 0.5) values per point."""
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        first = None
        if arr.ndim != 2 or arr.shape[1] not in (3, 6):
            raise DataFormatError(path, f"shape {arr.shape}: expected [N, 6] (xyz rgb) or [N, 3] (xyz)")
    else:
        arr, first = _numeric_csv(path)
        if arr.shape[1] not in (3, 6):
            raise DataFormatError(path, f"{arr.shape[1]} values per row; expected 6 (x,y,z,r,g,b) or 3 (x,y,z)",
                                  line=first)
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.full((len(arr), 3), 0.5)], axis=1)
    rgb = arr[:, 3:]
    if rgb.min() < 0 or rgb.max() > 1:
        row = int(np.argwhere((rgb < 0) | (rgb > 1))[0][0])
        line = first + row if first is not None else None
        raise DataFormatError(path, f"colour {rgb[row].tolist()} outside [0, 1] (point {row})", line=line)
    return arr.astype(np.float32)


def build_records(rows: Iterable[ManifestRow], settings: GenericSettings, folder: Path,
                  allow_absolute: bool = False, manifest: Path | None = None) -> list[Record]:
    records: list[Record] = []
    where = manifest or folder / MANIFEST
    for row in rows:
        path = _inside(folder, row.path, where, row.line, allow_absolute)
        if settings.modality == "skeleton":
            assert settings.layout is not None
            frames = read_skeleton_array(path, settings.layout)
            records.append(SkeletonSequence(frames, settings.layout.name, row.person, row.sequence, view=row.view,
                                            condition=row.condition, session=row.session, source=str(path)))
        else:
            points = read_cloud_array(path)
            records.append(PointCloud(points, row.person, int(row.view or 0), source=str(path), subset=row.split,
                                      domain=row.domain))
    return records


def register_layout(settings: GenericSettings) -> None:
    """Make a layout read from the folder resolvable by name (protocols look layouts up by name)."""
    from reid_bench.registry import PluginError, get_registry

    if settings.layout_file is None or settings.layout is None:
        return
    try:
        get_registry().register_layout(settings.layout)
    except PluginError as exc:
        raise DataFormatError(settings.layout_file, str(exc)) from None


# ------------------------------------------------------------------------------------ plugins


class GenericDataset(FileDataset):
    """Skeleton sequences in the generic format: ``<data-root>/<name>``, ``name`` set by the run."""

    modality = "skeleton"
    folder = "generic"
    loader_version = "1"
    options_class = GenericOptions
    description = (
        "Any skeleton dataset in reid-bench's generic format (dataset.toml + manifest.csv + .npy/.csv arrays), "
        "read from <data-root>/<name>; choose the folder with --set data.name=<name>. Splits for the "
        "generic-closed-set and generic-retrieval protocols come from the manifest's split column."
    )
    data_format = (
        "<data-root>/<name>/dataset.toml (format_version = 1, modality = 'skeleton', layout = built-in name or "
        "a layout .toml/.json in the folder, optional [protocol] window/center_joint/filter_same_view), "
        "manifest.csv (header; columns path, person [required], sequence, view (or camera), condition, session, "
        "split = train|test|query|gallery|empty; x_* columns ignored) and arrays: .npy [T, J, 3|2] or .csv with "
        "one frame per row (J*3 or J*2 numbers, optional header). See docs/generic-format.md."
    )
    license = "whatever the dataset.toml of the folder states"
    citation = ""
    obtain = "convert your data with `reid-bench data import` (see docs/generic-format.md)"
    expected_modality = "skeleton"

    def __init__(self, root: Path | None = None, options: Any = None) -> None:
        super().__init__(root, options)
        self._settings: GenericSettings | None = None

    def dataset_dir(self) -> Path:
        name = (self.options.name if self.options is not None else "") or ""
        if self.root is None:
            raise DatasetNotFoundError(
                "the generic dataset needs --data-root (or REID_BENCH_DATA) and --set data.name=<folder>; "
                f"{self.obtain}")
        if not name:
            if (self.root / MANIFEST).is_file():
                return self.root
            raise DatasetNotFoundError(
                "the generic dataset reads <data-root>/<name>: pass --set data.name=<folder under the data root>")
        if not _NAME_RE.match(name):
            raise DatasetNotFoundError(f"data.name={name!r} must be a plain folder name (letters, digits, . _ -)")
        return self.root.parent / name

    def require_root(self) -> Path:
        folder = self.dataset_dir()
        if not folder.is_dir():
            raise DatasetNotFoundError(f"generic dataset folder {folder} does not exist; {self.obtain}")
        return folder

    def settings(self) -> GenericSettings:
        if self._settings is None:
            settings = read_settings(self.require_root())
            if settings.modality != self.expected_modality:
                other = "generic-clouds" if settings.modality == "pointcloud" else "generic"
                raise DataFormatError(self.require_root() / SETTINGS,
                                      f"this folder holds {settings.modality} data: read it as dataset {other!r}")
            self._settings = settings
        return self._settings

    def manifest_rows(self) -> list[ManifestRow]:
        return read_manifest(self.require_root() / MANIFEST, self.settings().modality)

    def source_files(self) -> list[Path]:
        folder = self.require_root()
        settings = self.settings()  # a missing dataset.toml or manifest is an error naming the file
        files = [folder / SETTINGS, folder / MANIFEST]
        if settings.layout_file is not None:
            files.append(settings.layout_file)
        files += [folder / row.path for row in self.manifest_rows()]
        return sorted(set(files))

    def read(self) -> list[Record]:
        settings = self.settings()
        register_layout(settings)
        return build_records(self.manifest_rows(), settings, self.require_root())

    def checksum(self) -> str:
        # A cache hit skips read(): the folder's own layout must be resolvable all the same.
        register_layout(self.settings())
        return super().checksum()

    def splits(self) -> dict[str, str]:
        """Sequence id (skeletons) or array path (clouds) -> the manifest's split."""
        return {row.sequence: row.split for row in self.manifest_rows()}

    def protocol_settings(self) -> GenericSettings:
        settings = self.settings()
        register_layout(settings)
        return settings

    def verify(self) -> list[str]:
        splits = self.splits()
        if not any(splits.values()):
            return ["the manifest's split column is empty: the generic protocols have nothing to train or test on"]
        return []


class GenericCloudDataset(GenericDataset):
    """Point clouds in the generic format (same folder layout, ``modality = 'pointcloud'``)."""

    modality = "pointcloud"
    folder = "generic-clouds"
    expected_modality = "pointcloud"
    description = (
        "Any point-cloud dataset in reid-bench's generic format, read from <data-root>/<name> "
        "(--set data.name=<name>); subset = the manifest's split (train/query/gallery), camera = view column."
    )
    data_format = (
        "<data-root>/<name>/dataset.toml (modality = 'pointcloud'), manifest.csv (path, person [-1 = junk], "
        "camera (integer), split, domain, sequence) and arrays: .npy [N, 6|3] or .csv rows x,y,z[,r,g,b] with "
        "colours in [0, 1] (grey 0.5 when absent). See docs/generic-format.md."
    )


# ------------------------------------------------------------------------------------- import


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _settings_toml(raw: dict[str, Any]) -> str:
    lines = ["# reid-bench generic dataset (docs/generic-format.md)"]
    for key in ("format_version", "modality", "layout", "description", "license", "citation"):
        if key in raw:
            lines.append(f"{key} = {_toml_value(raw[key])}")
    if raw.get("protocol"):
        lines += ["", "[protocol]"] + [f"{k} = {_toml_value(v)}" for k, v in sorted(raw["protocol"].items())]
    return "\n".join(lines) + "\n"


def _check_import_name(name: str) -> None:
    from reid_bench.registry import get_registry

    if not _NAME_RE.match(name or ""):
        raise ValueError(f"dataset name {name!r} must be a plain folder name (letters, digits, . _ -)")
    taken = set(get_registry().names("datasets")) | {"generic", "generic-clouds"}
    if name in taken:
        raise ValueError(f"dataset name {name!r} is the folder of the installed dataset plugin {name!r}; "
                         "choose another")


def import_dataset(
    source: str | Path,
    dest_root: str | Path,
    name: str,
    *,
    modality: str | None = None,
    layout: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Validate a user's manifest and arrays, then write ``<dest_root>/<name>`` in the generic format.

    ``source``: a folder with ``manifest.csv`` (and optionally ``dataset.toml`` and a layout file),
    or the manifest file itself; manifest paths are relative to it (absolute paths are allowed
    here and copied under ``arrays/``). ``modality`` / ``layout`` (a built-in name or a layout
    file path) fill in or must agree with the source's ``dataset.toml``. Every array is parsed
    before anything is written; the folder is staged next to its destination and renamed into
    place, so an error leaves nothing behind. Errors name the file and line.
    """
    source = Path(source).expanduser().resolve()
    dest_root = Path(dest_root).expanduser().resolve()
    _check_import_name(name)
    src_folder, manifest = _import_source(source)
    dest = dest_root / name
    if dest == src_folder or src_folder in dest.parents or dest in src_folder.parents:
        raise ValueError(f"the destination {dest} overlaps the source {src_folder}")
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite to replace it")

    raw, settings, layout_src = _import_settings(src_folder, manifest, modality, layout)
    rows = read_manifest(manifest, settings.modality, allow_absolute=True)
    records = build_records(rows, settings, src_folder, allow_absolute=True, manifest=manifest)
    targets = _import_targets(rows, manifest)

    dest_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.import-", dir=dest_root))
    backup: Path | None = None
    try:
        _write_import(stage, src_folder, manifest, rows, targets, raw, settings, layout_src)
        # Read back what was written: the folder must load exactly as validated.
        staged_settings = read_settings(stage)
        staged = build_records(read_manifest(stage / MANIFEST, staged_settings.modality), staged_settings, stage)
        if len(staged) != len(records):
            raise RuntimeError(f"staged folder holds {len(staged)} samples, validated {len(records)}")
        if dest.exists():
            backup = dest_root / f".{name}.replaced-{os.getpid()}"
            os.replace(dest, backup)
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if backup is not None and backup.exists() and not dest.exists():
            os.replace(backup, dest)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    return _import_summary(name, dest, settings, rows, records)


def _import_source(source: Path) -> tuple[Path, Path]:
    """The source folder and its manifest, from either one."""
    if source.is_dir():
        src_folder, manifest = source, source / MANIFEST
    elif source.is_file() and source.suffix.lower() == ".csv":
        src_folder, manifest = source.parent, source
    else:
        raise DataFormatError(source, f"expected a folder with {MANIFEST} or a manifest .csv file")
    if manifest.exists() and not manifest.is_file():
        raise DataFormatError(manifest, "not a regular file (a manifest is a CSV file)")
    if not manifest.is_file():
        raise DataFormatError(manifest, "missing: the source needs a manifest (see docs/generic-format.md)")
    return src_folder, manifest


def _import_settings(src_folder: Path, manifest: Path, modality: str | None,
                     layout: str | None) -> tuple[dict[str, Any], GenericSettings, Path | None]:
    """The source's ``dataset.toml`` with the requested modality and layout, which must agree
    with it: the settings to write, them validated, and the layout file to copy (if any)."""
    toml_path = src_folder / SETTINGS
    raw: dict[str, Any] = _read_toml(toml_path) if toml_path.is_file() else {}
    where = toml_path if toml_path.is_file() else manifest
    if modality is not None:
        if "modality" in raw and raw["modality"] != modality:
            raise DataFormatError(where, f"modality = {raw['modality']!r} disagrees with the requested {modality!r}")
        raw["modality"] = modality
    layout_src: Path | None = None
    existing = raw.get("layout")
    if isinstance(existing, str) and _is_layout_file(existing):
        layout_src = _inside(src_folder, existing, where, None).resolve()
    if layout is not None:
        if _is_layout_file(layout):
            requested = Path(layout).expanduser().resolve()
            if not requested.is_file():
                raise FileNotFoundError(f"layout file {requested} not found")
            if existing is not None and requested != layout_src:
                raise DataFormatError(where, f"layout = {existing!r} disagrees with the requested layout file "
                                             f"{requested}")
            layout_src = requested
        else:
            if existing is not None and existing != layout:
                raise DataFormatError(where, f"layout = {existing!r} disagrees with the requested layout {layout!r}")
            raw["layout"] = layout
    if "modality" not in raw:
        if "layout" not in raw and layout_src is None:
            raise ValueError(f"{src_folder} has no {SETTINGS}: say what the data is with modality='pointcloud', "
                             "or layout=<built-in name or layout file> for skeletons")
        raw["modality"] = "skeleton"
    raw.setdefault("format_version", FORMAT_VERSION)
    if layout_src is not None:
        # Validated where the file lies; the copy in the dataset folder is named layout.<ext>.
        settings = settings_from_dict(dict(raw, layout=layout_src.name), layout_src.parent, where)
        raw["layout"] = "layout" + layout_src.suffix.lower()
    else:
        settings = settings_from_dict(raw, src_folder, where)
    return raw, settings, layout_src


def _import_targets(rows: list[ManifestRow], manifest: Path) -> list[str]:
    """Each array's path in the dataset folder: as in the manifest, or under ``arrays/`` for an
    absolute one; two arrays (or an array and the folder's own files) never share a path."""
    targets: list[str] = []
    for i, row in enumerate(rows):
        p = Path(row.path)
        targets.append(f"arrays/{i:06d}-{p.name}" if p.is_absolute() else p.as_posix())
    counts = Counter(targets)
    clash = sorted({t for t, n in counts.items() if n > 1} | ({MANIFEST, SETTINGS} & set(counts)))
    if clash:
        raise DataFormatError(manifest, f"array path {clash[0]!r} would overwrite another file of the dataset folder")
    return targets


def _write_import(stage: Path, src_folder: Path, manifest: Path, rows: list[ManifestRow], targets: list[str],
                  raw: dict[str, Any], settings: GenericSettings, layout_src: Path | None) -> None:
    """The dataset folder in the generic format, written into ``stage``: arrays, layout, manifest, settings."""
    for row, target in zip(rows, targets):
        out = stage / target
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_inside(src_folder, row.path, manifest, row.line, allow_absolute=True), out)
    if layout_src is not None:
        shutil.copyfile(layout_src, stage / raw["layout"])
    columns = ["path", "person", "sequence", "view"]
    columns += ["domain", "split"] if settings.modality == "pointcloud" else ["condition", "session", "split"]
    with (stage / MANIFEST).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row, target in zip(rows, targets):
            values = {"path": target, "person": row.person, "sequence": row.sequence, "view": row.view,
                      "split": row.split, "domain": row.domain, "condition": row.condition,
                      "session": row.session}
            writer.writerow([values[c] for c in columns])
    (stage / SETTINGS).write_text(_settings_toml(raw), encoding="utf-8")


def _import_summary(name: str, dest: Path, settings: GenericSettings, rows: list[ManifestRow],
                    records: list[Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": name,
        "folder": str(dest),
        "modality": settings.modality,
        "samples": len(records),
        "persons": len({r.person for r in records}),
        "splits": {s or "(none)": n for s in SPLITS if (n := sum(1 for r in rows if r.split == s))},
    }
    if settings.modality == "skeleton":
        summary["layout"] = settings.layout.name if settings.layout else None
        summary["frames"] = int(sum(len(r.frames) for r in records))  # type: ignore[union-attr]
    else:
        summary["points"] = int(sum(len(r.points) for r in records))  # type: ignore[union-attr]
    return summary
