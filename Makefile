# Two commands do all the set-up on a fresh machine:
#   make demo   - install, run the embedded default benchmark, build the leaderboard
#   make test   - install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
SEEDS ?= 3

# SM-SGE's Table 4 (cumulative: baseline ... full = the default), then leave-one-out rows.
SMSGE_VARIANTS := baseline sr mg-sr mg-sr-csi mg-sr-csi-ssr mg-sr-cr mg-sr-cr-csi full \
	no-multiscale no-structural no-collaborative no-cross-scale no-subsequence
# The field's methods (issue 15): hand-crafted descriptors, PoseGait, the tables' LSTMs, AGE, SGELA.
FIELD_MODELS := d13 d16 dpg lstm-1 lstm-m posegait age sgela
FIELD_LEARNED := lstm-1 lstm-m posegait age sgela
# The field's methods (issue 16): the prototype learners and MG-SCR, on the retrieval protocol.
PROTOTYPE_MODELS := simmc spc-mgr hi-mpc transg mocos mg-scr
CLOUD_MODELS := cloud-hist pointnet-lite ognet ognet-small ognet-deep pointnet2-ssg pointnet2-msg dgcnn

.PHONY: setup demo test bench gpu-check leaderboards docs-images ablation field prototypes clouds field-protocol clean

setup: $(VENV)/.installed

# The core and every first-party plugin (requirements.txt), one editable distribution each.
$(VENV)/.installed: pyproject.toml constraints.txt requirements.txt $(wildcard plugins/*/pyproject.toml)
	@echo "setup: creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "setup: installing reid-bench, its 9 plugins, torch (CPU), Ray, MLflow (about 4 minutes on a fresh 2-core machine, seconds from pip's cache)"
	@date +%s > $(VENV)/.install-started
	$(PIP) -r requirements.txt
	touch $@
	@echo "setup: done in $$(( $$(date +%s) - $$(cat $(VENV)/.install-started) )) s; $(BIN)/reid-bench is ready"

# The demo keeps to its own scratch folder: it never touches results/, leaderboards/ or ./mlflow.db.
DEMO := .demo
DEMO_RUN := --seeds $(SEEDS) --tracking-uri sqlite:///$(CURDIR)/$(DEMO)/mlflow.db --results-dir $(DEMO)/reid-bench-results

# It prints how long its runs took (the README quotes that figure, measured on a fresh clone).
demo: setup
	mkdir -p $(DEMO)
	@date +%s > $(DEMO)/started
	$(BIN)/reid-bench run --model d13 --protocol synth-gait $(DEMO_RUN)
	$(BIN)/reid-bench run --model smsge --protocol synth-gait $(DEMO_RUN)
	$(BIN)/reid-bench run --model cloud-hist --protocol synth-market $(DEMO_RUN)
	$(BIN)/reid-bench leaderboard --tracking-uri sqlite:///$(CURDIR)/$(DEMO)/mlflow.db --results $(DEMO)/results --out $(DEMO)/leaderboards
	@echo "Demo leaderboards written to $(DEMO)/leaderboards/ (open $(DEMO)/leaderboards/index.html)"
	@echo "demo: the runs and the boards took $$(( $$(date +%s) - $$(cat $(DEMO)/started) )) s (set-up not counted)"

# Two pytest-xdist workers: one process leaves a 2-core machine's second core idle half the time
# (Ray start-ups, subprocesses, single-threaded fits): 808 -> 475 s on 2 cores. TEST_WORKERS=0 runs
# the suite in one process. loadgroup keeps the tests marked with one xdist_group on one worker.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# Every committed board, from the committed experiment files (experiments/, one per protocol and
# model): runs what the MLflow store does not hold yet, then exports results/ and rebuilds
# leaderboards/. On a store that holds them it takes seconds; from an empty store, every committed
# row again (the sum of their trials' wall times, on 2 cores: see docs/leaderboards-and-results.md).
# kinder-gator-cross-action and psymo-cross-view read ../shared/data (REID_BENCH_DATA overrides).
REID_BENCH_DATA ?= $(abspath ../shared/data)
leaderboards: setup
	REID_BENCH_DATA=$(REID_BENCH_DATA) $(BIN)/reid-bench run --config experiments/
	$(BIN)/reid-bench leaderboard
	$(MAKE) docs-images

# The docs' figures (docs/img/) and the sentences about them, from the committed boards, in
# headless Chromium (apt-get install chromium); tests/test_docs.py checks they are current.
docs-images: setup
	$(BIN)/python tools/docs_images.py

# synth-gait's committed SM-SGE rows: SM-SGE's Table 4 and leave-one-out variants; the baseline at
# its own best budget on synth-gait-dev (3 epochs) as a fairness row; SM-SGE's released recipe
# (and its baseline) at the same budget; the controls (chance, the probe on raw windows, SM-SGE's
# untrained encoder). About 80 minutes on 2 cores.
ablation: setup
	for v in $(SMSGE_VARIANTS); do $(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS) --set variant=$$v || exit 1; done
	$(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS) --set variant=baseline --set epochs=3
	$(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS) --set recipe=released
	$(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS) --set recipe=released --set variant=baseline
	for m in control-chance control-raw; do $(BIN)/reid-bench run --model $$m --protocol synth-gait --seeds $(SEEDS) || exit 1; done
	$(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS) --set epochs=0
	$(BIN)/reid-bench leaderboard

# The field's methods on synth-gait and synth-gait-retrieval, each at its default budget or the
# CPU budget its row names, then each learned one's untrained encoder as a control row. About
# three hours on 2 cores.
field: setup
	for p in synth-gait synth-gait-retrieval; do for m in $(FIELD_MODELS); do \
	  $(BIN)/reid-bench run --model $$m --protocol $$p --seeds $(SEEDS) || exit 1; done; done
	for m in $(FIELD_LEARNED); do $(BIN)/reid-bench run --model $$m --protocol synth-gait --seeds $(SEEDS) --set epochs=0 || exit 1; done
	$(BIN)/reid-bench leaderboard

# The prototype learners and MG-SCR on synth-gait-retrieval at their CPU budgets (about 3.5
# CPU-hours on 2 cores).
prototypes: setup
	for m in $(PROTOTYPE_MODELS); do \
	  $(BIN)/reid-bench run --model $$m --protocol synth-gait-retrieval --seeds $(SEEDS) || exit 1; done
	$(BIN)/reid-bench leaderboard

# OG-Net's Table II models on both synthetic cloud protocols (about 75 CPU-minutes), then
# OG-Net and PointNet++ MSG at 20 epochs instead of the CPU budget's 8 and 10 (about 50 more).
clouds: setup
	for p in synth-market synth-market-to-duke; do for m in $(CLOUD_MODELS); do \
	  $(BIN)/reid-bench run --model $$m --protocol $$p --seeds $(SEEDS) || exit 1; done; done
	for p in synth-market synth-market-to-duke; do for m in ognet pointnet2-msg; do \
	  $(BIN)/reid-bench run --model $$m --protocol $$p --seeds $(SEEDS) --set epochs=20 || exit 1; done; done
	$(BIN)/reid-bench leaderboard

# Every installed method of a field protocol's published table, at its release configuration, on
# real data (which reid-bench does not ship): make field-protocol PROTOCOL=ias-retrieval DATA=~/data
field-protocol: setup
	@test -n "$(PROTOCOL)" -a -n "$(DATA)" || { echo "usage: make field-protocol PROTOCOL=<name> DATA=<data root>"; exit 2; }
	for m in $$($(BIN)/python -m reid_bench.leaderboard methods $(PROTOCOL)); do \
	  $(BIN)/reid-bench run --model $$m --protocol $(PROTOCOL) --data-root $(DATA) --seeds $(SEEDS) || exit 1; done
	$(BIN)/reid-bench leaderboard

# Every performance target in one table, anchors measured in the same run (about 10 minutes on
# 2 cores; the MSMT-scale row holds a 3.6 GB matrix).
bench: setup
	$(BIN)/python benchmarks/bench_all.py

# On a machine with a CUDA GPU (see docs/clusters-and-gpus.md); prints one line and exits 0 without.
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) $(DEMO) mlflow.db mlartifacts reid-bench-results
