"""PsyMo (Cosma & Radoi, WACV 2024): 2D COCO-17 AlphaPose skeletons of 312 walkers.

Checked against the dataset's README.txt (naming ``<ID>:<viewpoint>:<direction>:<run_id>:<variation>``,
skeletons under ``semantic_data/skeletons/<ID>/*.json`` with the 2D keypoints in ``keypoints``),
the authors' repository README (cosmaadrian/psymo, README.md: 7 variations, 6 camera angles = 3
viewpoints x 2 walking directions, 48 walks per person: 3 x 4 NM + 3 x 2 x 6 others) and
AlphaPose's output format (MVIG-SJTU/AlphaPose docs/output.md: one entry per detected person
and image, ``keypoints`` = x1,y1,c1,..., ``score`` = the person's confidence).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.config import Probability
from reid_bench.datasets import DataFormatError, FileDataset, data_files
from reid_bench.layouts import COCO_17

VARIATIONS: tuple[str, ...] = ("nm", "bg", "cl", "ph", "txt", "wsf", "wss")
VIEWS: tuple[str, ...] = ("0", "45", "90")
_NAME_RE = re.compile(r"^(?P<pid>\d+)_(?P<view>\d+)_(?P<direction>[01])_(?P<run>\d+)_(?P<variation>[a-z]+)$")
_KEYPOINT_VALUES = COCO_17.num_joints * 3

DROP_EXTRA = "extra detections in a frame - kept the highest-scored person"
DROP_GAPS = "frames without a detection - gaps in image_id that are not interpolated"
DROP_LOW = "frames below min_frame_confidence"
DROP_EMPTY_WALKS = "walks with no frame left after min_frame_confidence"


@dataclass(frozen=True)
class WalkName:
    """The naming fields of one walk; ``view`` is the viewpoint in degrees as text ("0", "45", "90")."""

    pid: int
    view: str
    direction: int
    run: int
    variation: str

    @property
    def session(self) -> str:
        return f"dir{self.direction}-run{self.run}"


def parse_walk_name(stem: str) -> WalkName:
    """``<ID>_<view>_<direction>_<run>_<variation>`` (file stem or sequence id) -> its fields."""
    m = _NAME_RE.match(stem)
    if m is None:
        raise ValueError(f"{stem!r} does not follow <ID>_<view>_<direction>_<run>_<variation>")
    if m["variation"] not in VARIATIONS:
        raise ValueError(f"{stem!r}: unknown variation {m['variation']!r} (known: {', '.join(VARIATIONS)})")
    return WalkName(int(m["pid"]), str(int(m["view"])), int(m["direction"]), int(m["run"]), m["variation"])


@dataclass
class PsyMoOptions:
    """``min_frame_confidence``: frames whose mean keypoint confidence is below it are dropped and
    counted; 0 keeps every frame (AlphaPose gives a position for every keypoint, also when unsure)."""

    min_frame_confidence: Probability = 0.0


def _frame_number(path: Path, index: int, image_id) -> int:
    text = str(image_id)
    stem = text.rsplit(".", 1)[0] if "." in text else text
    if not stem.isdigit():
        raise DataFormatError(path, f"detection #{index}: image_id {image_id!r} is not <frame number>.jpg")
    return int(stem)


def read_walk(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One AlphaPose JSON walk -> (keypoints [T, 17, 3] as x, y, confidence; frame numbers [T];
    extra detections removed; missing frame numbers). Frames are sorted by frame number."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON (truncated file?): {exc.msg} at column {exc.colno}",
                              line=exc.lineno) from None
    if not isinstance(raw, list):
        raise DataFormatError(path, f"expected a JSON list of detections, got {type(raw).__name__}")
    if not raw:
        raise DataFormatError(path, "no detections (empty walk)")
    best: dict[int, tuple[float, list]] = {}
    for i, det in enumerate(raw):
        if not isinstance(det, dict):
            raise DataFormatError(path, f"detection #{i} is not a JSON object")
        for key in ("image_id", "keypoints", "score"):
            if key not in det:
                raise DataFormatError(path, f"detection #{i} has no {key!r}")
        frame = _frame_number(path, i, det["image_id"])
        kps = det["keypoints"]
        if not isinstance(kps, list) or len(kps) != _KEYPOINT_VALUES:
            count = len(kps) if isinstance(kps, list) else type(kps).__name__
            raise DataFormatError(path, f"detection #{i} (image_id {det['image_id']!r}): keypoints has {count} values, "
                                        f"COCO-17 needs {_KEYPOINT_VALUES} (17 x [x, y, confidence])")
        score = det["score"]
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise DataFormatError(path, f"detection #{i}: score {score!r} is not a number")
        if frame not in best or score > best[frame][0]:
            best[frame] = (float(score), kps)
    extra = len(raw) - len(best)
    frames = sorted(best)
    try:
        values = np.asarray([best[f][1] for f in frames])  # no dtype: strings or nulls must not pass as numbers
    except (TypeError, ValueError):
        values = None
    if values is None or values.dtype.kind not in "fi" or not np.isfinite(values).all():
        for f in frames:
            for v in best[f][1]:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                    raise DataFormatError(path, f"frame {f}: keypoint value {v!r} is not a finite number")
    numbers = np.asarray(frames, dtype=np.int64)
    gaps = int((np.diff(numbers) - 1).sum()) if len(numbers) > 1 else 0
    return values.astype(np.float64).reshape(len(frames), COCO_17.num_joints, 3), numbers, extra, gaps


class PsyMo(FileDataset):
    modality = "skeleton"
    layout = "coco-17"
    folder = "psymo"
    folder_aliases = ("psymo-subset",)  # the name of the 10-identity development copy
    loader_version = "1"
    options_class = PsyMoOptions
    description = (
        "PsyMo gait dataset: 312 people, 48 walks each (viewpoints 0/45/90 degrees, two directions, variations "
        "nm x 2 runs, bg, cl, ph, txt, wsf, wss), 2D COCO-17 skeletons from AlphaPose (pixels, z = 0). "
        "person = ID, view = viewpoint, condition = variation, session = dir<d>-run<r>, sequence = file stem."
    )
    data_format = (
        "<root>/semantic_data/skeletons/<ID>/<ID:03d>_<view:02d>_<direction>_<run>_<variation>.json: AlphaPose "
        "results, a JSON list with one entry per detected person and frame (image_id '<frame>.jpg', keypoints = "
        "17 x [x, y, confidence] in pixels, score). Where a frame has several detections the highest-scored one "
        "is kept and the others are counted as dropped; frame numbers missing from a walk (no detection) are not "
        "interpolated and are counted; keypoint confidences are not used (every keypoint keeps AlphaPose's "
        "position; option min_frame_confidence drops, and counts, frames whose mean confidence is lower). "
        "Coordinates stay in image pixels (y down), z = 0. <root>/walks-v2.csv (optional) is checked by verify."
    )
    license = "CC BY-NC-ND 4.0 (non-commercial, no derivatives)"
    citation = (
        "Cosma, Radoi: PsyMo: A Dataset for Estimating Self-Reported Psychological Traits from Gait. "
        "WACV 2024, pp. 4603-4613"
    )
    obtain = "https://github.com/cosmaadrian/psymo (dataset link https://bit.ly/3Q91ypD); unpack into <data-root>/psymo"

    def skeleton_dir(self) -> Path:
        return self.require_root() / "semantic_data" / "skeletons"

    def source_files(self) -> list[Path]:
        base = self.skeleton_dir()
        return sorted(data_files(base.glob("*/*.json"), "a PsyMo skeleton file (*.json)")) if base.is_dir() else []

    def read(self) -> list[SkeletonSequence]:
        threshold = float(self.options.min_frame_confidence)
        records = []
        folders = {p.parent for p in self.source_files()}
        for folder in sorted(self.skeleton_dir().iterdir()):
            if folder.is_dir() and folder not in folders:
                raise DataFormatError(folder, "person folder without any skeleton .json file")
        for path in self.source_files():
            try:
                name = parse_walk_name(path.stem)
            except ValueError as exc:
                raise DataFormatError(path, str(exc)) from None
            if not path.parent.name.isdigit() or int(path.parent.name) != name.pid:
                raise DataFormatError(path, f"walk of ID {name.pid} in folder {path.parent.name!r}")
            if name.view not in VIEWS:
                raise DataFormatError(path, f"unknown viewpoint {name.view} (known: {', '.join(VIEWS)})")
            keypoints, _, extra, gaps = read_walk(path)
            if extra:
                self.drop(DROP_EXTRA, extra)
            if gaps:
                self.drop(DROP_GAPS, gaps)
            if threshold > 0:
                keep = keypoints[:, :, 2].mean(axis=1) >= threshold
                if not keep.all():
                    self.drop(DROP_LOW, int((~keep).sum()))
                keypoints = keypoints[keep]
                if len(keypoints) == 0:
                    self.drop(DROP_EMPTY_WALKS)
                    continue
            frames = keypoints.copy()
            frames[:, :, 2] = 0.0  # 2D: confidence is not a coordinate
            records.append(SkeletonSequence(
                frames=frames.astype(np.float32), layout=COCO_17.name, person=name.pid, sequence=path.stem,
                view=name.view, condition=name.variation, session=name.session, source=str(path),
            ))
        return records

    def verify(self) -> list[str]:
        """Walks listed in walks-v2.csv (for the IDs present) without a skeleton file, and the reverse."""
        root = self.require_root()
        files = {p.stem for p in self.source_files()}
        index = next((root / n for n in ("walks-v2.csv", "walks.csv") if (root / n).is_file()), None)
        if index is None:
            return []
        problems = []
        listed: set[str] = set()
        ids = {s.split("_", 1)[0] for s in files}
        with index.open(newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    stem = (f"{int(row['ID']):03d}_{int(row['viewpoint']):02d}_{int(row['direction'])}_"
                            f"{int(row['run'])}_{row['variation']}")
                except (KeyError, TypeError, ValueError):
                    problems.append(f"{index}:{n}: malformed row {row}")
                    continue
                if stem.split("_", 1)[0] in ids:
                    listed.add(stem)
        problems += [f"{index}: lists {s} but semantic_data/skeletons has no such file" for s in sorted(listed - files)]
        problems += [f"{s}.json is not listed in {index.name}" for s in sorted(files - listed)]
        return problems
