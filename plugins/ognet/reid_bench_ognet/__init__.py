"""OG-Net (Zheng et al., Parameter-Efficient Person Re-identification in the 3D Space, TNNLS 2022).

Models ``ognet``, ``ognet-small`` and ``ognet-deep`` live in :mod:`reid_bench_ognet.model`; the
network itself, in plain PyTorch on the harness's point operations, in :mod:`.network`.
"""
