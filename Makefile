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

.PHONY: demo test develop lint rust-test py-test bench bench-peers clean cuda-toolkit cuda-test \
	bench-cuda gpu-bundle gpu-selftest print-cuda-build-env

## ---- CUDA backend (crates/tensorbridge-cuda, cargo feature `cuda`) -----------------------------
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
# For running cuda-featured binaries here and in CI: the no-device stub and the pip CUDA libraries.
CUDA_TEST_ENV = LD_LIBRARY_PATH=$(CUDA_STUB_DIR):$(CUDA_HOME_DIR)/lib
# Cargo features of the Python extension built by `make develop` (the lead's merge adds others).
PY_FEATURES ?= cuda
PY_NEEDS_CUDA := $(findstring cuda,$(PY_FEATURES))

$(STAMP): $(REQS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(REQS)
	touch $@

## Build the extension (release, abi3) into .venv.
develop: $(STAMP) $(if $(PY_NEEDS_CUDA),$(CUDA_STAMP))
	$(if $(PY_NEEDS_CUDA),$(CUDA_BUILD_ENV)) VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		$(if $(PY_FEATURES),--features $(PY_FEATURES))

## Fresh machine -> .venv, extension built, walkthrough run on the CPU backend.
demo: develop
	$(PY) examples/tensor_to_numpy.py
	cargo run --release --quiet -p tensorbridge --example tensor_to_ndarray

lint: $(STAMP) $(CUDA_STAMP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	$(CUDA_BUILD_ENV) cargo clippy --release -p tensorbridge-cuda -p tensorbridge -p tensorbridge-python \
		--all-targets --features tensorbridge-cuda/cuda,tensorbridge/cuda,tensorbridge-python/cuda -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples scripts
	$(VENV)/bin/ruff check bindings/python benches/python examples scripts

rust-test: cuda-test
	cargo test --release

py-test: develop
	$(if $(PY_NEEDS_CUDA),$(CUDA_TEST_ENV)) $(PY) -m pytest bindings/python/tests -q

## Every Rust and Python test, plus formatting and lints.
test: lint rust-test py-test

## Benchmarks (not part of `make test`).
bench: develop
	cargo bench -p tensorbridge-cpu --bench to_host
	$(PY) benches/python/conversion.py

## The Python bench against torch, TensorFlow and JAX in an optional .venv-bench (~7 GB).
bench-peers: develop
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -r benches/python/requirements-bench.txt
	VIRTUAL_ENV=$(abspath .venv-bench) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml
	.venv-bench/bin/python benches/python/conversion.py

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
	$(CUDA_BUILD_ENV) $(CUDA_TEST_ENV) cargo test --release -p tensorbridge-cuda -p tensorbridge \
		--features tensorbridge-cuda/cuda,tensorbridge/cuda

## D2H benchmark (criterion; needs a GPU, prints why not otherwise).
bench-cuda: $(CUDA_STAMP)
	$(CUDA_BUILD_ENV) cargo bench -p tensorbridge-cuda --features cuda --bench d2h

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
