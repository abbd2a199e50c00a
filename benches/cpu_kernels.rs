//! Criterion benches of the CPU backend's own kernels at the sizes users call them with, each
//! next to a limit measured in the same group. NumPy's (and torch's, when installed) figures for
//! the same shapes come from `benches/python/numpy_reference.py`, which can run this bench first
//! and print both side by side (one command):
//!
//! ```text
//! .venv/bin/python benches/python/numpy_reference.py --cargo
//! ```
//!
//! Groups (throughput = bytes of output written). Each result is dropped right after its call,
//! inside the timing, as in a loop that makes and drops tensors (and as in NumPy's figures): CPU
//! storage then goes back to the core's cache of paged-in buffers
//! (`tensorbridge_core::host::recycle`), so `ops` and `from_slice` outputs reuse memory, while
//! every `to_host` result is a new host array, paged in inside the timing as for a real caller.
//!
//! - `ops_16M_f32`: `add`, `mul` of two contiguous 4096² f32 tensors, and `add_scalar`
//!   (`t + 1.0`, a broadcast operand);
//! - `from_slice_64MiB_f32`: `Tensor::<Cpu>::from_slice` of 64 MiB, next to `memcpy_into_warm_buffer`
//!   (`copy_from_slice` into a buffer already paged in: the hard limit) and `memcpy_vec_clone`
//!   (`to_vec`: what a plain Rust copy into fresh memory costs);
//! - `copy_slice_1_8_f32`, `copy_bf16_to_f32`, `copy_transposed_{f32,u16,u8}`: `to_host` of the
//!   `[:, ::8]` view, `to_host_as(F32)` of a bf16 tensor, and `to_host` of `t.t()`, on near-square
//!   2-D tensors of 1e4, 1e6 and 64e6 elements (the Python benchmark's shapes: 100², 1000², 8000²).
//!   Each group also has `memcpy_into_warm_buffer` of the same output bytes.
//!
//! `TB_BENCH_QUICK=1` drops the 64e6 sizes and shortens the measurements; criterion's own flags
//! (a name filter, `--measurement-time`) still apply.
//!
//! Run: `cargo bench -p tensorbridge-cpu --bench cpu_kernels`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use half::bf16;
use tensorbridge_core::{DType, Device, Tensor};
use tensorbridge_cpu::{Cpu, CpuElement};

const MIB: usize = 1 << 20;

fn quick() -> bool {
    std::env::var_os("TB_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Element counts of the copy groups (the Python benchmark's sizes).
fn sizes() -> &'static [usize] {
    if quick() {
        &[10_000, 1_000_000]
    } else {
        &[10_000, 1_000_000, 64_000_000]
    }
}

/// False when criterion was asked for one benchmark (`--exact ID`, as
/// `benches/python/numpy_reference.py --cargo` does) that is not in `group` (at size `n`), so the
/// group can skip building its inputs (gigabytes at 64e6 elements). Any other filter builds all.
fn wanted(group: &str, n: Option<usize>) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = args.iter().find(|a| !a.starts_with('-'));
    match id {
        Some(id) if args.iter().any(|a| a == "--exact") => {
            id.starts_with(&format!("{group}/")) && n.is_none_or(|n| id.ends_with(&format!("/{n}")))
        }
        _ => true,
    }
}

/// The Python benchmark's near-square 2-D shape of `n` elements.
fn shape_of(n: usize) -> [usize; 2] {
    let rows = n.isqrt().max(1);
    [rows, n / rows]
}

/// A contiguous tensor of `data`, in storage allocated the way the backend allocates its own
/// (huge pages for large buffers, as NumPy's arrays have too: the peers' sources get them, and a
/// 256 MB strided read over 4 KiB pages spends much of its time in TLB misses).
fn tensor_of<T: CpuElement>(data: Vec<T>, shape: &[usize]) -> Tensor<Cpu> {
    Tensor::from_slice(&data, shape, &Device::Cpu).expect("shape matches the data")
}

/// A group with throughput in output bytes; large outputs get few, flat samples (every sample the
/// same iteration count), so a sample is never thousands of page-faulting copies.
fn group<'a>(c: &'a mut Criterion, name: &str, out_bytes: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    let measure = if quick() { 0.5 } else { 3.0 };
    g.sample_size(if out_bytes >= MIB { 10 } else { 30 })
        .warm_up_time(Duration::from_secs_f64(measure / 3.0))
        .measurement_time(Duration::from_secs_f64(measure))
        .throughput(Throughput::Bytes(out_bytes as u64));
    if out_bytes >= MIB {
        g.sampling_mode(SamplingMode::Flat);
    }
    g
}

/// Times `f` with each result dropped right after its call, inside the timing, as a loop does
/// (and as NumPy's figures include freeing the array). Keeping results alive until the end of a
/// batch or sample (`iter_with_large_drop`, `iter_batched`) would time page faults instead: the
/// allocator returns a batch's worth of freed memory to the system and faults it in again.
fn time_dropping<O>(b: &mut criterion::Bencher<'_>, mut f: impl FnMut() -> O) {
    b.iter(|| drop(f()))
}

/// `memcpy_into_warm_buffer` of `bytes`: the host-memory limit of a group.
fn memcpy_limit(g: &mut BenchmarkGroup<'_, WallTime>, id: impl Into<String>, bytes: usize) {
    let src = vec![1u8; bytes.max(1)];
    let mut dst = vec![0u8; bytes.max(1)];
    g.bench_function(
        BenchmarkId::new("memcpy_into_warm_buffer", id.into()),
        |b| b.iter(|| dst.copy_from_slice(black_box(&src))),
    );
}

fn ops(c: &mut Criterion) {
    if !wanted("ops_16M_f32", None) {
        return;
    }
    let n = 1 << 24;
    let side = 1 << 12;
    let a = tensor_of((0..n).map(|i| (i % 4093) as f32).collect(), &[side, side]);
    let b = tensor_of(
        (0..n).map(|i| (i % 127) as f32 + 0.5).collect(),
        &[side, side],
    );
    let mut g = group(c, "ops_16M_f32", n * 4);
    g.bench_function("add", |bch| {
        time_dropping(bch, || black_box(&a).add(black_box(&b)).expect("add"))
    });
    g.bench_function("mul", |bch| {
        time_dropping(bch, || black_box(&a).mul(black_box(&b)).expect("mul"))
    });
    g.bench_function("add_scalar", |bch| {
        time_dropping(bch, || black_box(&a).add_scalar(1.0f64).expect("add"))
    });
    g.finish();
}

fn from_slice(c: &mut Criterion) {
    if !wanted("from_slice_64MiB_f32", None) {
        return;
    }
    let n = 64 * MIB / 4;
    let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut g = group(c, "from_slice_64MiB_f32", 64 * MIB);
    g.bench_function("tensorbridge_from_slice", |b| {
        time_dropping(b, || {
            Tensor::<Cpu>::from_slice(black_box(&data), &[n], &Device::Cpu).expect("from_slice")
        })
    });
    g.bench_function("memcpy_vec_clone", |b| {
        time_dropping(b, || black_box(&data).to_vec())
    });
    let mut warm = data.clone();
    g.bench_function("memcpy_into_warm_buffer", |b| {
        b.iter(|| warm.copy_from_slice(black_box(&data)))
    });
    g.finish();
}

/// `to_host` (as `dtype`, when given) of `t` in group `name`, with the memcpy limit beside it.
fn copy_case(c: &mut Criterion, name: &str, n: usize, t: &Tensor<Cpu>, dtype: Option<DType>) {
    let out_dtype = dtype.unwrap_or(t.dtype());
    let bytes = t.elem_count() * out_dtype.size_in_bytes();
    let mut g = group(c, name, bytes);
    g.bench_function(BenchmarkId::new("tensorbridge", n), |b| {
        time_dropping(b, || match dtype {
            None => black_box(t).to_host().expect("to_host"),
            Some(d) => black_box(t).to_host_as(d).expect("to_host_as"),
        })
    });
    memcpy_limit(&mut g, n.to_string(), bytes);
    g.finish();
}

fn copies(c: &mut Criterion) {
    for &n in sizes() {
        let shape = shape_of(n);
        let len = shape[0] * shape[1];
        let want = |group: &str| wanted(group, Some(n));
        if want("copy_slice_1_8_f32") || want("copy_transposed_f32") {
            let t = tensor_of((0..len).map(|i| (i % 65_521) as f32).collect(), &shape);
            let sliced = t.slice(1, None, None, 8).expect("valid slice");
            copy_case(c, "copy_slice_1_8_f32", n, &sliced, None);
            copy_case(c, "copy_transposed_f32", n, &t.t(), None);
        }
        if want("copy_bf16_to_f32") {
            let h = tensor_of(
                (0..len)
                    .map(|i| bf16::from_f32((i % 4093) as f32 - 2046.0))
                    .collect(),
                &shape,
            );
            copy_case(c, "copy_bf16_to_f32", n, &h, Some(DType::F32));
        }
        if want("copy_transposed_u16") {
            let t16 = tensor_of((0..len).map(|i| i as u16).collect(), &shape);
            copy_case(c, "copy_transposed_u16", n, &t16.t(), None);
        }
        if want("copy_transposed_u8") {
            let t8 = tensor_of((0..len).map(|i| i as u8).collect(), &shape);
            copy_case(c, "copy_transposed_u8", n, &t8.t(), None);
        }
    }
}

criterion_group!(benches, ops, from_slice, copies);
criterion_main!(benches);
