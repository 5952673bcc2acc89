"""IAS-Lab RGBD-ID (Munaro et al.): Kinect skeletons of 11 people in three sessions.

Release layout, one text file per frame and joint rows in Kinect SDK order::

    Training/<person>/..._skel.txt
    TestingA/<person>/..._skel.txt     same place, other clothes
    TestingB/<person>/..._skel.txt     other place

Each ``*skel.txt`` has 20 rows ``id,x,y,z,x2D,y2D,trackingState,quality,startJoint,endJoint,
qx,qy,qz,qw`` (metres; tracking state 0 = not tracked, 1 = inferred, 2 = tracked). NiTE's 15
joints were remapped to the Kinect SDK's 20 by the dataset's authors (wrists and ankles copy
hands and feet), so the rows already follow ``kinect-v1-20``. The papers that use the dataset
drop every frame in which any joint is untracked; this loader does the same and counts them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.datasets import DataFormatError, FileDataset, data_files

SESSIONS = ("Training", "TestingA", "TestingB")
NUM_JOINTS = 20
# id, x, y, z, x2D, y2D, trackingState, quality; the release adds orientation fields after these.
MIN_FIELDS = 8
FIELD_NAMES = ("id", "x", "y", "z", "x2D", "y2D", "trackingState", "quality")
# Reasons end up in MLflow metric names: letters, digits, spaces, - _ . : / only.
UNTRACKED_DROP = "frames with an untracked joint"
EMPTY_SEQUENCE_DROP = "sequences with every frame untracked"
EXTRA_SKELETON_DROP = "frames with a second skeleton: its rows ignored"

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically (frame 9 before frame 10)."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))


def parse_number(path: Path, line: int, field: str, text: str) -> float:
    """A float field; anything else is a format error naming the file and line."""
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(path, f"field {field!r} is not a number: {text!r}", line=line) from None


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers (blank lines carry no data)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first field
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    return [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_ias_frame(path: Path, first_skeleton_only: bool = False) -> tuple[np.ndarray, bool, bool]:
    """One frame: joint positions [20, 3], whether every joint was tracked, and whether rows
    after the first skeleton were left out.

    ``first_skeleton_only``: a file may hold more than one tracked skeleton (20 rows each); the
    first 20 rows are the frame (what SimMC's ``Preprocess.py`` reads of BIWI, line 219)."""
    lines = numbered_lines(path)
    cut = first_skeleton_only and len(lines) > NUM_JOINTS
    if cut:
        lines = lines[:NUM_JOINTS]
    if len(lines) != NUM_JOINTS:
        where = lines[NUM_JOINTS][0] if len(lines) > NUM_JOINTS else (lines[-1][0] if lines else None)
        raise DataFormatError(path, f"expected {NUM_JOINTS} joint rows, found {len(lines)}", line=where)
    coords = np.empty((NUM_JOINTS, 3), dtype=np.float64)
    tracked = True
    first_bad_line = None
    for j, (number, line) in enumerate(lines):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < MIN_FIELDS:
            raise DataFormatError(
                path, f"expected at least {MIN_FIELDS} comma-separated fields ({','.join(FIELD_NAMES)}), "
                f"found {len(fields)}", line=number)
        for k in (1, 2, 3):
            coords[j, k - 1] = parse_number(path, number, FIELD_NAMES[k], fields[k])
        state = parse_number(path, number, "trackingState", fields[6])
        if state not in (0.0, 1.0, 2.0):
            raise DataFormatError(path, f"trackingState must be 0, 1 or 2, got {fields[6]!r}", line=number)
        if state == 0.0:
            tracked = False
        if first_bad_line is None and not all(math.isfinite(v) for v in coords[j]):
            first_bad_line = number
    # A dropped frame's coordinates are meaningless by the convention; a kept one must be finite.
    if tracked and first_bad_line is not None:
        raise DataFormatError(path, "non-finite joint coordinate (NaN or inf)", line=first_bad_line)
    return coords.astype(np.float32), tracked, cut


class IASLab(FileDataset):
    modality = "skeleton"
    layout = "kinect-v1-20"
    folder = "ias-lab"
    loader_version = "1"
    description = (
        "IAS-Lab RGBD-ID: Kinect skeletons of 11 people walking, in a training session and two test "
        "sessions (TestingA: same room, other clothes; TestingB: another room). Frames with an "
        "untracked joint are dropped and counted, as in the skeleton re-id papers."
    )
    data_format = (
        "<root>/{Training,TestingA,TestingB}/<person>/**/*skel.txt; one file per frame (frames in natural "
        "order of the file names), 20 rows 'id,x,y,z,x2D,y2D,trackingState,quality,...' (orientation fields follow) in "
        "Kinect v1 SDK joint order, metres -> layout kinect-v1-20. <person> is the identity: the same "
        "folder name in every session (numeric names become the person id; otherwise ids 1..N follow the "
        "sorted names). Sequence id '<session>/<person>'."
    )
    license = "research use; see the IAS-Lab download page"
    citation = (
        "M. Munaro, A. Basso, A. Fossati, L. Van Gool, E. Menegatti. 3D Reconstruction of Freely Moving "
        "Persons for Re-Identification with a Depth Sensor. ICRA 2014."
    )
    obtain = "http://robotics.dei.unipd.it/reid/index.php/downloads (IAS-Lab RGBD-ID)"
    #: (session name, its folder under the root); the first one trains in every protocol.
    session_folders: ClassVar[tuple[tuple[str, str], ...]] = tuple((s, s) for s in SESSIONS)
    #: Files that hold more rows than one skeleton: keep the first 20 (counted as a drop).
    first_skeleton_only: ClassVar[bool] = False
    frame_file_kind: ClassVar[str] = "an IAS-Lab frame file (*skel.txt)"

    def _session_dirs(self) -> list[tuple[str, Path]]:
        root = self.require_root()
        return [(s, root / folder) for s, folder in self.session_folders if (root / folder).is_dir()]

    def _person_dirs(self, session_dir: Path) -> list[Path]:
        return sorted((p for p in session_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name))

    def _frame_files(self, person_dir: Path) -> list[Path]:
        return sorted(data_files(person_dir.rglob("*skel.txt"), self.frame_file_kind),
                      key=lambda f: natural_key(f.relative_to(person_dir).as_posix()))

    def source_files(self) -> list[Path]:
        files: list[Path] = []
        for _, session_dir in self._session_dirs():
            for person_dir in self._person_dirs(session_dir):
                files.extend(self._frame_files(person_dir))
        return sorted(files)

    def _person_ids(self) -> dict[str, int]:
        names = sorted({p.name for _, s in self._session_dirs() for p in self._person_dirs(s)}, key=natural_key)
        if all(n.isdigit() for n in names):
            return {n: int(n) for n in names}
        return {n: i for i, n in enumerate(names, start=1)}

    def read(self) -> list[SkeletonSequence]:
        person_ids = self._person_ids()
        records: list[SkeletonSequence] = []
        for session, session_dir in self._session_dirs():
            for person_dir in self._person_dirs(session_dir):
                files = self._frame_files(person_dir)
                if not files:
                    raise DataFormatError(person_dir, "person folder has no *skel.txt frame files")
                frames, dropped = [], 0
                for path in files:
                    coords, tracked, cut = read_ias_frame(path, self.first_skeleton_only)
                    if cut:
                        self.drop(EXTRA_SKELETON_DROP)
                    if tracked:
                        frames.append(coords)
                    else:
                        dropped += 1
                if dropped:
                    self.drop(UNTRACKED_DROP, dropped)
                if not frames:
                    self.drop(EMPTY_SEQUENCE_DROP, 1)
                    continue
                records.append(SkeletonSequence(
                    frames=np.stack(frames), layout="kinect-v1-20", person=person_ids[person_dir.name],
                    sequence=f"{session}/{person_dir.name}", session=session, source=str(person_dir),
                ))
        return records

    def verify(self) -> list[str]:
        problems: list[str] = []
        root = self.require_root()
        present = {s for s, _ in self._session_dirs()}
        problems += [f"missing session folder {root / folder}" for s, folder in self.session_folders if s not in present]
        people = {s: {p.name for p in self._person_dirs(d)} for s, d in self._session_dirs()}
        first = self.session_folders[0][0]
        training = people.get(first, set())
        for session, _ in self.session_folders[1:]:
            unseen = sorted(people.get(session, set()) - training, key=natural_key)
            if training and unseen:
                problems.append(f"{session}: persons without a {first} folder (closed-set needs them): {unseen}")
        tops = {folder.split("/")[0] for _, folder in self.session_folders}
        extra = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in tops and not p.name.startswith("."))
        if extra:
            problems.append(f"unexpected folders under {root} (ignored): {extra}")
        return problems
