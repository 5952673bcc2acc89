"""CloudHistogram: a hand-made point-cloud descriptor with nothing learned but standardisation.

The cloud is cut into horizontal bands between its lowest and highest point. Per band: a 2D
histogram of chromaticity (r, g) = (R, G) / (R + G + B), which ignores brightness, and a
histogram of intensity (R + G + B) / 3; square-rooted (Hellinger) so that a few dominant bins
do not swamp the rest. Shape statistics: the height, width and depth of the cloud (robust
percentile extents), the square roots of its PCA eigenvalues, the share of points and the
width of each band. ``fit`` only estimates the per-dimension mean and spread on the training
split; ``embed`` standardises, weights the colour and shape blocks, and L2-normalises - the
classic colour-histogram re-id baseline (cf. ELF / LOMO-style colour features) lifted to 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from reid_bench.api import (DataSpec, Model, NonNegativeFloat, NonNegativeInt, PositiveInt, Probability, Range,
                            SampleSet, TrialContext)


@dataclass
class CloudHistogramConfig:
    """Settings of the CloudHistogram descriptor.

    ``bands``: horizontal bands between the lowest and highest point of a cloud.
    ``chroma_bins``: bins per axis of the per-band (r, g) chromaticity histogram, over
    ``chroma_range`` (chromaticities of real colours rarely leave [0.1, 0.6]).
    ``intensity_bins``: bins of the per-band intensity histogram over [0, 1].
    ``global_chroma_bins``: bins per axis of one extra chromaticity histogram of the whole cloud
    (0 = none). ``shape``: append the shape statistics. ``colour_weight`` / ``shape_weight``:
    multipliers of the two standardised blocks before L2 normalisation (relative importance).
    ``trim``: percentile used for robust extents (the cloud's height is p(100 - trim) - p(trim)).
    ``standardise``: z-score every dimension with the training split's statistics.
    """

    bands: PositiveInt = 6
    chroma_bins: PositiveInt = 4
    chroma_range: tuple[Probability, Probability] = (0.1, 0.6)
    intensity_bins: PositiveInt = 4
    global_chroma_bins: NonNegativeInt = 8
    shape: bool = True
    colour_weight: NonNegativeFloat = 1.0
    shape_weight: NonNegativeFloat = 0.5
    trim: Annotated[float, Range(ge=0, lt=50)] = 2.0
    standardise: bool = True

    def __post_init__(self) -> None:
        if not self.chroma_range[0] < self.chroma_range[1]:
            raise ValueError(f"chroma_range must be (low, high) with low < high, got {self.chroma_range}")


def _hist_index(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    idx = np.floor((values - lo) / (hi - lo) * bins).astype(np.int64)
    return np.clip(idx, 0, bins - 1)


def _cloud_features(points: np.ndarray, cfg: CloudHistogramConfig) -> tuple[np.ndarray, np.ndarray]:
    """Colour block and shape block of one cloud [P, 6]."""
    xyz = points[:, :3].astype(np.float64)
    rgb = np.clip(points[:, 3:6].astype(np.float64), 0.0, 1.0)
    p = len(points)
    total = rgb.sum(axis=1) + 1e-6
    r, g = rgb[:, 0] / total, rgb[:, 1] / total
    inten = total / 3.0
    lo_c, hi_c = cfg.chroma_range

    y = xyz[:, 1]
    y_lo, y_hi = np.percentile(y, [cfg.trim, 100.0 - cfg.trim])
    span = max(y_hi - y_lo, 1e-6)
    band = np.clip(np.floor((y - y_lo) / span * cfg.bands).astype(np.int64), 0, cfg.bands - 1)

    cb, ib, nb = cfg.chroma_bins, cfg.intensity_bins, cfg.bands
    chroma_idx = band * cb * cb + _hist_index(r, lo_c, hi_c, cb) * cb + _hist_index(g, lo_c, hi_c, cb)
    chroma = np.bincount(chroma_idx, minlength=nb * cb * cb).reshape(nb, cb * cb).astype(np.float64)
    inten_idx = band * ib + _hist_index(inten, 0.0, 1.0, ib)
    inten_h = np.bincount(inten_idx, minlength=nb * ib).reshape(nb, ib).astype(np.float64)
    per_band = np.maximum(chroma.sum(axis=1, keepdims=True), 1.0)
    blocks = [np.sqrt(chroma / per_band).ravel(), np.sqrt(inten_h / per_band).ravel()]
    if cfg.global_chroma_bins > 0:
        gb = cfg.global_chroma_bins
        gidx = _hist_index(r, lo_c, hi_c, gb) * gb + _hist_index(g, lo_c, hi_c, gb)
        blocks.append(np.sqrt(np.bincount(gidx, minlength=gb * gb) / p))
    colour = np.concatenate(blocks)

    if not cfg.shape:
        return colour, np.zeros(0)
    lo, hi = np.percentile(xyz, [cfg.trim, 100.0 - cfg.trim], axis=0)
    extents = hi - lo
    centred = xyz - xyz.mean(axis=0)
    eig = np.sqrt(np.maximum(np.linalg.eigvalsh(centred.T @ centred / p), 0.0))[::-1]
    share = np.bincount(band, minlength=nb) / p
    width = np.zeros(nb)
    for b in range(nb):
        xb = xyz[band == b, 0]
        if len(xb) > 4:
            q = np.percentile(xb, [10.0, 90.0])
            width[b] = q[1] - q[0]
    shape = np.concatenate([extents, eig, share, width])
    return colour, shape


class CloudHistogram(Model):
    """Per-band chromaticity / intensity histograms + shape statistics of a coloured cloud."""

    published_as = None  # no published table has a number for it
    modality = "pointcloud"
    config_class = CloudHistogramConfig
    description = (
        "Hand-made descriptor: per-height-band chromaticity and intensity histograms (Hellinger) "
        "plus extents, PCA spread and band occupancy; standardised on the training split"
    )
    citation = (
        "reid-bench baseline (colour-histogram descriptors, cf. Gray & Tao, Viewpoint invariant "
        "pedestrian recognition with an ensemble of localized features, ECCV 2008)"
    )

    def __init__(self, config: CloudHistogramConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.split = 0

    def _raw(self, samples: SampleSet) -> tuple[np.ndarray, int]:
        data = np.asarray(samples.data)
        if data.ndim != 3 or data.shape[-1] < 6:
            raise ValueError(f"CloudHistogram expects clouds [N, P, 6], got {data.shape}")
        colour, shape = zip(*(_cloud_features(c, self.config) for c in data)) if len(data) else ((), ())
        if not colour:
            return np.zeros((0, 0)), 0
        c = np.stack(colour)
        s = np.stack(shape)
        return np.concatenate([c, s], axis=1), c.shape[1]

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        feats, split = self._raw(train)
        self.split = split
        if self.config.standardise and len(feats):
            self.mean = feats.mean(axis=0)
            self.scale = feats.std(axis=0) + 1e-3
        else:
            self.mean = np.zeros(feats.shape[1])
            self.scale = np.ones(feats.shape[1])
        ctx.progress(1.0, "standardisation estimated")

    def embed(self, samples: SampleSet) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("CloudHistogram.embed called before fit")
        feats, split = self._raw(samples)
        if len(feats) == 0:
            return np.zeros((0, len(self.mean)), dtype=np.float32)
        z = (feats - self.mean) / self.scale
        weights = np.ones(z.shape[1])
        weights[:split] = self.config.colour_weight / np.sqrt(max(split, 1))
        if z.shape[1] > split:
            weights[split:] = self.config.shape_weight / np.sqrt(z.shape[1] - split)
        z = z * weights
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return z.astype(np.float32)

    def num_parameters(self) -> int:
        return 0
