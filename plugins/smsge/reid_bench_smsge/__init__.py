"""SM-SGE (Rao et al., ACM MM 2021) for reid-bench: model ``smsge`` = ``reid_bench_smsge.model:SMSGE``.

The paper's own baseline (an LSTM on joint-scale trajectories with plain whole-window
reconstruction, no graph relations) is a named ablation::

    reid-bench run --model smsge --protocol synth-gait --set model.variant=baseline

The Table 4 rows are ``model.variant=`` ``full`` (default), ``no-multiscale`` (joint scale only),
``no-structural``, ``no-collaborative``, ``no-cross-scale``, ``no-subsequence``; finer switches:
``model.scales=joint,part`` (any subset), ``model.structural=false``, ``model.fusion_lambda=0.5``...
See ``model.SMSGEConfig`` for every field and the released-code switches.
"""
