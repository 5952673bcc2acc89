"""PoseGait and D_PG: pose features of Liao et al. (Pattern Recognition 2020)."""
