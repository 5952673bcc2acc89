"""Cold parse vs warm (cached .npz) load of on-disk datasets in their original formats, and
what the cache key's content checksum costs.

Writes IAS-Lab-sized skeleton data and a Market-1501-3D-style release of OBJ clouds into a
temporary folder with the test-suite's fixture writers, then times:
  cold     - parse every file (cache disabled)
  write    - parse and write the cache entry
  warm     - checksum the sources and read the cache entry
  stat key - the anchor: a key from each file's path, size and mtime (what the cache used before)
  content  - the key the cache uses: each file's path and a BLAKE2 hash of its bytes
    python benchmarks/bench_data_cache.py [--ias-frames 300] [--clouds-ids 40 --points 8192]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ias-persons", type=int, default=11)
    parser.add_argument("--ias-frames", type=int, default=300, help="frames per sequence (IAS-Lab has ~500)")
    parser.add_argument("--cloud-ids", type=int, default=40)
    parser.add_argument("--points", type=int, default=8192)
    args = parser.parse_args()

    from formats_kinect import write_ias_lab
    from formats_pointclouds import write_market3d

    from reid_bench.cache import fingerprint_files
    from reid_bench.registry import get_registry
    from reid_bench.trial import HarnessData

    def stat_key(root: Path, files: list[Path]) -> str:
        import hashlib
        import os

        digest = hashlib.sha256()
        for name in sorted(str(f) for f in files):
            st = os.stat(name)
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    reg = get_registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_ias_lab(root, persons=args.ias_persons, frames=args.ias_frames)
        write_market3d(root, identities=args.cloud_ids, points=(args.points, args.points), images=2)
        for name in ("ias-lab", "market1501-3d"):
            files = sum(1 for p in (root / name).rglob("*") if p.is_file())
            size = sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file()) / 2**20
            cold, recs = timed(lambda: HarnessData(reg, str(root), {}, cache_dir=None).load(name))
            cache = Path(tmp) / f"cache-{name}"
            write, _ = timed(lambda: HarnessData(reg, str(root), {}, cache_dir=cache).load(name))
            warm, _ = timed(lambda: HarnessData(reg, str(root), {}, cache_dir=cache).load(name), repeat=3)
            entry = sum(p.stat().st_size for p in cache.glob("*.npz")) / 2**20
            sources = HarnessData(reg, str(root), {}, cache_dir=None).dataset(name).source_files()
            stat_s, _ = timed(lambda: stat_key(root / name, sources), repeat=3)
            content_s, _ = timed(lambda: fingerprint_files(root / name, sources), repeat=3)
            rows.append((name, files, f"{size:.1f}", len(recs), f"{cold:.3f}", f"{write:.3f}", f"{warm:.3f}",
                         f"{cold / warm:.0f}x", f"{entry:.1f}", f"{stat_s:.3f}", f"{content_s:.3f}",
                         f"{content_s / stat_s:.1f}x", f"{100 * content_s / warm:.0f}%"))
    header = ("dataset", "files", "source MiB", "records", "cold s", "parse+write s", "warm s", "speed-up", "cache MiB",
              "stat key s", "content key s", "key cost", "key share of warm")
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


if __name__ == "__main__":
    main()
