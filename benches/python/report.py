"""Reporting for bench.py: ratios, JSON, the Markdown tables, the PNG plot, criterion results,
and ``--compare`` of two runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import Log, Row, fmt_time, pct


@dataclass
class RustRow:
    """One criterion benchmark (``group/function/value``) of the Rust run."""

    group: str
    function: str  # "<backend>@<device>" or "limit_memcpy"
    size: int
    unit: str  # "bytes" (throughput = output bytes) or "flop"
    per_iter: int  # bytes or flop per iteration
    min_s: float
    median_s: float

    @property
    def key(self) -> str:
        return f"rust/{self.group}/{self.size}/{self.function}"

    @property
    def rate_median(self) -> float:
        return self.per_iter / self.median_s / 1e9


@dataclass
class Result:
    facts: dict[str, Any]
    sizes: list[int]
    budget_s: float
    wall_s: float
    rows: list[Row]
    rust: list[RustRow]
    titles: dict[str, str]  # workload -> title, in order
    per_call: set[str]  # workloads whose figure is time per call


# ---------------------------------------------------------------------------------------------
# ratios


def _beside(rows: list[Row], r: Row, role: str) -> Row | None:
    """The row of ``role`` measured in ``r``'s group (same workload, size and device kind)."""
    for x in rows:
        same = x.workload == r.workload and x.size == r.size and x.device_kind == r.device_kind
        if same and x.role == role:
            return x
    return None


def limit_of(rows: list[Row], r: Row) -> Row | None:
    return _beside(rows, r, "limit")


def floor_of(rows: list[Row], r: Row) -> Row | None:
    """The protocol floor measured beside ``r`` (NumPy-entry-point workloads, CPU only)."""
    return _beside(rows, r, "floor")


def best_peer(rows: list[Row], r: Row) -> Row | None:
    """The fastest (median) peer of the same workload, size and device kind."""
    peers = [
        x
        for x in rows
        if x.workload == r.workload and x.size == r.size and x.device_kind == r.device_kind
        and x.role == "peer"
    ]  # fmt: skip
    return min(peers, key=lambda x: x.median_s, default=None)


def speed_ratio(reference: Row | None, r: Row, stat: str = "median_s") -> float | None:
    """reference time / r's time: > 1 means r is faster."""
    if reference is None:
        return None
    return float(getattr(reference, stat) / getattr(r, stat))


def find(rows: list[Row], workload: str, size: int, library: str, kind: str = "cpu") -> Row | None:
    for r in rows:
        if (r.workload, r.size, r.library, r.device_kind) == (workload, size, library, kind):
            return r
    return None


@dataclass
class Behind:
    """A CPU subject row slower than its best peer (speed ratios: > 1 means ours is faster)."""

    row: Row
    peer: Row
    ratio_median: float  # peer median / our median
    ratio_best: float  # peer min / our min
    # NumPy's protocol floor of the statement (rows of NumPy entry points): its dispatch to a
    # foreign object's ``__array__``, which any object converted that way pays.
    floor: Row | None = None

    @property
    def floor_bound(self) -> bool:
        """True when the best peer is NumPy on its own ndarray and what we spend beyond NumPy's
        dispatch is at or below that peer's whole time: the gap is the dispatch alone, which
        NumPy skips for its own type. (A peer that is itself a foreign object, as JAX's or
        TensorFlow's arrays are to NumPy, pays the same dispatch: no such row is floor-bound.)"""
        if self.floor is None or self.peer.library != "NumPy":
            return False
        return self.row.median_s - self.floor.median_s <= self.peer.median_s


BEHIND_HEADLINE = "CPU rows behind the best peer"


def behind_best_peer(rows: list[Row]) -> tuple[list[Behind], int]:
    """The CPU subject rows behind their best peer, slowest first, and how many CPU subject rows
    have a peer at all (M in "N of M").

    A row is behind when its median speed ratio to the best peer is < 1.0, with no noise
    margin: the goal is "at or above the best peer", the ratio is paired (subject and peers run
    interleaved in one process), and a margin would hide the rows that are just behind. Each
    listed row also carries the best-repetition ratio, so a reader can tell a row behind on
    medians only (likely load from other processes) from one behind on both (a slower path).
    Rows on other device kinds (CUDA) have their own peers and limits and are not counted.
    """
    behind: list[Behind] = []
    counted = 0
    for r in rows:
        if r.role != "subject" or r.device_kind != "cpu":
            continue
        peer = best_peer(rows, r)
        if peer is None:
            continue
        counted += 1
        ratio = speed_ratio(peer, r)
        assert ratio is not None
        if ratio < 1.0:
            best = speed_ratio(peer, r, "min_s")
            assert best is not None
            behind.append(Behind(r, peer, ratio, best, floor_of(rows, r)))
    behind.sort(key=lambda b: b.ratio_median)
    return behind, counted


def _behind_item(res: Result, b: Behind) -> str:
    title = res.titles.get(b.row.workload, b.row.workload)
    text = (
        f"{title}, {b.row.size:,} elements, {b.row.target}: {b.ratio_median:.2f}× "
        f"{b.peer.library} `{b.peer.stmt}` (best repetition {b.ratio_best:.2f}×)"
    )
    if b.floor is not None:
        f = b.floor.median_s
        beyond = max(b.row.median_s - f, 0.0)
        text += (
            f"; protocol floor (NumPy's dispatch) {fmt_time(f)}, ours beyond it "
            f"{fmt_time(beyond)} = {beyond / b.peer.median_s:.2f}× the peer's time"
        )
        if b.floor_bound:
            text += " (floor-bound)"
    return text


FLOOR_NOTE = (
    "floor-bound: the best peer is NumPy on its own ndarray, and ours minus the protocol floor "
    "(the same NumPy call on an object whose `__array__` returns the finished result, same run: "
    "NumPy's dispatch to a foreign object) is at or below that peer's time, so the whole gap is "
    "the dispatch, which NumPy does not pay for its own type"
)


def behind_headline(res: Result) -> tuple[str, str]:
    """("CPU rows behind the best peer", "N of M[: each row behind with its ratio; ...]")."""
    behind, counted = behind_best_peer(res.rows)
    listed = "; ".join(_behind_item(res, b) for b in behind)
    return BEHIND_HEADLINE, f"{len(behind)} of {counted}" + (f": {listed}" if listed else "")


def behind_markdown(res: Result) -> list[str]:
    """The headline block that opens the report: the count, then one line per row behind."""
    behind, counted = behind_best_peer(res.rows)
    lines = [
        f"**{BEHIND_HEADLINE}: {len(behind)} of {counted}** (tensorbridge CPU rows with a peer; "
        "behind: median speed ratio to the fastest peer < 1.00, same run)",
    ]
    if behind:
        bound = sum(b.floor_bound for b in behind)
        lines += ["", f"{bound} of the {len(behind)} are floor-bound ({FLOOR_NOTE}).", ""]
        lines += [f"- {_behind_item(res, b)}" for b in behind]
    return lines


def headlines(res: Result) -> list[tuple[str, str]]:
    """The figures users ask about first, for the CPU backend: (what, measured)."""
    rows, out = res.rows, []
    small, big = min(res.sizes), max(res.sizes)

    def add(
        what: str, workload: str, size: int, ref_lib: str | None, time_ratio: bool = False
    ) -> None:
        subject = find(rows, workload, size, "tensorbridge")
        if subject is None:
            return
        ref = best_peer(rows, subject) if ref_lib is None else find(rows, workload, size, ref_lib)
        if subject is None or ref is None:
            return
        ratio = speed_ratio(ref, subject)
        assert ratio is not None
        shown = f"{1 / ratio:.2f}× the time" if time_ratio else f"{ratio:.2f}× the speed"
        out.append(
            (
                f"{what} ({size:,} elements)",
                f"{shown} ({fmt_time(subject.median_s)} vs {ref.library} "
                f"`{ref.stmt}` {fmt_time(ref.median_s)})",
            )
        )

    add("`t.numpy()` per call vs torch", "numpy", small, "torch", time_ratio=True)
    add("transposed → host vs NumPy", "transposed", big, "NumPy")
    add("transposed → host vs torch", "transposed", big, "torch")
    add("`np.array(t)` copy vs memcpy limit", "array_copy", big, "limit")
    add("`np.array(t)` vs NumPy `np.array(a)`", "array_copy", big, "NumPy")
    add("`np.ascontiguousarray(t.T)` vs NumPy", "ascontiguous_t", big, "NumPy")
    add("`np.ascontiguousarray(t.T)` vs torch", "ascontiguous_t", big, "torch")
    add("bf16 → f32 vs torch", "bf16_to_f32", big, "torch")
    # tb.asnumpy of each runtime's own tensor vs that runtime's fastest way (its best peer row).
    for rt, label in (("torch", "torch"), ("tensorflow", "TensorFlow"), ("jax", "JAX")):
        for size in sorted({small, big}):
            add(f"`tb.asnumpy(t)` vs {label}'s own", f"asnumpy_{rt}", size, None, True)
            add(f"`tb.asnumpy(bf16, dtype=f32)` vs {label}", f"asnumpy_bf16_{rt}", size, None)
    for size in sorted({small, big}):
        add("`tb.asnumpy(t.T, order='C')` vs torch", "asnumpy_strided_torch", size, None)
    return out


# ---------------------------------------------------------------------------------------------
# JSON


def row_json(rows: list[Row], r: Row) -> dict[str, Any]:
    lim, peer = limit_of(rows, r), best_peer(rows, r)
    return asdict(r) | {
        "key": r.key,
        "reps": r.reps,
        "min_s": r.min_s,
        "median_s": r.median_s,
        "gbps_best": r.gbps_best,
        "gbps_median": r.gbps_median,
        "speed_vs_limit_median": speed_ratio(lim, r),
        "speed_vs_limit_best": speed_ratio(lim, r, "min_s"),
        "best_peer": None if peer is None else peer.key,
        "speed_vs_best_peer_median": speed_ratio(peer, r) if r.role == "subject" else None,
        "speed_vs_best_peer_best": speed_ratio(peer, r, "min_s") if r.role == "subject" else None,
    }


def write_json(res: Result, path: Path) -> None:
    behind, counted = behind_best_peer(res.rows)
    payload = {
        "facts": res.facts,
        "sizes": res.sizes,
        "budget_s": res.budget_s,
        "wall_s": res.wall_s,
        "workloads": res.titles,
        # the count of CPU rows behind the best peer first, then the single ratios
        "headlines": dict([behind_headline(res), *headlines(res)]),
        "behind_best_peer": {
            "behind": len(behind),
            "of": counted,
            "floor_bound": sum(b.floor_bound for b in behind),
            "rows": [
                {
                    "key": b.row.key,
                    "best_peer": b.peer.key,
                    "speed_vs_best_peer_median": b.ratio_median,
                    "speed_vs_best_peer_best": b.ratio_best,
                    "protocol_floor_s": None if b.floor is None else b.floor.median_s,
                    "floor_bound": b.floor_bound,
                }
                for b in behind
            ],
        },
        "rows": [row_json(res.rows, r) for r in res.rows],
        "rust": [asdict(r) | {"key": r.key} for r in res.rust],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Markdown


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _size(n: int) -> str:
    return f"{n:,}"


def markdown(res: Result) -> str:
    f = res.facts
    busy = f.get("background_during") or 0
    lines = [
        f"# tensorbridge benchmark {f.get('utc', '')}",
        "",
        *behind_markdown(res),
        "",
        f"- CPU: {f['cpu']} ({f['cpu_family_model']}), {f['usable_cpus']} usable of "
        f"{f['logical_cpus']} logical CPUs, {f['memory_gib']} GiB RAM, THP "
        f"`{f['transparent_hugepage']}`, kernel {f['kernel']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in f["versions"].items()),
        f"- Threads: {f['threads']}; env: {f['env'] or 'no OPENBLAS_*/OMP_* set'}",
        f"- tensorbridge commit {f['git_commit'] or 'unknown'}, backends "
        f"{f.get('tensorbridge_backends')}",
        f"- Other processes' CPU use (share of all CPUs): {pct(f.get('background_before'))} just "
        f"before, {pct(busy)} during the run"
        + (" — a busy machine: figures are noisy" if busy > 0.1 else ""),
        f"- {res.budget_s:g} s per statement, {res.wall_s:.0f} s in all. Times per call; GB/s = "
        "1e9 bytes of output per second; `× limit`, `× best peer` = their median time / ours "
        "(> 1: faster), same run, same device kind.",
        "",
    ]
    heads = headlines(res)
    if heads:
        lines += ["## Headline ratios (CPU backend)", ""]
        lines += [f"- {what}: **{measured}**" for what, measured in heads]
        lines.append("")
    lines += [
        "## Summary (tensorbridge rows)",
        "",
        "| Workload | Elements | Backend@device | Median | GB/s | Limit | × limit | Best peer "
        "| × best peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w, title in res.titles.items():
        for r in res.rows:
            if r.workload != w or r.role != "subject":
                continue
            lim, peer = limit_of(res.rows, r), best_peer(res.rows, r)
            lim_s = "—" if lim is None else f"{fmt_time(lim.median_s)} (`{lim.stmt}`)"
            peer_s = "—" if peer is None else f"{peer.library} {fmt_time(peer.median_s)}"
            zero_copy = w in res.per_call and r.device_kind == "cpu"
            gbps = "— (view)" if zero_copy else f"{r.gbps_median:.2f}"
            lines.append(
                f"| {title} | {_size(r.size)} | {r.target} | {fmt_time(r.median_s)} | "
                f"{gbps} | {lim_s} | {_x(speed_ratio(lim, r))} | {peer_s} | "
                f"{_x(speed_ratio(peer, r))} |"
            )
    lines += [
        "",
        "## Every row",
        "",
        "| Workload | Elements | Library | Target | Statement | Calls×reps | Min | Median | "
        "GB/s best | GB/s median | × limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w, title in res.titles.items():
        for r in res.rows:
            if r.workload != w:
                continue
            stmt = f"`{r.stmt}`" + (f" ({r.note})" if r.note else "")
            lines.append(
                f"| {title} | {_size(r.size)} | {r.library} | {r.target} | {stmt} | "
                f"{r.calls_per_rep}×{r.reps} | {fmt_time(r.min_s)} | {fmt_time(r.median_s)} | "
                f"{r.gbps_best:.2f} | {r.gbps_median:.2f} | "
                f"{_x(speed_ratio(limit_of(res.rows, r), r))} |"
            )
    if res.rust:
        lines += [
            "",
            "## Rust (criterion, `cargo bench -p tensorbridge --bench backends`)",
            "",
            "| Group | Elements | Function | Min | Median | GB/s or GFLOP/s (median) | × limit |",
            "|---|---|---|---|---|---|---|",
        ]
        limits = {(r.group, r.size): r for r in res.rust if r.function.startswith("limit")}
        order = {g: i for i, g in enumerate(dict.fromkeys(r.group for r in res.rust))}
        rust = sorted(
            res.rust, key=lambda r: (order[r.group], r.size, r.function.startswith("limit"))
        )
        for r in rust:
            lim = limits.get((r.group, r.size))
            ratio = None if lim is None else lim.median_s / r.median_s
            lines.append(
                f"| {r.group} | {_size(r.size)} | {r.function} | {fmt_time(r.min_s)} | "
                f"{fmt_time(r.median_s)} | {r.rate_median:.2f} | {_x(ratio)} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# plot


# One colour per library, the same in every panel; tensorbridge targets (backend@device) take
# the TB_COLORS in order. CUDA rows get square markers.
TB_COLORS = ("tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
COLORS = {
    "limit": "black",
    "protocol floor": "silver",
    "tensorbridge": "tab:red",
    "NumPy": "tab:orange",
    "torch": "tab:purple",
    "TensorFlow": "tab:green",
    "JAX": "tab:blue",
}


def plot(res: Result, path: Path, log: Log) -> Path | None:
    """Throughput (time per call for zero-copy workloads) vs size, one panel per workload, one
    line per library/target, the limit dashed. Skipped, with a message, without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        log(
            "matplotlib not installed: no plot (pip install -r benches/python/requirements-bench.txt)"
        )
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res.titles)
    tb_targets = sorted({r.target for r in res.rows if r.library == "tensorbridge"})
    cols = min(4, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, w in zip(axes.flat, names):
        series: dict[str, list[Row]] = {}
        for r in res.rows:
            # The protocol floor converts nothing: a throughput for it would only stretch the
            # axis; it is drawn where the figure is time per call.
            if r.workload == w and (r.role != "floor" or w in res.per_call):
                series.setdefault(f"{r.library} {r.target}", []).append(r)
        for label, rs in sorted(series.items()):
            rs.sort(key=lambda r: r.size)
            xs = [r.size for r in rs]
            if w in res.per_call:
                ys = [r.median_s * 1e6 for r in rs]
            else:
                ys = [r.gbps_median for r in rs]
            limit = rs[0].role in ("limit", "floor")
            subject = rs[0].role == "subject"
            color = COLORS.get(rs[0].library)
            if subject:
                color = TB_COLORS[tb_targets.index(rs[0].target) % len(TB_COLORS)]
            ax.plot(
                xs, ys, linestyle="--" if limit else "-", color=color,
                marker="s" if rs[0].device_kind == "cuda" else "o", markersize=3, linewidth=2.2 if subject else 1.2, label=label,
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(res.titles[w], fontsize=10)
        ax.set_xlabel("elements")
        ax.set_ylabel("µs per call (lower is better)" if w in res.per_call else "GB/s (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    f = res.facts
    fig.suptitle(
        f"tensorbridge {f.get('git_commit', '')} — {f['cpu']}, {f['usable_cpus']} CPUs — "
        f"{f.get('utc', '')}; dashed: limit (black), NumPy protocol floor (silver)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# criterion


def collect_criterion(root: Path | None, since: float) -> list[RustRow]:
    """Reads criterion's saved results (``<root>/<group>/<function>/<value>/new/``) written at or
    after ``since`` (epoch seconds), so results of earlier runs are not mixed in."""
    if root is None or not root.is_dir():
        return []
    out: list[RustRow] = []
    for bench in sorted(root.glob("*/*/*/new/benchmark.json")):
        if bench.stat().st_mtime < since:
            continue
        meta = json.loads(bench.read_text())
        sample = json.loads((bench.parent / "sample.json").read_text())
        per_iter_s = [t / i / 1e9 for t, i in zip(sample["times"], sample["iters"])]
        through = meta.get("throughput") or {}
        unit, amount = next(iter(through.items()), ("Bytes", 0))
        value = meta.get("value_str") or "0"
        out.append(
            RustRow(
                meta["group_id"], meta["function_id"], int(value) if value.isdigit() else 0,
                "flop" if unit == "Elements" else "bytes", int(amount), min(per_iter_s),
                statistics.median(per_iter_s),
            )
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# --compare


def _figures(payload: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """key -> (median_s, min_s) of every figure in a result file."""
    figs = {r["key"]: (r["median_s"], r["min_s"]) for r in payload.get("rows", [])}
    figs |= {r["key"]: (r["median_s"], r["min_s"]) for r in payload.get("rust", [])}
    return figs


def is_ours(key: str) -> bool:
    """A tensorbridge figure (Python subject or Rust backend row), not a peer's or a limit."""
    parts = key.split("/")
    if parts[0] == "rust":
        return not parts[-1].startswith("limit")
    return len(parts) > 2 and parts[2] == "tensorbridge"


def limit_key(key: str) -> str:
    """The key of the limit measured next to a figure (same workload, size and device)."""
    parts = key.split("/")
    if parts[0] == "rust":
        return "/".join([*parts[:-1], "limit_memcpy"])
    workload, size, _, target = parts[0], parts[1], parts[2], "/".join(parts[3:])
    return f"{workload}/{size}/limit/{target.rsplit('@', 1)[-1]}"


def compare(old_path: Path, new_path: Path, threshold: float, *, vs_limit: bool = False) -> int:
    """Prints new/old time ratios per figure and returns 1 if a tensorbridge figure regressed,
    else 0 (2: nothing in common).

    A figure regresses when its median *and* its minimum are both slower by more than
    ``threshold``: a slower code path moves the best repetition too, while load from other
    processes mostly moves the median (on the shared 2-core machine this was written on, two
    runs of the same code differ by more than 10% in a dozen medians, rarely in both).
    Peers and limits are printed for context, never flagged: they tell whether the machine, not
    the code, changed. The ``/limit`` column divides the median ratio by that of the limit
    measured beside it (the same run's memcpy), which cancels a machine-wide slowdown;
    ``vs_limit`` judges median and minimum that way.
    """
    old_p, new_p = json.loads(old_path.read_text()), json.loads(new_path.read_text())
    old, new = _figures(old_p), _figures(new_p)
    common = [k for k in new if k in old]
    print(f"old: {old_path} (commit {old_p.get('facts', {}).get('git_commit', '?')})")
    print(f"new: {new_path} (commit {new_p.get('facts', {}).get('git_commit', '?')})")
    if old_p.get("facts", {}).get("cpu") != new_p.get("facts", {}).get("cpu"):
        print("warning: the runs are from different CPUs; ratios compare machines, not code")
    basis = " relative to their limits" if vs_limit else ""
    print(
        f"time ratio new/old per figure ({len(common)}); tensorbridge figures whose median and "
        f"min are both > {1 + threshold:.2f}×{basis} are flagged:"
    )
    regressions = 0
    for k in common:
        ratio, best = new[k][0] / old[k][0], new[k][1] / old[k][1]
        lk = limit_key(k)
        has_limit = lk in new and lk in old and lk != k
        rel = ratio / (new[lk][0] / old[lk][0]) if has_limit else None
        judged: tuple[float, float] | None = (ratio, best)
        if vs_limit:
            judged = (rel, best / (new[lk][1] / old[lk][1])) if rel is not None else None
        flag = ""
        if is_ours(k) and judged is not None:
            if min(judged) > 1 + threshold:
                regressions += 1
                flag = "  REGRESSION"
            elif max(judged) < 1 - threshold:
                flag = "  faster"
        rel_s = "     —" if rel is None else f"{rel:5.2f}×"
        print(f"  {k:<58} {ratio:6.2f}× (min {best:5.2f}×, /limit {rel_s}){flag}")
    only_old = sorted(set(old) - set(new))
    only_new = sorted(set(new) - set(old))
    if only_old:
        print(f"  {len(only_old)} figures only in OLD, e.g. {only_old[0]}")
    if only_new:
        print(f"  {len(only_new)} figures only in NEW, e.g. {only_new[0]}")
    if not common:
        print("no figures in common: nothing compared")
        return 2
    print(f"{regressions} regression(s) > {threshold:.0%}" if regressions else "no regressions")
    return 1 if regressions else 0
