"""The parsed-data cache: npz round trip, invalidation, corrupt entries, drop reports."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from reid_bench.api import PointCloud, SkeletonSequence
from reid_bench.cache import cache_path, fingerprint_files, load_records, save_records
from reid_bench.datasets import DataFormatError, DatasetNotFoundError, FileDataset
from reid_bench.registry import get_registry
from reid_bench.trial import HarnessData


class CsvWalks(FileDataset):
    """A toy on-disk format: <person>/<seq>.csv, 20 joints x 3 per row; rows of zeros are dropped."""

    modality = "skeleton"
    obtain = "written by the test"
    parses = 0

    def source_files(self):
        return sorted(self.root.glob("*/*.csv"))

    def read(self):
        type(self).parses += 1
        out = []
        for path in self.source_files():
            rows = []
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                try:
                    vals = [float(v) for v in line.split(",")]
                except ValueError:
                    raise DataFormatError(path, "non-numeric value", line=n) from None
                if not any(vals):
                    self.drop("all-zero frame")
                    continue
                rows.append(np.asarray(vals, np.float32).reshape(20, 3))
            out.append(SkeletonSequence(np.stack(rows), "kinect-v1-20", int(path.parent.name), path.stem, source=str(path)))
        return out


def _write(root: Path, persons=2, frames=5, zero_rows=1) -> Path:
    rng = np.random.default_rng(0)
    for p in range(1, persons + 1):
        (root / str(p)).mkdir(parents=True, exist_ok=True)
        rows = [",".join(f"{v:.4f}" for v in rng.normal(size=60)) for _ in range(frames)] + ["0," * 59 + "0"] * zero_rows
        (root / str(p) / "s1.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def data(tmp_path, monkeypatch):
    reg = get_registry()
    monkeypatch.setattr(reg, "dataset", lambda name: CsvWalks)
    _write(tmp_path / "root" / "walks")
    CsvWalks.parses = 0
    return HarnessData(reg, str(tmp_path / "root"), {}, cache_dir=tmp_path / "cache")


def test_round_trip_skeletons_and_clouds(tmp_path):
    seqs = [SkeletonSequence(np.random.rand(n, 20, 3).astype(np.float32), "kinect-v1-20", p, f"s{p}", "v", "c", "A", "/x")
            for p, n in ((1, 3), (2, 7))]
    save_records(tmp_path / "s.npz", seqs, {"drops": {"x": 2}})
    back, extra = load_records(tmp_path / "s.npz")
    assert extra == {"drops": {"x": 2}}
    for a, b in zip(seqs, back):
        np.testing.assert_array_equal(a.frames, b.frames)
        assert (a.person, a.sequence, a.view, a.condition, a.session, a.source) == (b.person, b.sequence, b.view, b.condition, b.session, b.source)
    clouds = [PointCloud(np.random.rand(5, 6).astype(np.float32), 3, 2, "/c.obj", "query", "market")]
    save_records(tmp_path / "c.npz", clouds)
    (back_cloud,), _ = load_records(tmp_path / "c.npz")
    np.testing.assert_array_equal(back_cloud.points, clouds[0].points)
    assert (back_cloud.person, back_cloud.camera, back_cloud.subset, back_cloud.domain) == (3, 2, "query", "market")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:  # no object arrays anywhere
        assert all(z[k].dtype != object for k in z.files)


def test_warm_load_uses_the_cache_and_keeps_the_drop_report(data, tmp_path):
    cold = data.load("walks")
    assert CsvWalks.parses == 1 and data.cache_hits["walks"] is False
    assert data.drops["walks"] == {"all-zero frame": 2}
    again = HarnessData(data.registry, str(data.data_root), {}, cache_dir=tmp_path / "cache")
    warm = again.load("walks")
    assert CsvWalks.parses == 1 and again.cache_hits["walks"] is True
    assert again.drops["walks"] == {"all-zero frame": 2}
    assert [r.frames.tobytes() for r in warm] == [r.frames.tobytes() for r in cold]


def test_changed_source_invalidates(data, tmp_path):
    data.load("walks")
    f = data.data_root / "walks" / "1" / "s1.csv"
    f.write_text(f.read_text() + ",".join(["1.0"] * 60) + "\n")
    again = HarnessData(data.registry, str(data.data_root), {}, cache_dir=tmp_path / "cache")
    recs = again.load("walks")
    assert CsvWalks.parses == 2 and again.cache_hits["walks"] is False
    assert len(recs[0].frames) == 6


def test_corrupt_entry_is_rebuilt(data, tmp_path, caplog):
    data.load("walks")
    (entry,) = list((tmp_path / "cache").glob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    again = HarnessData(data.registry, str(data.data_root), {}, cache_dir=tmp_path / "cache")
    again.load("walks")
    assert any("unreadable dataset cache entry" in r.getMessage() for r in caplog.records)
    assert CsvWalks.parses == 2
    assert load_records(entry) is not None  # rewritten whole


def test_bad_file_names_file_and_line_and_writes_no_cache(data, tmp_path):
    bad = data.data_root / "walks" / "2" / "s1.csv"
    lines = bad.read_text().splitlines()
    lines[2] = lines[2].replace("0", "x", 1)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"walks/2/s1.csv:3: non-numeric"):
        data.load("walks")
    assert not list((tmp_path / "cache").glob("*")) or not list((tmp_path / "cache").glob("*.npz"))


def test_missing_dataset_names_the_folder(tmp_path):
    ds = CsvWalks(root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        ds.load()
    with pytest.raises(DatasetNotFoundError, match="--data-root"):
        CsvWalks(root=None).load()


def test_fingerprint_is_the_content(tmp_path):
    root = _write(tmp_path / "r")
    files = sorted(root.glob("*/*.csv"))
    before = fingerprint_files(root, files)
    assert fingerprint_files(root, files) == before
    os.utime(files[0], ns=(1, 1))  # a new time alone is not new data
    assert fingerprint_files(root, files) == before
    stat = files[0].stat()
    text = files[0].read_text()
    files[0].write_text(text.replace("0", "9", 1))  # same size, time restored: still seen
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert files[0].stat().st_size == stat.st_size and fingerprint_files(root, files) != before
    assert cache_path(tmp_path, "a/b", "1", "x").name == "a_b-v1-x.npz"


def test_cache_warnings_are_plain_lines(tmp_path):
    """An unwritable cache folder does not fail the run; the CLI says so in one plain line."""
    import subprocess
    import sys

    from formats_kinect import write_ias_lab

    write_ias_lab(tmp_path / "data", persons=3, frames=8)
    (tmp_path / "file").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "reid_bench.cli", "run", "--model", "d13", "--protocol", "ias",
                           "--no-ray", "--seeds", "1", "--fold", "A", "--data-root", str(tmp_path / "data"),
                           "--cache-dir", str(tmp_path / "file" / "cache"), "--tracking-uri",
                           f"sqlite:///{tmp_path / 'mlflow.db'}", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if "dataset cache" in line]
    assert warnings and all(line.startswith("warning: could not write the dataset cache ") for line in warnings)
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr
