"""KS20 VisLab Multi-View Kinect Skeleton dataset (Nambiar et al.): 20 people, Kinect v2, 5 views.

The public preprocessing of the skeleton re-id papers (Kali-Hac/SPC-MGR, Kali-Hac/SimMC:
``Preprocess.py``) reads the release (converted from ``.mat`` to text) as
``<view>/gc<k>_body<n>_<timestamp>...``: one file per frame holding 25 rows whose fields 1-3 are
x, y, z of the Kinect v2 joints in SDK order. A sequence is one gait cycle (``gc<k>``) of one body
seen from one view; its frames are the files ordered by timestamp.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.datasets import DataFormatError, FileDataset, data_files
from reid_bench.datasets.ias_lab import natural_key, numbered_lines, parse_number

VIEWS = ("frontal", "left_diagonal", "left_lateral", "right_diagonal", "right_lateral")
NUM_JOINTS = 25
FRAME_NAME = re.compile(r"^(?P<cycle>gc\d+)_body(?P<body>\d+)_(?P<stamp>\d+)(?:[_.].*)?$")


def read_ks20_frame(path: Path) -> np.ndarray:
    """One frame file: joint positions [25, 3] (fields 1-3 of each row)."""
    lines = numbered_lines(path)
    if len(lines) != NUM_JOINTS:
        where = lines[NUM_JOINTS][0] if len(lines) > NUM_JOINTS else (lines[-1][0] if lines else None)
        raise DataFormatError(path, f"expected {NUM_JOINTS} joint rows, found {len(lines)}", line=where)
    coords = np.empty((NUM_JOINTS, 3), dtype=np.float64)
    for j, (number, line) in enumerate(lines):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise DataFormatError(path, f"expected at least 4 comma-separated fields (joint,x,y,z), found {len(fields)}",
                                  line=number)
        for k, axis in enumerate("xyz", start=1):
            value = parse_number(path, number, axis, fields[k])
            if not math.isfinite(value):
                raise DataFormatError(path, f"non-finite {axis} coordinate {fields[k]!r}", line=number)
            coords[j, k - 1] = value
    return coords.astype(np.float32)


class KS20(FileDataset):
    modality = "skeleton"
    layout = "kinect-v2-25"
    folder = "ks20"
    loader_version = "1"
    description = (
        "KS20 VisLab Multi-View Kinect Skeleton dataset: 20 people walking, Kinect v2 (25 joints), five "
        "viewpoints, several gait cycles per view. View = folder, gait cycle = condition."
    )
    data_format = (
        "<root>/{frontal,left_diagonal,left_lateral,right_diagonal,right_lateral}/gc<k>_body<n>_<timestamp> (optionally followed by _ or . and more) "
        "(the release's .mat converted to text, as the SPC-MGR/SimMC preprocessing reads it): one file per "
        "frame, 25 rows 'joint,x,y,z,...' in Kinect v2 SDK joint order (fields 1-3 used), metres -> layout "
        "kinect-v2-25. Frames of a sequence ordered by timestamp. Person id = n (the release's body number, "
        "not renumbered); view = folder; condition = 'gc<k>'; sequence id '<view>/gc<k>_body<n>'."
    )
    license = "research use under the VisLab KS20 license agreement (granted on request)"
    citation = (
        "A. Nambiar, A. Bernardino, J. C. Nascimento, A. Fred. Towards View-point Invariant Person "
        "Re-identification via Fusion of Anthropometric and Gait Features from Kinect Measurements. VISAPP 2017."
    )
    obtain = "http://vislab.isr.ist.utl.pt/datasets/#ks20 (license agreement, then on request)"

    def _view_dirs(self) -> list[tuple[str, Path]]:
        root = self.require_root()
        return [(v, root / v) for v in VIEWS if (root / v).is_dir()]

    @staticmethod
    def _frame_files(view_dir: Path) -> list[Path]:
        return sorted(data_files((f for f in view_dir.iterdir() if not f.name.startswith(".")),
                                 "a KS20 gait-cycle file"), key=lambda f: natural_key(f.name))

    def source_files(self) -> list[Path]:
        return sorted(f for _, d in self._view_dirs() for f in self._frame_files(d))

    def read(self) -> list[SkeletonSequence]:
        records: list[SkeletonSequence] = []
        for view, view_dir in self._view_dirs():
            sequences: dict[tuple[int, str], list[tuple[int, str, Path]]] = defaultdict(list)
            for path in self._frame_files(view_dir):
                m = FRAME_NAME.match(path.name)
                if m is None:
                    raise DataFormatError(path, "unexpected file name; KS20 frames are named gc<k>_body<n>_<timestamp>...")
                sequences[(int(m["body"]), m["cycle"])].append((int(m["stamp"]), path.name, path))
            for (body, cycle), frames in sorted(sequences.items(), key=lambda kv: (kv[0][0], natural_key(kv[0][1]))):
                frames.sort(key=lambda f: (f[0], natural_key(f[1])))
                records.append(SkeletonSequence(
                    frames=np.stack([read_ks20_frame(p) for _, _, p in frames]), layout="kinect-v2-25", person=body,
                    sequence=f"{view}/{cycle}_body{body}", view=view, condition=cycle,
                    source=str(view_dir / f"{cycle}_body{body}_*"),
                ))
        return records

    def verify(self) -> list[str]:
        root = self.require_root()
        problems = [f"missing view folder {root / v}" for v in VIEWS if not (root / v).is_dir()]
        extra = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in VIEWS and not p.name.startswith("."))
        if extra:
            problems.append(f"unexpected folders under {root} (not read): {extra}")
        return problems
