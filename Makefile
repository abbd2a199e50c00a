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
# Backends with native dependencies compiled into the Python extension and the Rust tests (cpu and
# lazy:cpu are always there).
FEATURES ?= torch cuda
comma := ,
empty :=
space := $(empty) $(empty)
# The development build (make develop/demo/test) adds `counted`, the test decorator backend the
# contract tests count host copies with; wheels are built from FEATURES alone.
DEV_FEATURES ?= $(FEATURES) counted
# As cargo features of the facade (tests, examples) and of the bindings (clippy, maturin).
RUST_FEATURES := $(subst $(space),$(comma),$(strip tensorbridge/lazy $(foreach f,$(DEV_FEATURES),tensorbridge/$(f))))
ALL_FEATURES := $(subst $(space),$(comma),$(strip $(foreach f,$(DEV_FEATURES),tensorbridge/$(f) tensorbridge-python/$(f))))

.PHONY: demo test develop lint rust-test py-test bench bench-quick bench-venv bench-smoke bench-lazy clean libtorch cpu-ext \
	cuda-toolkit cuda-test bench-cuda gpu-bundle gpu-selftest print-cuda-build-env

## ---- CUDA backend (candle-core with CUDA: crates/tensorbridge-candle, cargo feature `cuda`) -----------------------------
# Building the feature needs nvcc and the CUDA 13.0 libraries, not a GPU: they come from PyPI into
# a venv outside the clone (kept across fresh clones, like CARGO_TARGET_DIR). Binaries link
# against, and in CI run with, a no-device libcuda stub generated from cuda.h
# (scripts/cuda-stub.py): every driver call returns CUDA_ERROR_NO_DEVICE, so the cuda-featured
# tests and Python extension load and take their "no device" path. A real machine uses the
# driver's libcuda.so.1: the stub is only ever on LD_LIBRARY_PATH in the test targets below.
CUDA_TOOLKIT := cuda-toolkit[nvcc,crt,nvvm,cudart,cublas,curand,nvrtc,cccl]==13.0.2
CUDA_VENV ?= $(HOME)/.cache/tensorbridge/cuda-13.0.2
CUDA_HOME_DIR := $(CUDA_VENV)/cu13
CUDA_STUB_DIR := $(CUDA_VENV)/stub
CUDA_STAMP := $(CUDA_VENV)/.ready
# H100/H200; there is no GPU (nor nvidia-smi) here to detect it.
CUDA_COMPUTE_CAP ?= 90
# For building anything with the `cuda` feature (cargo, maturin).
CUDA_BUILD_ENV = CUDA_ROOT=$(CUDA_HOME_DIR) CUDA_PATH=$(CUDA_HOME_DIR) \
	CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP) PATH=$(CUDA_HOME_DIR)/bin:$$PATH LIBRARY_PATH=$(CUDA_STUB_DIR)
# For running cuda-featured binaries here and in CI: the no-device stub, then the CUDA 13 runtime
# libraries of torch's cu130 wheel in .venv (so libtorch_cuda and candle load the same cuBLAS),
# then the toolkit's.
CUDA_TEST_ENV = LD_LIBRARY_PATH=$(CUDA_STUB_DIR):$(LIBTORCH)/../nvidia/cu13/lib:$(CUDA_HOME_DIR)/lib
NEEDS_CUDA := $(filter cuda,$(FEATURES))
CUDA_DEP := $(if $(NEEDS_CUDA),$(CUDA_STAMP))
RUN_ENV := $(if $(NEEDS_CUDA),$(CUDA_TEST_ENV))
ifneq ($(NEEDS_CUDA),)
# Every cargo/maturin call of a cuda build sees the same environment, so candle's build script
# (which reruns when these change) never rebuilds its kernels between targets.
export CUDA_ROOT := $(CUDA_HOME_DIR)
export CUDA_PATH := $(CUDA_HOME_DIR)
export CUDA_COMPUTE_CAP
export PATH := $(CUDA_HOME_DIR)/bin:$(PATH)
export LIBRARY_PATH := $(CUDA_STUB_DIR)
endif

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
develop: libtorch $(CUDA_DEP)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		--features "$(subst $(space),$(comma),$(strip $(DEV_FEATURES)))"

## Fresh machine -> .venv, extension built, walkthrough run on the CPU backend.
demo: develop
	$(RUN_ENV) $(PY) examples/tensor_to_numpy.py
	$(RUN_ENV) $(PY) examples/graph_session.py
	@if $(PY) -c 'import tensorflow' 2>/dev/null; then $(RUN_ENV) $(PY) examples/seed_tensorflow.py; \
		else echo "examples/seed_tensorflow.py: TensorFlow is not installed, skipped"; fi
	$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example tensor_to_ndarray
	$(if $(filter candle cuda,$(FEATURES)),$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example candle_to_ndarray)
	$(if $(filter torch,$(FEATURES)),$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example tch_to_ndarray)

lint: libtorch $(CUDA_DEP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release --features "$(ALL_FEATURES)" -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples scripts
	$(VENV)/bin/ruff check bindings/python benches/python examples scripts

rust-test: libtorch $(CUDA_DEP)
	$(RUN_ENV) cargo test --release --workspace --exclude tensorbridge-python --features "$(RUST_FEATURES)"

# The default (cpu-only) variant of the extension, for the test that it imports without torch.
cpu-ext:
	cargo build --release --quiet -p tensorbridge-python --lib

py-test: develop cpu-ext
	$(RUN_ENV) TB_CPU_ONLY_EXTENSION=$(CARGO_TARGET_DIR)/release/lib_native.so \
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
bench-venv: libtorch $(CUDA_DEP) $(BENCH_STAMP)
	VIRTUAL_ENV=$(abspath $(BENCH_VENV)) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		--features "$(subst $(space),$(comma),$(strip $(FEATURES)))"

bench: bench-venv
	start=$$(date +%s) && $(RUN_ENV) $(BENCH_CARGO) && \
		$(if $(filter torch,$(FEATURES)),cargo bench -p tensorbridge-torch --bench torch_transfer &&) \
		$(RUN_ENV) $(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start $(BENCH_ARGS)

## A regression check in under 2 minutes: smaller sizes, shorter measurements.
bench-quick: bench-venv
	start=$$(date +%s) && TB_BENCH_QUICK=1 $(RUN_ENV) $(BENCH_CARGO) && \
		$(RUN_ENV) $(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start --quick $(BENCH_ARGS)

## The harness on tiny sizes (JSON, table, plot, --compare), in the dev venv, so it cannot rot.
bench-smoke: develop
	$(RUN_ENV) $(PY) -m pytest benches/python -q

## Deferred execution: ((x * 2) + 1).sqrt() on 64M f32, lazy (fused) vs eager CPU, with the ratios.
bench-lazy:
	cargo bench -p tensorbridge-lazy --bench lazy_fused
	$(PYTHON) benches/python/lazy_ratio.py


clean:
	rm -rf $(VENV) bindings/python/python/tensorbridge/*.so

$(CUDA_STAMP): scripts/cuda-stub.py
	test -x $(CUDA_VENV)/bin/python || $(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/python -m pip install --quiet '$(CUDA_TOOLKIT)'
	ln -sfn "$$(cd $(CUDA_VENV) && ls -d lib/python3*/site-packages/nvidia/cu13 | head -1)" $(CUDA_HOME_DIR)
	cd $(CUDA_HOME_DIR)/lib && for l in cudart cublas cublasLt curand nvrtc; do \
		ln -sf "$$(ls lib$$l.so.* | grep -v alt | head -1)" lib$$l.so; done
	$(PYTHON) scripts/cuda-stub.py $(CUDA_HOME_DIR)/include/cuda.h $(CUDA_STUB_DIR)
	touch $@

## The CUDA build pieces (PyPI) and the no-device libcuda stub.
cuda-toolkit: $(CUDA_STAMP)

## The cuda crate built with the `cuda` feature, its tests run against the no-device stub (the
## conformance suite on candle's CPU device; GPU tests report that they found no device).
cuda-test: $(CUDA_STAMP)
	$(CUDA_BUILD_ENV) $(CUDA_TEST_ENV) cargo test --release -p tensorbridge-candle -p tensorbridge \
		--features tensorbridge-candle/cuda,tensorbridge/cuda

## D2H benchmark (criterion; needs a GPU, prints why not otherwise).
bench-cuda: $(CUDA_STAMP)
	$(CUDA_BUILD_ENV) cargo bench -p tensorbridge-candle --features cuda --bench d2h

## The GPU-check bundle (test binaries + wheel, < 64 MiB); run it on a GPU machine with
## `scripts/gpu-check run BUNDLE` (see README, "CUDA backend").
gpu-bundle: $(CUDA_STAMP) $(STAMP)
	scripts/gpu-check pack

## The bundle's run step, here against the no-device stub (checks what can be checked without a GPU).
gpu-selftest: gpu-bundle
	CUDA_STUB_DIR=$(CUDA_STUB_DIR) CUDA_LIB_DIR=$(CUDA_HOME_DIR)/lib \
		GPU_CHECK_EXTRA_SITE="$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
		scripts/gpu-check selftest $(CARGO_TARGET_DIR)/gpu-check.tar.xz

print-cuda-build-env:
	@echo $(CUDA_BUILD_ENV)
