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
# proptest cases per Rust property test in `make test` (`make fuzz` runs each for FUZZ_SECONDS).
export PROPTEST_CASES ?= 256
# Seconds of the concurrency soak (tests/test_soak.py) in `make test`; `make soak` runs SOAK_SECONDS.
export TB_SOAK_SECONDS ?= 15

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

.PHONY: fuzz memcheck memcheck-rust memcheck-python soak
.PHONY: demo test develop lint rust-test py-test bench bench-quick bench-venv bench-smoke bench-lazy bench-zarr clean libtorch cpu-ext \
	wheel wheel-default wheel-full sdist package-test \
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
# The same stub inside the package, where tensorbridge/_loader.py loads it when the machine has no
# driver (git-ignored; `develop` copies it for a cuda build, the cu13 wheel ships it).
PKG_STUB := bindings/python/python/tensorbridge/_stub/libcuda.so.1
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

## Build the extension (release, abi3) into .venv. A cuda build also gets the package's no-device
## libcuda stand-in (see Packaging below), so `.venv/bin/python` imports it in any shell.
develop: libtorch $(CUDA_DEP) $(if $(NEEDS_CUDA),$(PKG_STUB))
	$(if $(NEEDS_CUDA),,rm -rf $(dir $(PKG_STUB)))
	$(PY_BUILD_ENV) $(VENV)/bin/maturin develop --release --quiet -m bindings/python/Cargo.toml \
		--features "$(subst $(space),$(comma),$(strip $(DEV_FEATURES)))"

## Fresh machine -> .venv, extension built, walkthrough run on the CPU backend (the Python ones in
## the plain environment a user's shell has: no library path set).
demo: develop
	$(PY) examples/tensor_to_numpy.py
	$(PY) examples/graph_session.py
	@if $(PY) -c 'import tensorflow' 2>/dev/null; then $(PY) examples/seed_tensorflow.py; \
		else echo "examples/seed_tensorflow.py: TensorFlow is not installed, skipped"; fi
	$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example tensor_to_ndarray
	$(if $(filter candle cuda,$(FEATURES)),$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example candle_to_ndarray)
	$(if $(filter torch,$(FEATURES)),$(RUN_ENV) cargo run --release --quiet -p tensorbridge --features "$(subst $(space),$(comma),$(strip $(FEATURES)))" --example tch_to_ndarray)

lint: libtorch $(CUDA_DEP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release --features "$(ALL_FEATURES)" -- -D warnings
	$(VENV)/bin/ruff format --check bindings/python benches/python examples scripts tests/packaging
	$(VENV)/bin/ruff check bindings/python benches/python examples scripts tests/packaging

rust-test: libtorch $(CUDA_DEP)
	$(RUN_ENV) cargo test --release --workspace --exclude tensorbridge-python --features "$(RUST_FEATURES)"

# The default (cpu-only) variant of the extension, for the test that it imports without torch:
# the one in the default wheel (its own target dir, see Packaging, so that `develop` and this build
# do not recompile the bindings for each other).
cpu-ext: wheel-default
	@mkdir -p $(PKG_WORK)
	$(PY) -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("tensorbridge/_native.abi3.so"))' \
		$(DIST)/tensorbridge-*.whl $(PKG_WORK)/cpu-only-_native.abi3.so

py-test: develop cpu-ext
	$(RUN_ENV) TB_CPU_ONLY_EXTENSION=$(PKG_WORK)/cpu-only-_native.abi3.so \
		$(PY) -m pytest bindings/python/tests -q

## Every Rust and Python test, plus formatting and lints, and valgrind over the unsafe Rust code.
test: lint rust-test py-test bench-smoke memcheck-rust package-test

## ---- Reliability (README, "Reliability") ---------------------------------------------------------
## Property fuzzing on stable Rust (proptest): each property runs rounds of fresh random cases for
## FUZZ_SECONDS (Layout view ops against a naive model; the copy kernels, every dtype pair, against
## a naive loop). `make test` runs PROPTEST_CASES cases of each. Then the DLPack importer fed
## DLPACK_FUZZ_EXAMPLES random DLPack structs (Hypothesis, ~7 ms each; `make test`:
## TB_HYPOTHESIS_EXAMPLES).
FUZZ_SECONDS ?= 180
DLPACK_FUZZ_EXAMPLES ?= 25000
fuzz: develop
	TB_FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --release -p tensorbridge-core --test fuzz_layout \
		--test fuzz_copy -- --nocapture --test-threads 1
	$(RUN_ENV) TB_DLPACK_FUZZ_EXAMPLES=$(DLPACK_FUZZ_EXAMPLES) $(PY) -m pytest \
		bindings/python/tests/test_dlpack_fuzz.py -q --hypothesis-show-statistics

## valgrind (Debian's package, installed when missing) over the unsafe code: core/cpu unit tests and
## the copy-kernel property test (memcheck-rust, part of `make test`), then a Python subset on the
## cpu-only extension (memcheck-python). Zero invalid accesses, zero definitely-lost blocks.
memcheck:
	$(MAKE) memcheck-rust MEMCHECK_PROPTEST_CASES=4096
	$(MAKE) memcheck-python

# Cases of the copy/layout property tests under valgrind (make test: 256; make memcheck: 4096).
export MEMCHECK_PROPTEST_CASES ?= 256
memcheck-rust:
	scripts/memcheck.sh rust

memcheck-python: $(STAMP) cpu-ext
	PY=$(abspath $(PY)) TB_CPU_ONLY_EXTENSION=$(PKG_WORK)/cpu-only-_native.abi3.so \
		scripts/memcheck.sh python

## The concurrency soak for SOAK_SECONDS (8 threads, every compiled backend).
SOAK_SECONDS ?= 60
soak: develop
	$(RUN_ENV) TB_SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest bindings/python/tests/test_soak.py -q -s

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
		$(RUN_ENV) $(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start $(BENCH_ARGS) && \
		$(RUN_ENV) $(BENCH_PY) benches/python/out_of_core.py

## A regression check in under 2 minutes: smaller sizes, shorter measurements.
bench-quick: bench-venv
	start=$$(date +%s) && TB_BENCH_QUICK=1 $(RUN_ENV) $(BENCH_CARGO) && \
		$(RUN_ENV) $(BENCH_PY) $(BENCH_HARNESS) --criterion-since $$start --quick $(BENCH_ARGS)

## The harness on tiny sizes (JSON, table, plot, --compare), in the dev venv, so it cannot rot.
bench-smoke: develop
	$(RUN_ENV) $(PY) -m pytest benches/python -q

## Out of core: 2 GiB to Zarr, tb.to_dask(t, chunks).to_zarr vs zarr.array(np.asarray(t)), throughput
## and peak RSS per backend (also the last step of `make bench`), in the dev venv.
bench-zarr: develop
	$(RUN_ENV) $(PY) benches/python/out_of_core.py

## Deferred execution: ((x * 2) + 1).sqrt() on 64M f32, lazy (fused) vs eager CPU, with the ratios.
bench-lazy:
	cargo bench -p tensorbridge-lazy --bench lazy_fused
	$(PYTHON) benches/python/lazy_ratio.py


## ---- Packaging: wheels, sdist, and installs into fresh venvs ----------------------------------
# Two distributions of the one import package `tensorbridge` (install one of them):
#   tensorbridge       default variant, backends cpu and lazy:cpu; needs numpy only. `maturin build`
#                      without features; also what `pip install ./bindings/python` and the sdist build.
#   tensorbridge-cu13  + torch (libtorch 2.11) and cuda (candle, CUDA 13): the same project built
#                      with `--features torch,cuda`, then renamed by scripts/wheel-variant.py, which
#                      adds `Requires-Dist: torch==2.11.0` and the no-device libcuda stand-in.
# Distinct names rather than a local version (`0.1.0+cu130`): a package index refuses local
# versions, and resolvers expect one name and version to have one set of dependencies; a CUDA-major
# suffix is how other native packages name such builds (cupy-cuda13x, onnxruntime-gpu).
# Both are abi3 (CPython >= 3.11). The default wheel gets the manylinux tag maturin's audit finds;
# the cu13 one is plain `linux`: libtorch and the CUDA runtime come from the torch wheel and the
# driver from the machine at run time, which an audit (or bundling them) cannot express.
DIST ?= dist
# Fresh venvs and scratch space of the install tests, one per clone (clones build side by side).
PKG_WORK ?= $(CARGO_TARGET_DIR)/pkg/$(subst /,_,$(CURDIR))
# The same interpreter and environment as `develop` for every build, so cargo reuses one pyo3
# build-script output (PYO3_PYTHON, VIRTUAL_ENV) instead of rebuilding pyo3 between builds.
PY_BUILD_ENV = VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH
# Builds of the default variant (wheel-default, cpu-ext, pip's builds from source) use their own
# target dir: a cdylib's file name carries no hash, so builds with other features in one target dir
# overwrite each other's lib_native.so and cargo recompiles the bindings at every switch.
DEFAULT_TARGET_DIR ?= $(CARGO_TARGET_DIR)-default
MATURIN_BUILD = $(PY_BUILD_ENV) $(VENV)/bin/maturin build --release --quiet -m bindings/python/Cargo.toml \
	-i $(abspath $(PY))
TORCH_PIN = $(shell grep '^torch==' $(REQS))

$(PKG_STUB): $(CUDA_STAMP)
	install -D -m 755 $(CUDA_STUB_DIR)/libcuda.so.1 $@

## Both wheels into $(DIST)/ (names and sizes are printed).
wheel: wheel-default wheel-full
	@ls -l $(DIST)/*.whl

wheel-default: $(STAMP)
	rm -f $(DIST)/tensorbridge-*.whl
	CARGO_TARGET_DIR=$(DEFAULT_TARGET_DIR) $(MATURIN_BUILD) -o $(DIST)

wheel-full: libtorch $(CUDA_STAMP)
	rm -rf $(PKG_WORK)/cu13-build && rm -f $(DIST)/tensorbridge_cu13-*.whl
	$(if $(NEEDS_CUDA),,$(CUDA_BUILD_ENV)) $(MATURIN_BUILD) --features torch,cuda \
		--compatibility linux -o $(PKG_WORK)/cu13-build
	$(PY) scripts/wheel-variant.py $(PKG_WORK)/cu13-build/tensorbridge-*.whl -o $(DIST) \
		--name tensorbridge-cu13 --requires '$(TORCH_PIN)' \
		--summary "tensorbridge with the torch (libtorch 2.11) and CUDA 13 backends" \
		--add tensorbridge/_stub/libcuda.so.1=$(CUDA_STUB_DIR)/libcuda.so.1

## The source distribution (the default variant when built): bindings/python and the workspace
## crates it needs.
sdist: $(STAMP)
	rm -f $(DIST)/tensorbridge-*.tar.gz
	$(VENV)/bin/maturin sdist -m bindings/python/Cargo.toml -o $(DIST)

## The wheels and the sdist installed into fresh venvs (numpy only; torch beside the cu13 wheel),
## the walkthrough run there in an empty environment; and the develop build imported in one.
package-test: develop wheel sdist
	TB_DIST=$(abspath $(DIST)) TB_PKG_WORK=$(abspath $(PKG_WORK)) $(PY_BUILD_ENV) \
		CARGO_TARGET_DIR=$(DEFAULT_TARGET_DIR) $(PY) -m pytest tests/packaging -q

clean:
	rm -rf $(VENV) bindings/python/python/tensorbridge/*.so $(dir $(PKG_STUB)) $(DIST)

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
