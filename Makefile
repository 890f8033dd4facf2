# Quick start: `make demo` runs the gate on the reference copier; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: demo test lint docs bench deps deps-test clean

$(BIN)/syscall-gate: pyproject.toml setup.py ci_gate/trace/_scan.c
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $@

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

demo: deps $(BIN)/syscall-gate
	$(BIN)/syscall-gate run --policy policies/uring-copy-demo.yml --out $(OUT)

test: deps-test $(BIN)/syscall-gate
	$(BIN)/python -m pytest -q tests
	$(MAKE) --no-print-directory lint

lint: $(BIN)/syscall-gate
	$(BIN)/ruff check ci_gate tests tools bench
	$(BIN)/ruff format --check ci_gate tests tools bench
	$(BIN)/mypy ci_gate
	$(BIN)/syscall-gate docs --check

docs: $(BIN)/syscall-gate
	$(BIN)/syscall-gate docs

# Parse throughput and peak RSS on >= 200 MB traces made of real strace output
# (bench/run.py; BENCH_ARGS="--runs 5 --work DIR" to change runs or the cache).
bench: deps-test $(BIN)/syscall-gate
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
	$(MAKE) -C examples/uring-copy clean
