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

.PHONY: demo test develop lint rust-test py-test bench bench-peers bench-lazy clean

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
	$(PY) examples/graph_session.py
	cargo run --release --quiet -p tensorbridge --example tensor_to_ndarray

lint: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples
	$(VENV)/bin/ruff check bindings/python benches/python examples

rust-test:
	cargo test --release
	cargo test --release -p tensorbridge --features lazy

py-test: develop
	$(PY) -m pytest bindings/python/tests -q

## Every Rust and Python test, plus formatting and lints.
test: lint rust-test py-test

## Benchmarks (not part of `make test`).
bench: develop
	cargo bench -p tensorbridge-cpu --bench to_host
	$(PY) benches/python/conversion.py

## Deferred execution: ((x * 2) + 1).sqrt() on 64M f32, lazy (fused) vs eager CPU, with the ratios.
bench-lazy:
	cargo bench -p tensorbridge-lazy --bench lazy_fused
	$(PYTHON) benches/python/lazy_ratio.py

## The Python bench against torch, TensorFlow and JAX in an optional .venv-bench (~7 GB).
bench-peers: develop
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -r benches/python/requirements-bench.txt
	VIRTUAL_ENV=$(abspath .venv-bench) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml
	.venv-bench/bin/python benches/python/conversion.py

clean:
	rm -rf $(VENV) bindings/python/python/tensorbridge/*.so
