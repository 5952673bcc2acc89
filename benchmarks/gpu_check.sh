#!/usr/bin/env bash
# The GPU check: every CUDA path of reid-bench in one call of under 10 minutes.
#
#   bash benchmarks/gpu_check.sh            # on a machine whose python3 has a CUDA torch
#
# Steps, each under its own time limit, each log kept in $GPU_CHECK_OUT (default: $OUT when the
# device tool sets it, else /tmp/gpu_check):
#   cuda-tests     pytest -k cuda over the model and point-op tests (SM-SGE, OG-Net, point ops)
#   field-methods  training / embedding throughput of the ten learned skeleton methods on CUDA
#   ognet          OG-Net training at batch 36 x 4,096 points (the release: ~112 samples/s on a 2080 Ti)
#   smsge-paper    SM-SGE's whole fit at the ias defaults (120 epochs) on IAS-sized synthetic windows,
#                  stopped after 3 minutes if unfinished and projected from the epochs done
#   metrics        evaluate_retrieval on CUDA at MSMT17 scale (11,659 x 82,161), checked against the
#                  CPU path (itself checked against a numpy loop by the test suite and bench_metrics)
# then one table: step, exit status, seconds, and each step's figures.
#
# Without a CUDA device it prints one line and exits 0 (CI and this project's CPU machines).
# GPU_CHECK_DEVICE=cpu GPU_CHECK_SMOKE=1 runs every step on CPU at toy sizes, which is how the test
# suite keeps this script working where no GPU is.
#
# The GPU machines have torch, numpy, scipy, scikit-learn, pytest, rich and typer but not Ray or
# MLflow, and no network: when reid_bench is not importable the script installs the harness and
# its plugins without dependencies into a private folder (setuptools, no build isolation). The
# steps call models and metrics directly, so nothing here needs Ray or MLflow. GPU_CHECK_INSTALL=1
# installs that private copy even where reid_bench is importable (the test suite does, to check it).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SMOKE=${GPU_CHECK_SMOKE:-0}
DEST=${GPU_CHECK_OUT:-${OUT:-${TMPDIR:-/tmp}/gpu_check}}
mkdir -p "$DEST" || exit 1

if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: skipped: $PY sees no CUDA device (torch missing or CPU-only)"
  exit 0
fi

if [ "${GPU_CHECK_INSTALL:-0}" = 1 ] || ! "$PY" -c 'import reid_bench, reid_bench_smsge, reid_bench_ognet' 2>/dev/null; then
  site="$DEST/site"
  echo "gpu_check: installing reid-bench and its plugins into $site (no dependencies, offline)"
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index --target "$site" . plugins/*/ \
    > "$DEST/install.log" 2>&1 || { echo "gpu_check: install failed, see $DEST/install.log"; tail -5 "$DEST/install.log"; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$SMOKE" = 1 ]; then
  FIELD=(--methods lstm-1 --epochs 1)
  OGNET=(--model ognet-small --batch 2 --points 256 --mode train --threads 1)
  SMSGE=(--paper-budget --epochs 1 --train-windows 128 --threads 1)
  METRICS=(--queries 200 --gallery 2000 --repeat 1 --compare-cpu)
else
  FIELD=(--epochs 1)
  OGNET=(--batch 36 --points 4096 --mode train --repeat 5 --warmup 2)
  SMSGE=(--paper-budget --train-windows 1800 --max-minutes 3)
  METRICS=(--queries 11659 --gallery 82161 --ids 1041 --cameras 15 --repeat 3 --skip-reference)
fi

: > "$DEST/steps.tsv"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its log, record status and time
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "gpu_check: $name (at most ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$DEST/$name.log" 2>&1
  printf '%s\t%s\t%s\n' "$name" "$?" "$((SECONDS - t0))" >> "$DEST/steps.tsv"
}

export PYTHONUNBUFFERED=1
step cuda-tests 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_smsge.py tests/test_ognet.py tests/test_pointops.py -k cuda
step field-methods 140 "$PY" benchmarks/bench_field_methods.py --devices "$DEVICE" "${FIELD[@]}"
step ognet 45 "$PY" benchmarks/bench_ognet.py --device "$DEVICE" "${OGNET[@]}"
step smsge-paper 210 "$PY" benchmarks/bench_smsge.py --devices "$DEVICE" "${SMSGE[@]}"
step metrics 75 "$PY" benchmarks/bench_metrics.py --device "$DEVICE" "${METRICS[@]}"

echo
echo "gpu_check on $("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "| torch", torch.__version__)' 2>/dev/null)"
printf '%-14s %6s %8s\n' step status seconds
failed=0
while IFS=$'\t' read -r name rc secs; do
  status=ok
  [ "$rc" = 0 ] || { status="rc=$rc"; failed=1; }
  [ "$rc" = 124 ] && status=timeout
  printf '%-14s %6s %8s\n' "$name" "$status" "$secs"
done < "$DEST/steps.tsv"
for name in cuda-tests field-methods ognet smsge-paper metrics; do
  echo
  echo "== $name"
  tail -n 14 "$DEST/$name.log"
done
exit $failed
