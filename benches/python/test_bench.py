"""The benchmark harness on tiny sizes (seconds), run by `make test` so it cannot rot: the grid,
the JSON, the Markdown table, the plot, criterion collection and `--compare`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import bench
import out_of_core
import report
import tensorbridge as tb


def run_tiny(out: Path) -> dict[str, Any]:
    argv = ["--sizes", "4,64", "--budget", "0.002", "--peers", "", "--out-dir", str(out)]
    assert bench.main(argv) == 0
    (json_path,) = out.glob("*.json")
    for ext in (".md", ".png"):  # matplotlib is in requirements-dev: the plot path runs too
        assert json_path.with_suffix(ext).stat().st_size > 0
    payload: dict[str, Any] = json.loads(json_path.read_text())
    return payload


def test_tiny_run_measures_every_workload_size_target_and_limit(tmp_path: Path) -> None:
    payload = run_tiny(tmp_path)
    targets = [f"{b}@{d}" for b, d in bench.tensorbridge_targets()]
    assert "cpu@cpu" in targets
    keys = {r["key"] for r in payload["rows"]}
    for w in bench.WORKLOADS:
        for size in (4, 64):
            for target in targets:
                assert f"{w.name}/{size}/tensorbridge/{target}" in keys
            assert f"{w.name}/{size}/limit/cpu" in keys
    for r in payload["rows"]:
        assert r["reps"] >= 5 and r["min_s"] > 0 and r["min_s"] <= r["median_s"]
        if r["role"] == "subject" and r["target"].endswith("@cpu"):
            assert r["speed_vs_limit_median"] is not None
        if r["workload"] == "transposed" and r["role"] == "subject":
            # the NumPy peer is always there, so the best-peer ratio is too
            assert r["best_peer"] == f"transposed/{r['size']}/NumPy/cpu"
            assert r["speed_vs_best_peer_median"] > 0
    facts = payload["facts"]
    assert facts["logical_cpus"] and facts["versions"]["numpy"] and facts["git_commit"]
    table = next(tmp_path.glob("*.md")).read_text()
    assert "| transposed view → contiguous | 64 | cpu@cpu |" in table
    assert "transposed → host vs NumPy (64 elements)" in table
    # the count of CPU rows behind the best peer opens the report and the JSON headlines
    first = table.split("\n## ", 1)[0]
    assert "**CPU rows behind the best peer: " in first
    assert next(iter(payload["headlines"])) == "CPU rows behind the best peer"
    behind = payload["behind_best_peer"]
    with_peer = [r for r in payload["rows"] if r["role"] == "subject" and r["best_peer"]
                 and r["target"].endswith("@cpu")]  # fmt: skip
    assert behind["of"] == len(with_peer) > 0
    assert payload["headlines"]["CPU rows behind the best peer"].startswith(
        f"{behind['behind']} of {behind['of']}"
    )


def test_device_discovery_probes_backends() -> None:
    assert bench.devices_of("cpu")[0] == "cpu"
    assert bench.devices_of("no-such-backend") == []
    assert set(tb.compiled_backends()) == {b for b, _ in bench.tensorbridge_targets()}


def _result(
    rows: list[tuple[str, float]],
    rust: list[tuple[str, float]],
    mins: dict[str, float] | None = None,
) -> dict[str, Any]:
    mins = mins or {}
    return {
        "facts": {"cpu": "test CPU", "git_commit": "abc"},
        "rows": [{"key": k, "median_s": t, "min_s": mins.get(k, t * 0.9)} for k, t in rows],
        "rust": [{"key": k, "median_s": t, "min_s": t} for k, t in rust],
    }


def test_compare_flags_only_our_figures_slower_by_more_than_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _result(
        [("numpy/4/tensorbridge/cpu@cpu", 1e-7), ("transposed/64/tensorbridge/cpu@cpu", 1e-6),
         ("transposed/64/limit/cpu", 1e-7), ("transposed/64/torch/cpu", 1e-6),
         ("bf16_to_f32/64/tensorbridge/cpu@cpu", 1e-6), ("asarray/4/tensorbridge/cpu@cpu", 1e-7)],
        [("rust/add/4/cpu@cpu", 2e-8)],
    )  # fmt: skip
    new = _result(
        [("numpy/4/tensorbridge/cpu@cpu", 1.05e-7), ("transposed/64/tensorbridge/cpu@cpu", 1.3e-6),
         ("transposed/64/limit/cpu", 1.3e-7), ("transposed/64/torch/cpu", 2e-6),
         ("bf16_to_f32/64/tensorbridge/cpu@cpu", 0.5e-6), ("sliced/4/NumPy/cpu", 1e-6),
         ("asarray/4/tensorbridge/cpu@cpu", 2e-7)],
        [("rust/add/4/cpu@cpu", 2.5e-8)],
        # the median doubled but the best repetition did not move: load, not a slower path
        mins={"asarray/4/tensorbridge/cpu@cpu": 0.9e-7},
    )  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    argv = ["--compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]
    assert bench.main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    flagged = sorted(ln.split()[0] for ln in lines if "REGRESSION" in ln)
    # the torch peer got 2x slower too, but peers are context, not regressions of ours
    assert flagged == ["rust/add/4/cpu@cpu", "transposed/64/tensorbridge/cpu@cpu"]
    assert any("bf16_to_f32" in ln and "faster" in ln for ln in lines)
    assert any("only in NEW" in ln for ln in lines)
    # a looser threshold lets the same runs pass
    assert bench.main([*argv, "--threshold", "0.3"]) == 0
    # relative to the limit, the transpose kept pace with a machine 30% slower: no regression,
    # and the Rust figure has no limit to judge by
    capsys.readouterr()
    assert bench.main([*argv, "--vs-limit"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "transposed/64/tensorb" in ln)
    assert "/limit  1.00×" in line
    # a run compared with itself has no regressions
    assert bench.main(["--compare", argv[1], argv[1]]) == 0


def test_limit_keys_pair_each_figure_with_its_own_limit() -> None:
    assert report.limit_key("sliced/64/tensorbridge/cuda@cuda:0") == "sliced/64/limit/cuda:0"
    assert report.limit_key("sliced/64/torch/cpu") == "sliced/64/limit/cpu"
    assert report.limit_key("rust/from_host/4/cpu@cpu") == "rust/from_host/4/limit_memcpy"
    assert report.is_ours("rust/from_host/4/cpu@cpu") and report.is_ours("a/4/tensorbridge/x@y")
    assert not report.is_ours("rust/from_host/4/limit_memcpy")
    assert not report.is_ours("a/4/torch/cpu")


def test_criterion_results_are_collected_from_this_run_only(tmp_path: Path) -> None:
    def write(group: str, function: str, value: str, times: list[float], mtime: float) -> None:
        d = tmp_path / group / function / value / "new"
        d.mkdir(parents=True)
        meta = {"group_id": group, "function_id": function, "value_str": value,
                "throughput": {"Bytes": 4 * int(value)}}  # fmt: skip
        (d / "benchmark.json").write_text(json.dumps(meta))
        sample = {"iters": [2.0] * len(times), "times": times}
        (d / "sample.json").write_text(json.dumps(sample))
        for f in d.iterdir():
            os.utime(f, (mtime, mtime))

    write("to_host_contiguous", "cpu@cpu", "1024", [400.0, 200.0, 300.0], 2000.0)
    write("to_host_contiguous", "limit_memcpy", "1024", [100.0, 100.0, 100.0], 2000.0)
    write("add", "cpu@cpu", "1024", [1.0, 1.0, 1.0], 1000.0)  # an earlier run: left out
    rows = report.collect_criterion(tmp_path, since=1500.0)
    assert sorted(r.key for r in rows) == [
        "rust/to_host_contiguous/1024/cpu@cpu",
        "rust/to_host_contiguous/1024/limit_memcpy",
    ]
    ours = next(r for r in rows if r.function == "cpu@cpu")
    assert ours.min_s == pytest.approx(100e-9) and ours.median_s == pytest.approx(150e-9)
    assert ours.per_iter == 4096 and ours.unit == "bytes"


def test_ratios_compare_within_one_device_kind() -> None:
    # No GPU here: synthetic rows stand in for a CUDA run, to pin that a CUDA subject is judged
    # against CUDA peers and the pinned-copy limit, never against host rows.
    def row(library: str, target: str, role: str, t: float) -> report.Row:
        return report.Row("array_copy", 64, library, target, role, "stmt", 256, 1, [t, t])

    rows = [
        row("tensorbridge", "cpu@cpu", "subject", 2.0),
        row("tensorbridge", "cuda@cuda:0", "subject", 4.0),
        row("NumPy", "cpu", "peer", 1.0),
        row("torch", "cuda:0", "peer", 8.0),
        row("limit", "cpu", "limit", 0.5),
        row("limit", "cuda:0", "limit", 2.0),
    ]
    cpu, cuda = rows[0], rows[1]
    assert report.best_peer(rows, cpu) is rows[2] and report.limit_of(rows, cpu) is rows[4]
    assert report.best_peer(rows, cuda) is rows[3] and report.limit_of(rows, cuda) is rows[5]
    assert report.speed_ratio(report.best_peer(rows, cuda), cuda) == 2.0
    assert report.speed_ratio(report.limit_of(rows, cuda), cuda) == 0.5


def test_out_of_core_bench_writes_both_variants_verified(tmp_path: Path) -> None:
    argv = ["--gib", "0.004", "--chunk-mib", "0.5", "--cols", "1024", "--backends", "cpu"]
    argv += ["--out-dir", str(tmp_path)]
    assert out_of_core.main(argv) == 0
    (json_path,) = tmp_path.glob("*-out-of-core.json")
    rows = json.loads(json_path.read_text())["rows"]
    got = {(r["backend"], r["device"], r["variant"]) for r in rows}
    assert got == {("cpu", "cpu", "to_dask"), ("cpu", "cpu", "asarray")}
    assert all(r["verified"] and r["gb_per_s"] > 0 for r in rows)
    assert "`tb.to_dask(t, chunks).to_zarr(store)`" in json_path.with_suffix(".md").read_text()


def test_asnumpy_rows_compare_each_runtime_with_its_own_conversion(tmp_path: Path) -> None:
    names = "asnumpy_torch,asnumpy_bf16_torch,asnumpy_strided_torch,asnumpy_jax,asnumpy_bf16_jax"
    argv = ["--sizes", "4,64", "--budget", "0.002", "--peers", "torch,jax", "--workloads", names,
            "--out-dir", str(tmp_path), "--no-plot"]  # fmt: skip
    assert bench.main(argv) == 0
    payload = json.loads(next(tmp_path.glob("*.json")).read_text())
    rows = {r["key"]: r for r in payload["rows"]}
    for size in (4, 64):
        for name, runtime, peer in (
            ("asnumpy_torch", "torch", "torch"),
            ("asnumpy_bf16_torch", "torch", "torch"),
            ("asnumpy_strided_torch", "torch", "torch"),
            ("asnumpy_jax", "jax", "JAX"),
            ("asnumpy_bf16_jax", "jax", "JAX"),
        ):
            subject = rows[f"{name}/{size}/tensorbridge/{runtime}@cpu"]
            assert f"{name}/{size}/{peer}/cpu" in rows
            assert subject["best_peer"].startswith(f"{name}/{size}/")
            assert subject["speed_vs_best_peer_median"] > 0
    assert "`tb.asnumpy(t)` vs torch's own (4 elements)" in payload["headlines"]


def test_headline_counts_cpu_rows_behind_their_best_peer() -> None:
    def row(workload: str, library: str, target: str, role: str, t: float) -> report.Row:
        return report.Row(workload, 64, library, target, role, "stmt", 256, 1, [t, t * 0.8])

    rows = [
        # behind: 2 s against NumPy's 1 s
        row("transposed", "tensorbridge", "cpu@cpu", "subject", 2.0),
        row("transposed", "NumPy", "cpu", "peer", 1.0),
        row("transposed", "torch", "cpu", "peer", 3.0),
        # ahead of its only peer
        row("array_copy", "tensorbridge", "cpu@cpu", "subject", 1.0),
        row("array_copy", "torch", "cpu", "peer", 1.5),
        # no peer (e.g. none installed): not counted either way
        row("numpy", "tensorbridge", "cpu@cpu", "subject", 5.0),
        row("numpy", "limit", "cpu", "limit", 1.0),
        # a CUDA row 4x behind its CUDA peer: not a CPU row, not counted
        row("array_copy", "tensorbridge", "cuda@cuda:0", "subject", 4.0),
        row("array_copy", "torch", "cuda:0", "peer", 1.0),
        # a tb.asnumpy row (its target is the runtime's tensor on the CPU) 10% behind
        row("asnumpy_torch", "tensorbridge", "torch@cpu", "subject", 1.1),
        row("asnumpy_torch", "torch", "cpu", "peer", 1.0),
    ]
    behind, counted = report.behind_best_peer(rows)
    assert counted == 3
    assert [(b.row.workload, b.peer.library) for b in behind] == [
        ("transposed", "NumPy"),  # slowest first
        ("asnumpy_torch", "torch"),
    ]
    assert behind[0].ratio_median == 0.5 and behind[1].ratio_median == pytest.approx(1 / 1.1)

    titles = {"transposed": "transposed view → contiguous", "array_copy": "np.array(t)"}
    res = report.Result({}, [64], 0.1, 1.0, rows, [], titles, {"numpy"})
    what, measured = report.behind_headline(res)
    assert what == "CPU rows behind the best peer"
    assert measured.startswith("2 of 3: transposed view → contiguous, 64 elements, cpu@cpu: 0.50× ")
    assert "asnumpy_torch, 64 elements, torch@cpu: 0.91× torch" in measured
    block = report.behind_markdown(res)
    assert block[0].startswith("**CPU rows behind the best peer: 2 of 3**")
    assert block[2] == f"0 of the 2 are floor-bound ({report.FLOOR_NOTE})."
    assert block[4].startswith("- transposed view → contiguous, 64 elements, cpu@cpu: 0.50× NumPy")

    # none behind: the headline says 0 and lists nothing
    ahead = [r for r in rows if r.workload == "array_copy"]
    res = report.Result({}, [64], 0.1, 1.0, ahead, [], titles, set())
    assert report.behind_headline(res) == ("CPU rows behind the best peer", "0 of 1")
    assert report.behind_markdown(res)[0].startswith("**CPU rows behind the best peer: 0 of 1**")


def test_rows_behind_name_their_protocol_floor_and_whether_it_binds() -> None:
    def row(workload: str, library: str, role: str, t: float) -> report.Row:
        target = "cpu@cpu" if role == "subject" else "cpu"
        return report.Row(workload, 4, library, target, role, "np.array(t)", 16, 1, [t, t])

    rows = [
        # 1.5 s, of which 1.2 s is NumPy's dispatch: the 0.3 s beyond it beat NumPy's 1.0 s
        row("array_copy", "tensorbridge", "subject", 1.5),
        row("array_copy", "NumPy", "peer", 1.0),
        row("array_copy", "protocol floor", "floor", 1.2),
        # 2.0 s, of which 0.5 s is dispatch: the 1.5 s beyond it are behind the peer's 1.0 s
        row("asarray_f64", "tensorbridge", "subject", 2.0),
        row("asarray_f64", "NumPy", "peer", 1.0),
        row("asarray_f64", "protocol floor", "floor", 0.5),
        # no floor measured (not a NumPy entry point): never floor-bound
        row("transposed", "tensorbridge", "subject", 2.0),
        row("transposed", "NumPy", "peer", 1.0),
    ]
    behind, counted = report.behind_best_peer(rows)
    assert counted == 3 and len(behind) == 3
    bound = {b.row.workload: b.floor_bound for b in behind}
    assert bound == {"array_copy": True, "asarray_f64": False, "transposed": False}
    res = report.Result({}, [4], 0.1, 1.0, rows, [], {}, set())
    block = report.behind_markdown(res)
    assert block[2].startswith("1 of the 3 are floor-bound")
    items = "\n".join(block) + "\n"
    assert "array_copy, 4 elements, cpu@cpu: 0.67× NumPy" in items
    assert (
        "protocol floor (NumPy's dispatch) 1.20 s, ours beyond it 300.0 ms = 0.30× the peer's "
        "time (floor-bound)\n" in items
    )
    assert (
        "protocol floor (NumPy's dispatch) 500.0 ms, ours beyond it 1.50 s = 1.50× the peer's "
        "time\n" in items
    )
    assert (
        "- transposed, 4 elements, cpu@cpu: 0.50× NumPy `np.array(t)` (best repetition "
        "0.50×)\n" in items
    )
    # A peer that is itself a foreign object to NumPy (JAX, TensorFlow) pays the same
    # dispatch: a row behind it is never floor-bound, however small the floor.
    jax_peer = [
        row("asarray", "tensorbridge", "subject", 1.5),
        row("asarray", "JAX", "peer", 1.0),
        row("asarray", "protocol floor", "floor", 1.2),
    ]
    (b,), _ = report.behind_best_peer(jax_peer)
    assert b.floor is not None and not b.floor_bound


def test_user_path_rows_stand_beside_the_direct_calls_with_peers(tmp_path: Path) -> None:
    names = "transposed,ascontiguous_t,numpy_copy,array_copy,asarray_f64"
    argv = ["--sizes", "4,64", "--budget", "0.002", "--peers", "torch,jax,tensorflow",
            "--workloads", names, "--out-dir", str(tmp_path), "--no-plot"]  # fmt: skip
    assert bench.main(argv) == 0
    payload = json.loads(next(tmp_path.glob("*.json")).read_text())
    rows = {r["key"]: r for r in payload["rows"]}
    targets = [f"{b}@{d}" for b, d in bench.tensorbridge_targets() if d == "cpu"]
    assert "cpu@cpu" in targets
    versions = payload["facts"]["versions"]
    installed = [label for name, label in (("torch", "torch"), ("jax", "JAX"),
                 ("tensorflow", "TensorFlow")) if versions[name] != "not installed"]  # fmt: skip
    peers = ["NumPy", *installed]
    for size in (4, 64):
        for name in names.split(","):
            for peer in peers:
                assert f"{name}/{size}/{peer}/cpu" in rows
            for target in targets:
                subject = rows[f"{name}/{size}/tensorbridge/{target}"]
                assert subject["best_peer"].startswith(f"{name}/{size}/")
                assert subject["speed_vs_best_peer_median"] > 0
    assert rows["asarray_f64/64/tensorbridge/cpu@cpu"]["out_bytes"] == 64 * 8
    # NumPy's entry points have their protocol floor beside them (the same statement on a
    # finished array behind __array__); our own methods do not go through NumPy's protocol.
    for size in (4, 64):
        for name in ("ascontiguous_t", "array_copy", "asarray_f64"):
            floor = rows[f"{name}/{size}/protocol floor/cpu"]
            assert floor["role"] == "floor"
            assert floor["stmt"] == rows[f"{name}/{size}/tensorbridge/cpu@cpu"]["stmt"]
        for name in ("transposed", "numpy_copy"):
            assert f"{name}/{size}/protocol floor/cpu" not in rows
    assert rows["ascontiguous_t/4/NumPy/cpu"]["stmt"] == "np.ascontiguousarray(a.T)"
    headline = payload["headlines"]["CPU rows behind the best peer"]
    assert headline.startswith(f"{payload['behind_best_peer']['behind']} of {2 * 5 * len(targets)}")
