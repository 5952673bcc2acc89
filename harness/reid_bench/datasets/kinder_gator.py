"""Kinder-Gator (UF, 2018): Kinect v1 motion of 10 adults and 10 children, one CSV per trial.

Checked against the authors' README.txt (file naming ``POSE-PID_motion#-motionName-Timestamp.csv``,
participant ids unique per participant), the header of the released files, and a public
converter (dang-hai/GestureMap, process_kinect_datasets/KinderGator/convert_raw2csv.py) that
reads the same files: a header row, ``Timestamp``, 60 joint coordinates, then ``User-ID``,
``Action`` and an empty column left by the trailing comma of every line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.datasets import DataFormatError, FileDataset, data_files
from reid_bench.layouts import KINECT_V1_20

#: Release folders and the session name their trials get.
GROUPS: dict[str, str] = {"Adults": "adult", "Children": "child"}
#: A child whose PID also appears among the adults gets this added (the release has no such clash).
CHILD_ID_OFFSET = 100_000

_FILE_RE = re.compile(r"^POSE-p(?P<pid>\d+)_(?P<motion>\d+)-(?P<action>.+)-(?P<stamp>\d+)$")
_AXES = ("X", "Y", "Z")
#: Non-joint columns of the release; anything else must be <Joint><Axis> of kinect-v1-20.
_EXTRA_COLUMNS = {"Timestamp", "User-ID", "Action", ""}


@dataclass(frozen=True)
class TrialName:
    pid: int
    motion: int
    action: str
    stamp: int


def parse_trial_name(path: Path) -> TrialName:
    """The naming fields of ``POSE-p<PID>_<nn>-<action with hyphens>-<unix ms>.csv``."""
    m = _FILE_RE.match(path.stem)
    if m is None:
        raise DataFormatError(path, "file name does not follow POSE-p<PID>_<nn>-<action>-<unix ms>.csv")
    return TrialName(int(m["pid"]), int(m["motion"]), m["action"], int(m["stamp"]))


def _column_map(path: Path, header: list[str]) -> tuple[np.ndarray, int | None]:
    """Indices of the 60 coordinate columns in kinect-v1-20 order (mapped by name) and of User-ID."""
    columns = np.full((KINECT_V1_20.num_joints, 3), -1, dtype=np.int64)
    user_col = None
    for i, raw in enumerate(header):
        name = raw.strip()
        if name in _EXTRA_COLUMNS:
            if name == "User-ID":
                user_col = i
            continue
        if len(name) < 2 or name[-1] not in _AXES:
            raise DataFormatError(path, f"unknown column {name!r} in the header", line=1)
        joint, axis = name[:-1], _AXES.index(name[-1])
        try:
            j = KINECT_V1_20.joint_index(joint)
        except KeyError:
            raise DataFormatError(path, f"unknown joint name {joint!r} (column {name!r}) in the header",
                                  line=1) from None
        if columns[j, axis] >= 0:
            raise DataFormatError(path, f"column {name!r} appears twice in the header", line=1)
        columns[j, axis] = i
    missing = [f"{KINECT_V1_20.joints[j]}{_AXES[a]}" for j, a in zip(*np.nonzero(columns < 0))]
    if missing:
        raise DataFormatError(path, f"header lacks joint columns {', '.join(missing[:6])}"
                                    f"{' ...' if len(missing) > 6 else ''}", line=1)
    if header[0].strip() != "Timestamp":
        raise DataFormatError(path, f"first column must be 'Timestamp', got {header[0]!r}", line=1)
    return columns, user_col


def read_trial(path: Path, expected_pid: int | None = None) -> np.ndarray:
    """Frames [T, 20, 3] (metres, camera frame) of one trial file, rows in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(path, "empty file (no header)", line=1)
    header = lines[0].split(",")
    columns, user_col = _column_map(path, header)
    rows: list[list[str]] = []
    numbers: list[int] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            if any(rest.strip() for rest in lines[n:]):
                raise DataFormatError(path, "blank line inside the data", line=n)
            break  # trailing blank lines end the file
        fields = line.split(",")
        if len(fields) != len(header):
            raise DataFormatError(path, f"{len(fields)} fields, the header has {len(header)} "
                                        "(truncated or malformed row)", line=n)
        rows.append(fields)
        numbers.append(n)
    if not rows:
        raise DataFormatError(path, "no frames (header only)", line=2)
    flat = columns.reshape(-1)
    try:
        values = np.asarray([[r[c] for c in flat] for r in rows], dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        _raise_bad_value(path, rows, numbers, flat, header)
    if user_col is not None and expected_pid is not None:
        for fields, n in zip(rows, numbers):
            try:
                uid = int(fields[user_col].strip())
            except ValueError:
                raise DataFormatError(path, f"User-ID {fields[user_col]!r} is not an integer", line=n) from None
            if uid != expected_pid:
                raise DataFormatError(path, f"User-ID {uid} differs from the PID {expected_pid} in the file name",
                                      line=n)
    return values.reshape(len(rows), KINECT_V1_20.num_joints, 3).astype(np.float32)


def _raise_bad_value(path: Path, rows: list[list[str]], numbers: list[int], flat: np.ndarray, header: list[str]):
    """Find the first non-numeric or non-finite coordinate for an error naming its line."""
    for fields, n in zip(rows, numbers):
        for c in flat:
            try:
                value = float(fields[c])
            except ValueError:
                raise DataFormatError(path, f"column {header[c]!r}: {fields[c]!r} is not a number", line=n) from None
            if not np.isfinite(value):
                raise DataFormatError(path, f"column {header[c]!r}: non-finite value {fields[c]!r}", line=n)
    raise DataFormatError(path, "unparseable coordinates")  # pragma: no cover - the loop always finds it


def _documented_gap(pid: int, action: str) -> bool:
    """The authors' README: the 'jump as high as you can' trial of adult 565 was lost."""
    words = action.lower().split("-")
    return pid == 565 and "jump" in words and "high" in words


class KinderGator(FileDataset):
    modality = "skeleton"
    layout = "kinect-v1-20"
    folder = "kinder-gator"
    loader_version = "1"
    description = (
        "Kinder-Gator: Kinect v1 skeletons (20 joints, ~30 fps) of 10 adults and 10 children performing "
        "up to 58 whole-body actions, one trial per person and action. person = PID, condition = action, "
        "session = adult/child, sequence = file stem; view is empty (one sensor)."
    )
    data_format = (
        "<root>/Adults/POSE-p<PID>_<nn>-<action>-<unix ms>.csv and <root>/Children/... (the release's "
        "SKELETON_DATA folder may sit in between: <root>/SKELETON_DATA/Adults/...). One header row, then one "
        "row per frame: Timestamp (device clock, ms), <Joint>X,<Joint>Y,<Joint>Z for the 20 Kinect v1 joints "
        "(metres, camera frame), User-ID (must equal the file name's PID), Action (not used: the condition is the "
        "file name's action) and a trailing comma. Joint columns are mapped to kinect-v1-20 by name. Rows are "
        "kept in file order (repeated device timestamps occur and are not frames to drop). "
        "Person ids are the PIDs; a child whose PID also appears among the adults would get "
        f"{CHILD_ID_OFFSET} + PID (the release has no such clash). Malformed rows, unknown joint columns, "
        "NaN/inf and empty files are errors naming the file and line."
    )
    license = "No license stated by the authors; research use only, cite the paper."
    citation = (
        "Aloba, Flores, Woodward, Shaw, Castonguay, Cuba, Dong, Jain, Anthony: Kinder-Gator: The UF Kinect "
        "Database of Child and Adult Motion. Eurographics 2018 (short papers)"
    )
    obtain = (
        "https://jainlab.cise.ufl.edu/publications.html#Kinder-Gator "
        "(archive: http://jainlab.cise.ufl.edu/documents/dataset/Kinder_Gator_dataset.zip); "
        "put Adults/ and Children/ under <data-root>/kinder-gator"
    )

    def data_dir(self) -> Path:
        root = self.require_root()
        nested = root / "SKELETON_DATA"
        return nested if not any((root / g).is_dir() for g in GROUPS) and nested.is_dir() else root

    def source_files(self) -> list[Path]:
        base = self.data_dir()
        if not base.is_dir():
            return []
        return sorted(data_files((p for g in GROUPS for p in (base / g).glob("*.csv")), "a Kinder-Gator CSV"))

    def _person_ids(self, files: list[Path]) -> dict[Path, int]:
        adults = {parse_trial_name(p).pid for p in files if p.parent.name == "Adults"}
        out = {}
        for p in files:
            pid = parse_trial_name(p).pid
            out[p] = CHILD_ID_OFFSET + pid if p.parent.name == "Children" and pid in adults else pid
        return out

    def read(self) -> list[SkeletonSequence]:
        files = self.source_files()
        persons = self._person_ids(files)
        records = []
        for path in files:
            name = parse_trial_name(path)
            frames = read_trial(path, expected_pid=name.pid)
            records.append(SkeletonSequence(
                frames=frames, layout=KINECT_V1_20.name, person=persons[path], sequence=path.stem, view="",
                condition=name.action, session=GROUPS[path.parent.name], source=str(path),
            ))
        return records

    def verify(self) -> list[str]:
        """Participants whose set of actions differs from the others' (a missing or extra trial)."""
        files = self.source_files()
        by_person: dict[tuple[str, int], set[str]] = {}
        problems = []
        for p in files:
            name = parse_trial_name(p)
            actions = by_person.setdefault((p.parent.name, name.pid), set())
            if name.action in actions:
                problems.append(f"{p}: a second trial of {name.action!r} for PID {name.pid}")
            actions.add(name.action)
        if by_person:
            common = set.union(*by_person.values())
            for (group, pid), actions in sorted(by_person.items()):
                missing = [a for a in sorted(common - actions) if not _documented_gap(pid, a)]
                if missing:
                    problems.append(f"{group} PID {pid}: no trial of {', '.join(missing)}")
        return problems
