# Two commands do all the set-up on a fresh machine:
#   make demo   - install, run the embedded default benchmark, build the leaderboard
#   make test   - install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
SEEDS ?= 3

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[test]"
	touch $@

demo: setup
	$(BIN)/reid-bench run --model d13 --protocol synth-gait --seeds $(SEEDS)
	$(BIN)/reid-bench run --model smsge --protocol synth-gait --seeds $(SEEDS)
	$(BIN)/reid-bench run --model cloud-hist --protocol synth-market --seeds $(SEEDS)
	$(BIN)/reid-bench leaderboard
	@echo "Leaderboards written to leaderboards/ (open leaderboards/index.html)"

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) mlflow.db mlartifacts reid-bench-results
