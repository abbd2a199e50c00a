# tensorbridge: `make demo` and `make test` work on a fresh machine (Rust + CPython 3.11+ + the
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

# libtorch for the torch backend is the `torch` wheel in .venv (pinned in $(REQS)); nothing is
# downloaded by a build script. tch's build finds it through LIBTORCH, a stable symlink (so the
# cached build of one clone stays valid for the next) that `make` points at this clone's .venv.
# Test binaries get an rpath to it (crates' build.rs), so no LD_LIBRARY_PATH is needed; the
# Python extension finds it by `import torch` (tensorbridge/__init__.py).
export LIBTORCH ?= $(HOME)/.cache/tensorbridge/libtorch
TORCH_STAMP := $(VENV)/.libtorch-linked
# Backends with native dependencies compiled into the Python extension and the Rust tests (cpu and
# lazy:cpu are always there).
FEATURES ?= torch
comma := ,
empty :=
space := $(empty) $(empty)
# As cargo features of the facade (tests, examples) and of the bindings (clippy, maturin).
RUST_FEATURES := $(subst $(space),$(comma),$(strip tensorbridge/lazy $(foreach f,$(FEATURES),tensorbridge/$(f))))
ALL_FEATURES := $(subst $(space),$(comma),$(strip $(foreach f,$(FEATURES),tensorbridge/$(f) tensorbridge-python/$(f))))

.PHONY: demo test develop lint rust-test py-test bench bench-quick bench-venv bench-smoke bench-lazy clean libtorch cpu-ext

$(STAMP): $(REQS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQS)
	touch $@

# (Re)points $(LIBTORCH) at this clone's torch; always runs, it is one symlink.
libtorch: $(STAMP)
	@mkdir -p $(dir $(LIBTORCH))
	@ln -sfn "$$($(PY) -c 'import os, torch; print(os.path.dirname(torch.__file__))')" $(LIBTORCH)
	@test -f $(LIBTORCH)/lib/libtorch_cpu.so || { echo "no libtorch under $(LIBTORCH)"; exit 1; }

## Build the extension (release, abi3) into .venv.
develop: libtorch
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		--features "$(subst $(space),$(comma),$(strip $(FEATURES)))"

## Fresh machine -> .venv, extension built, walkthrough run on the CPU backend.
demo: develop
	$(PY) examples/tensor_to_numpy.py
	$(PY) examples/graph_session.py
	cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example tensor_to_ndarray

lint: libtorch
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release --features "$(ALL_FEATURES)" -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples
	$(VENV)/bin/ruff check bindings/python benches/python examples

rust-test: libtorch
	cargo test --release --workspace --exclude tensorbridge-python --features "$(RUST_FEATURES)"

# The default (cpu-only) variant of the extension, for the test that it imports without torch.
cpu-ext:
	cargo build --release --quiet -p tensorbridge-python --lib

py-test: develop cpu-ext
	TB_CPU_ONLY_EXTENSION=$(CARGO_TARGET_DIR)/release/lib_native.so \
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
BENCH_FEATURES ?= $(subst $(space),$(comma),$(strip lazy $(FEATURES)))
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
bench-venv: libtorch $(BENCH_STAMP)
	VIRTUAL_ENV=$(abspath $(BENCH_VENV)) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		--features "$(subst $(space),$(comma),$(strip $(FEATURES)))"

bench: bench-venv
	start=$$(date +%s) && $(BENCH_CARGO) && \
		$(if $(filter torch,$(FEATURES)),cargo bench -p tensorbridge-torch --bench torch_transfer &&) \
		$(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start $(BENCH_ARGS)

## A regression check in under 2 minutes: smaller sizes, shorter measurements.
bench-quick: bench-venv
	start=$$(date +%s) && TB_BENCH_QUICK=1 $(BENCH_CARGO) && \
		$(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start --quick $(BENCH_ARGS)

## The harness on tiny sizes (JSON, table, plot, --compare), in the dev venv, so it cannot rot.
bench-smoke: develop
	$(PY) -m pytest benches/python -q

## Deferred execution: ((x * 2) + 1).sqrt() on 64M f32, lazy (fused) vs eager CPU, with the ratios.
bench-lazy:
	cargo bench -p tensorbridge-lazy --bench lazy_fused
	$(PYTHON) benches/python/lazy_ratio.py


clean:
	rm -rf $(VENV) bindings/python/python/tensorbridge/*.so
