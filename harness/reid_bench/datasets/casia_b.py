"""CASIA-B skeleton loaders: 14-joint 3D poses (SM-SGE's line of work) and GaitGraph's COCO-17 CSV.

Both key a sequence by CASIA-B's own video name ``SSS-CC-NN-VVV`` (subject 001-124, condition
nm/bg/cl, sequence number, view 000-180 in steps of 18), so every record carries
``person=int(SSS)``, ``condition=CC``, ``session="CC-NN"``, ``view=VVV`` and
``sequence="SSS-CC-NN-VVV"``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.datasets import DataFormatError, FileDataset, data_files
from reid_bench.layouts import CASIA_14, COCO_17

CASIA_VIEWS: tuple[str, ...] = tuple(f"{angle:03d}" for angle in range(0, 181, 18))
#: Sequences per subject and view in the release (nm-01..06, bg-01..02, cl-01..02).
CASIA_SEQUENCES_PER_CONDITION: dict[str, int] = {"nm": 6, "bg": 2, "cl": 2}
CASIA_SUBJECTS = range(1, 125)

_SEQUENCE_NAME = re.compile(r"^(\d{3})-([a-z]{2})-(\d{2})-(\d{3})$")
_CITATION_CASIA = (
    "S. Yu, D. Tan, T. Tan. A Framework for Evaluating the Effect of View Angle, Clothing and Carrying "
    "Condition on Gait Recognition. ICPR 2006."
)


@dataclass(frozen=True)
class CasiaSequenceId:
    subject: int
    condition: str
    number: int
    view: str

    @property
    def name(self) -> str:
        return f"{self.subject:03d}-{self.condition}-{self.number:02d}-{self.view}"

    @property
    def session(self) -> str:
        return f"{self.condition}-{self.number:02d}"


def parse_sequence_id(text: str, path: Path | str, line: int | None = None) -> CasiaSequenceId:
    """Check a ``SSS-CC-NN-VVV`` name against what CASIA-B contains; errors name file and line."""
    match = _SEQUENCE_NAME.match(text)
    if not match:
        raise DataFormatError(path, f"{text!r} is not a CASIA-B sequence name SSS-CC-NN-VVV (e.g. 001-nm-01-090)", line)
    subject, condition, number, view = int(match[1]), match[2], int(match[3]), match[4]
    if subject not in CASIA_SUBJECTS:
        raise DataFormatError(path, f"{text!r}: subject {subject} outside CASIA-B's 001-124", line)
    if condition not in CASIA_SEQUENCES_PER_CONDITION:
        raise DataFormatError(path, f"{text!r}: unknown walking condition {condition!r} (expected nm, bg or cl)", line)
    if not 1 <= number <= CASIA_SEQUENCES_PER_CONDITION[condition]:
        raise DataFormatError(
            path, f"{text!r}: CASIA-B has {condition}-01..{CASIA_SEQUENCES_PER_CONDITION[condition]:02d} only", line
        )
    if view not in CASIA_VIEWS:
        raise DataFormatError(path, f"{text!r}: unknown view {view!r} (expected one of {', '.join(CASIA_VIEWS)})", line)
    return CasiaSequenceId(subject, condition, number, view)


def _record(seq: CasiaSequenceId, frames: np.ndarray, layout: str, source: Path) -> SkeletonSequence:
    return SkeletonSequence(
        frames=frames,
        layout=layout,
        person=seq.subject,
        sequence=seq.name,
        view=seq.view,
        condition=seq.condition,
        session=seq.session,
        source=str(source),
    )


def _is_documentation(path: Path) -> bool:
    return path.stem.upper().startswith(("README", "LICENSE", "LICENCE"))


# --------------------------------------------------------------------------------------------
# 14-joint 3D poses
# --------------------------------------------------------------------------------------------


class CasiaB3D(FileDataset):
    """CASIA-B as 14-joint 3D poses (OpenPose 2D + 3DHumanPose lifting), one file per sequence.

    The per-sequence poses behind SM-SGE/CAGE/SPC-MGR are shared by their authors on request
    only; what they publish is windowed ``.npy`` (see ``smsge-npy``). This loader therefore
    reads a plain per-sequence container that keeps the two facts the public sources do fix:
    CASIA-B's sequence naming and 3DHumanPose's 14-joint order and [x, y, depth] columns.
    """

    modality = "skeleton"
    layout = "casia-14"
    folder = "casia-b-3d"
    loader_version = "1"
    description = (
        "CASIA-B gait videos as 14-joint 3D pose sequences (124 subjects, 11 views, nm/bg/cl), "
        "as used for skeleton re-id by SM-SGE and its successors"
    )
    data_format = (
        "<root>/**/SSS-CC-NN-VVV.txt or .npy, one file per sequence, named as CASIA-B's videos "
        "(SSS subject 001-124, CC nm|bg|cl, NN 01-06 for nm and 01-02 for bg/cl, VVV view 000..180). "
        ".txt: one frame per line, 42 numbers separated by commas and/or whitespace = x, y, z of "
        "joints 0..13 in 3DHumanPose order (head, neck, right shoulder/elbow/wrist, left "
        "shoulder/elbow/wrist, right hip/knee/ankle, left hip/knee/ankle); .npy: float array "
        "[T, 14, 3] or [T, 42] (never pickled). Coordinates are kept as estimated (image x/y "
        "and the lifted depth). README*/LICENSE* files are ignored; any other file is an error."
    )
    license = "CASIA-B: free for research use, by agreement with CBSR (Institute of Automation, CAS)"
    citation = (
        _CITATION_CASIA
        + " Poses: H. Rao et al. SM-SGE, ACM MM 2021 (3D skeletons estimated with OpenPose and "
        "C.-H. Chen & D. Ramanan, 3D Human Pose Estimation = 2D Pose Estimation + Matching, CVPR 2017)."
    )
    obtain = (
        "CASIA-B videos: http://www.cbsr.ia.ac.cn/english/Gait%20Databases.asp; the 3D skeletons are "
        "shared on request by the SM-SGE authors (https://github.com/Kali-Hac/SM-SGE), or estimate them "
        "with OpenPose + https://github.com/flyawaychase/3DHumanPose and save one file per sequence"
    )

    _SUFFIXES = (".txt", ".npy")

    def source_files(self) -> list[Path]:
        root = self.require_root()
        return sorted(data_files((p for p in root.rglob("*") if not p.is_dir() and not _is_documentation(p)),
                                 "a pose file"))

    def read(self) -> list[SkeletonSequence]:
        seen: dict[str, Path] = {}
        records = []
        for path in self.source_files():
            if path.suffix.lower() not in self._SUFFIXES:
                raise DataFormatError(path, f"unexpected file in a {self.folder} folder (expected .txt or .npy sequences)")
            seq = parse_sequence_id(path.stem, path)
            if seq.name in seen:
                raise DataFormatError(path, f"sequence {seq.name} also read from {seen[seq.name]}")
            seen[seq.name] = path
            frames = self._read_npy(path) if path.suffix.lower() == ".npy" else self._read_text(path)
            records.append(_record(seq, frames, CASIA_14.name, path))
        return records

    def _read_text(self, path: Path) -> np.ndarray:
        joints = CASIA_14.num_joints
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            # Fast path; anything unusual (blank or comment lines, bad values) goes to the checker below.
            try:
                array = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, ndmin=2)
            except ValueError:
                array = None
            if (
                array is not None
                and array.shape == (len(text.rstrip().splitlines()), joints * 3)
                and np.isfinite(array).all()
            ):
                return array.astype(np.float32).reshape(-1, joints, 3)
        rows = []
        lines = text.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        for lineno, line in enumerate(lines, start=1):
            fields = line.replace(",", " ").split()
            if len(fields) != joints * 3:
                what = "an empty line" if not fields else f"{len(fields)} values"
                raise DataFormatError(path, f"{what}, expected {joints * 3} (x, y, z of {joints} joints)", lineno)
            try:
                values = [float(v) for v in fields]
            except ValueError:
                bad = next(v for v in fields if not _is_float(v))
                raise DataFormatError(path, f"non-numeric value {bad!r}", lineno) from None
            if not all(np.isfinite(values)):
                raise DataFormatError(path, "NaN or infinite coordinate", lineno)
            rows.append(values)
        if not rows:
            raise DataFormatError(path, "empty sequence (no frames)")
        return np.asarray(rows, dtype=np.float32).reshape(-1, joints, 3)

    def _read_npy(self, path: Path) -> np.ndarray:
        joints = CASIA_14.num_joints
        array = load_numeric_npy(path)
        if array.ndim == 2 and array.shape[1] == joints * 3:
            array = array.reshape(-1, joints, 3)
        if array.ndim != 3 or array.shape[1:] != (joints, 3):
            raise DataFormatError(path, f"array of shape {array.shape}, expected [T, {joints}, 3] or [T, {joints * 3}]")
        if array.shape[0] == 0:
            raise DataFormatError(path, "empty sequence (no frames)")
        bad = np.flatnonzero(~np.isfinite(array).all(axis=(1, 2)))
        if len(bad):
            raise DataFormatError(path, f"NaN or infinite coordinate in frame {int(bad[0])} (0-based)")
        return array.astype(np.float32)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_numeric_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` array; pickled or damaged files are format errors, never unpickled."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable numeric .npy array ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        kind = getattr(array, "dtype", type(array))
        raise DataFormatError(path, f"expected a numeric array, got {kind}")
    return array


# --------------------------------------------------------------------------------------------
# GaitGraph's COCO-17 pose CSV
# --------------------------------------------------------------------------------------------

COCO_CSV_HEADER: tuple[str, ...] = ("image_name",) + tuple(
    f"{joint}_{field}" for joint in COCO_17.joints for field in ("x", "y", "conf")
)
_FRAME_FILE = re.compile(r"^(\d+)\.(jpg|png)$")


class CasiaBCoco(FileDataset):
    """GaitGraph's CASIA-B poses: HRNet COCO-17 keypoints per video frame, in one or more CSVs.

    Rows of a sequence may be split across files (GaitGraph ships the full table and its
    train/valid/test splits); a frame found in several files with identical values is kept once
    and counted, with different values it is an error.
    """

    modality = "skeleton"
    layout = "coco-17"
    folder = "casia-b-coco"
    loader_version = "1"
    description = (
        "CASIA-B as 2D COCO-17 keypoint sequences (YOLOv3 + HRNet-w32) released with GaitGraph; "
        "124 subjects, 11 views, nm/bg/cl; z = 0"
    )
    data_format = (
        "<root>/**/*.csv as written by GaitGraph's prepare_pose_estimation.py (e.g. casia-b_pose_coco.csv, "
        "casia-b_pose_{train,valid,train_valid,test}.csv). Header: image_name, then <joint>_x, <joint>_y, "
        "<joint>_conf for the 17 COCO joints in COCO order (nose ... right_ankle). image_name is the frame "
        "path <...>/SSS-CC-NN-VVV/<frame>.jpg (e.g. ./001-nm-01-090/000001.jpg). x, y are pixels; the "
        "confidence is not kept; frames are ordered by their number (frames without exactly one person "
        "detection are absent from the release, so numbers may skip)."
    )
    license = "CASIA-B: research use by agreement with CBSR; GaitGraph code and data: MIT (tteepe/GaitGraph)"
    citation = (
        _CITATION_CASIA
        + " T. Teepe, A. Khan, J. Gilg, F. Herzog, S. Hoermann, G. Rigoll. GaitGraph: Graph Convolutional "
        "Network for Skeleton-Based Gait Recognition. ICIP 2021."
    )
    obtain = "https://github.com/tteepe/GaitGraph/releases/download/v0.1/data.zip (see data/download_data.sh)"

    def source_files(self) -> list[Path]:
        root = self.require_root()
        return sorted(data_files(root.rglob("*.csv"), "a pose CSV"))

    def read(self) -> list[SkeletonSequence]:
        ids: dict[str, int] = {}  # sequence name -> index, in order of first appearance
        seq_ids: list[CasiaSequenceId] = []
        files = self.source_files()
        seq_cols, frame_cols, file_cols, line_cols, value_blocks = [], [], [], [], []
        for file_index, path in enumerate(files):
            seq_col, frame_col, line_col, values = self._read_csv(path, ids, seq_ids)
            seq_cols.append(seq_col)
            frame_cols.append(frame_col)
            file_cols.append(np.full(len(seq_col), file_index, dtype=np.int64))
            line_cols.append(line_col)
            value_blocks.append(values)
        seq = np.concatenate(seq_cols)
        frame = np.concatenate(frame_cols)
        file_of = np.concatenate(file_cols)
        line_of = np.concatenate(line_cols)
        values = np.concatenate(value_blocks)
        # Stable sort: within one (sequence, frame) the first file / line comes first.
        order = np.lexsort((frame, seq))
        same = (seq[order][1:] == seq[order][:-1]) & (frame[order][1:] == frame[order][:-1])
        keep = np.ones(len(order), dtype=bool)
        for i in np.flatnonzero(same):
            first, again = order[i], order[i + 1]
            where = f"{files[file_of[first]]}:{line_of[first]}"
            name = seq_ids[seq[again]].name
            if file_of[first] == file_of[again]:
                raise DataFormatError(
                    files[file_of[again]], f"frame {frame[again]} of {name} repeated (first at {where})", int(line_of[again])
                )
            if not np.array_equal(values[first], values[again]):
                raise DataFormatError(
                    files[file_of[again]], f"frame {frame[again]} of {name} differs from {where}", int(line_of[again])
                )
            keep[i + 1] = False
        if not keep.all():
            self.drop("frame rows repeated in another CSV with identical values (kept once)", int((~keep).sum()))
        order = order[keep]
        starts = np.flatnonzero(np.r_[True, seq[order][1:] != seq[order][:-1]])
        ends = np.r_[starts[1:], len(order)]
        records = []
        for start, end in sorted(zip(starts, ends), key=lambda se: seq_ids[seq[order[se[0]]]].name):
            rows = order[start:end]
            xyz = values[rows].copy()
            xyz[..., 2] = 0.0  # the CSV's third field is the detector confidence, not depth
            records.append(_record(seq_ids[seq[rows[0]]], xyz, COCO_17.name, files[file_of[rows[0]]]))
        return records

    #: Rows parsed per numpy call: bounds memory on GaitGraph's ~1.4M-row table.
    _CHUNK_ROWS = 50_000

    def _read_csv(
        self, path: Path, ids: dict[str, int], seq_ids: list[CasiaSequenceId]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sequence index, frame number and line of each row, and its keypoints [N, 17, 3]."""
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            first = fh.readline()
            if not first.strip():
                raise DataFormatError(path, "empty file (no header)", 1)
            self._check_header(path, first)
            seqs, frames, line_numbers, blocks = [], [], [], []
            chunk_lines: list[int] = []
            chunk_numeric: list[str] = []
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    continue  # blank lines carry no frame
                name, _, rest = line.rstrip("\r\n").partition(",")
                seq, frame = self._parse_image_name(name.strip(), path, lineno, ids, seq_ids)
                seqs.append(seq)
                frames.append(frame)
                chunk_lines.append(lineno)
                chunk_numeric.append(rest)
                if len(chunk_numeric) >= self._CHUNK_ROWS:
                    blocks.append(self._parse_rows(path, chunk_lines, chunk_numeric))
                    line_numbers += chunk_lines
                    chunk_lines, chunk_numeric = [], []
            if chunk_numeric:
                blocks.append(self._parse_rows(path, chunk_lines, chunk_numeric))
                line_numbers += chunk_lines
        if not blocks:
            raise DataFormatError(path, "no pose rows after the header (empty table)")
        return (
            np.asarray(seqs, dtype=np.int64),
            np.asarray(frames, dtype=np.int64),
            np.asarray(line_numbers, dtype=np.int64),
            np.concatenate(blocks).reshape(-1, COCO_17.num_joints, 3),
        )

    @staticmethod
    def _check_header(path: Path, line: str) -> None:
        header = tuple(h.strip() for h in line.split(","))
        if header == COCO_CSV_HEADER:
            return
        where = next((i for i, (a, b) in enumerate(zip(header, COCO_CSV_HEADER)) if a != b), None)
        detail = (
            f"column {where + 1} is {header[where]!r}, expected {COCO_CSV_HEADER[where]!r}"
            if where is not None
            else f"{len(header)} columns, expected {len(COCO_CSV_HEADER)}"
        )
        raise DataFormatError(path, f"not a GaitGraph COCO-17 pose header: {detail}", 1)

    def _parse_rows(self, path: Path, line_numbers: list[int], numeric: list[str]) -> np.ndarray:
        """The 51 keypoint values of each row; errors name the first bad line."""
        expected = len(COCO_CSV_HEADER) - 1
        try:
            values = np.loadtxt(io.StringIO("\n".join(numeric)), delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError:
            values = None
        if values is None or values.shape != (len(numeric), expected):
            self._raise_first_bad_row(path, line_numbers, numeric, expected)
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if len(bad):
            raise DataFormatError(path, "NaN or infinite keypoint value", line_numbers[int(bad[0])])
        return values

    @staticmethod
    def _raise_first_bad_row(path: Path, line_numbers: list[int], numeric: list[str], expected: int) -> None:
        for lineno, rest in zip(line_numbers, numeric):
            fields = rest.split(",") if rest else []
            if len(fields) != expected:
                raise DataFormatError(path, f"{len(fields)} keypoint values, expected {expected} (17 joints x 3)", lineno)
            for field in fields:
                if not _is_float(field):
                    raise DataFormatError(path, f"non-numeric value {field.strip()!r}", lineno)
        raise DataFormatError(path, "unreadable pose table")  # pragma: no cover - loadtxt and the scan disagree

    @staticmethod
    def _parse_image_name(
        name: str, path: Path, lineno: int, ids: dict[str, int], seq_ids: list[CasiaSequenceId]
    ) -> tuple[int, int]:
        """(sequence index, frame number) of an image path ``<...>/SSS-CC-NN-VVV/<frame>.jpg``."""
        parts = name.replace("\\", "/").rsplit("/", 2)
        if len(parts) < 2:
            raise DataFormatError(path, f"image_name {name!r} is not <...>/SSS-CC-NN-VVV/<frame>.jpg", lineno)
        folder, file = parts[-2], parts[-1]
        index = ids.get(folder)
        if index is None:
            seq_ids.append(parse_sequence_id(folder, path, lineno))
            index = ids[folder] = len(seq_ids) - 1
        match = _FRAME_FILE.match(file)
        if not match:
            raise DataFormatError(path, f"image_name {name!r}: frame file {file!r} is not <number>.jpg", lineno)
        return index, int(match[1])
