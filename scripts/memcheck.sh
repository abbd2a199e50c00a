#!/usr/bin/env bash
# memcheck: valgrind over the code that uses `unsafe`.
#
#   scripts/memcheck.sh rust     core and cpu unit tests (copy kernels, strided views, foreign
#                                buffers, the memory guard) and the copy-kernel property test
#   scripts/memcheck.sh python   a Python subset (DLPack both ways, buffer protocol, from_numpy
#                                lifetimes, lazy evaluation) on the cpu-only extension, with
#                                PYTHONMALLOC=malloc and scripts/valgrind-python.supp
#
# Passes only with zero invalid reads/writes (any valgrind error) and zero "definitely lost"
# blocks. Needs valgrind (Debian's package): installed with apt-get when missing.
# Env: CARGO_TARGET_DIR (the Makefile's), PY (the venv's python, for `python`),
#      TB_CPU_ONLY_EXTENSION (the cpu-only lib_native.so, for `python`),
#      MEMCHECK_PROPTEST_CASES (cases of the property tests under valgrind, default 256).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "memcheck: valgrind not found; installing Debian's package" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi

VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --track-origins=no)

memcheck_rust() {
    local bins
    # The test executables cargo builds for the two crates (lib unit tests + core's integration
    # tests), in the release profile every other target uses.
    bins=$(cargo test --release -p tensorbridge-core -p tensorbridge-cpu --lib --test fuzz_copy \
        --test fuzz_layout --no-run --message-format=json 2>/dev/null |
        "${PYTHON:-python3}" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
    [ -n "$bins" ] || { echo "memcheck: no test binaries built" >&2; exit 1; }
    local start=$SECONDS
    for b in $bins; do
        echo "memcheck: $(basename "$b")"
        # The timing test measures the native speed of a probe; under valgrind's emulation that
        # claim means nothing (its correctness siblings still run).
        PROPTEST_CASES=${MEMCHECK_PROPTEST_CASES:-256} RUST_BACKTRACE=0 \
            "${VG[@]}" "$b" --test-threads=2 -q --skip probe_costs_under_one_percent
    done
    echo "memcheck rust: clean ($((SECONDS - start)) s)"
}

memcheck_python() {
    : "${PY:?set PY to the venv python}"
    : "${TB_CPU_ONLY_EXTENSION:?set TB_CPU_ONLY_EXTENSION to the cpu-only lib_native.so}"
    local pkg
    pkg=$(mktemp -d)
    trap 'rm -rf "$pkg"' RETURN
    # The package's Python files with the cpu-only extension: no libtorch under valgrind.
    mkdir "$pkg/tensorbridge"
    cp bindings/python/python/tensorbridge/*.py "$pkg/tensorbridge/"
    cp "$TB_CPU_ONLY_EXTENSION" "$pkg/tensorbridge/_native.abi3.so"
    local start=$SECONDS
    PYTHONPATH="$pkg" PYTHONMALLOC=malloc \
        "${VG[@]}" --suppressions=scripts/valgrind-python.supp "$PY" scripts/memcheck_python.py
    echo "memcheck python: clean ($((SECONDS - start)) s)"
}

case "${1:-}" in
rust) memcheck_rust ;;
python) memcheck_python ;;
*) echo "usage: $0 rust|python" >&2; exit 2 ;;
esac
