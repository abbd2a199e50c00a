# tensorbridge: `make demo` and `make test` work on a fresh machine (Rust + CPython 3.10+ + the
# package registries). Everything Python goes into .venv from pinned requirements.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Build outside the clone so a fresh clone (CI) reuses compiled dependencies; override freely.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tensorbridge/target
REQS := bindings/python/requirements-dev.txt
STAMP := $(VENV)/.requirements-installed
# Hypothesis examples per property test (CI runs the full count).
export TB_HYPOTHESIS_EXAMPLES ?= 2000

.PHONY: demo test develop lint rust-test py-test bench bench-quick bench-venv bench-smoke clean

$(STAMP): $(REQS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQS)
	touch $@

## Build the extension (release, abi3) into .venv.
develop: $(STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml

## Fresh machine -> .venv, extension built, walkthrough run on the CPU backend.
demo: develop
	$(PY) examples/tensor_to_numpy.py
	cargo run --release --quiet -p tensorbridge --example tensor_to_ndarray

lint: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples
	$(VENV)/bin/ruff check bindings/python benches/python examples

rust-test:
	cargo test --release

py-test: develop
	$(PY) -m pytest bindings/python/tests -q

## Every Rust and Python test, plus formatting and lints.
test: lint rust-test py-test bench-smoke

## Benchmarks (not part of `make test`): every compiled backend and the peers side by side.
## Rust criterion benches, then the Python harness in .venv-bench (torch, TensorFlow, JAX, ~7 GB);
## results in bench-results/<UTC time>.{json,md,png}. BENCH_FEATURES: more Rust backends
## (e.g. `torch,cuda`); BENCH_ARGS: more harness flags (e.g. `--wait-idle 120`).
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_REQS := benches/python/requirements-bench.txt
BENCH_STAMP := $(BENCH_VENV)/.requirements-installed
BENCH_FEATURES ?=
BENCH_ARGS ?=
BENCH_CARGO := cargo bench -p tensorbridge --bench backends $(if $(BENCH_FEATURES),--features $(BENCH_FEATURES))
BENCH_HARNESS := benches/python/bench.py --criterion-dir $(CARGO_TARGET_DIR)/criterion

$(BENCH_STAMP): $(BENCH_REQS)
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -r $(BENCH_REQS)
	touch $@

## The bench venv with this tree's extension built and installed (editable: the .so it builds
## lands in the source tree, so .venv sees it too).
bench-venv: $(STAMP) $(BENCH_STAMP)
	VIRTUAL_ENV=$(abspath $(BENCH_VENV)) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml

bench: bench-venv
	start=$$(date +%s) && $(BENCH_CARGO) && \
		$(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start $(BENCH_ARGS)

## A regression check in under 2 minutes: smaller sizes, shorter measurements.
bench-quick: bench-venv
	start=$$(date +%s) && TB_BENCH_QUICK=1 $(BENCH_CARGO) && \
		$(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start --quick $(BENCH_ARGS)

## The harness on tiny sizes (JSON, table, plot, --compare), in the dev venv, so it cannot rot.
bench-smoke: develop
	$(PY) -m pytest benches/python -q

clean:
	rm -rf $(VENV) bindings/python/python/tensorbridge/*.so
