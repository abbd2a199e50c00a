//! Criterion benches of the CPU backend's `to_host` path (the shared strided → contiguous kernel in
//! `tensorbridge-core`), each next to a peer and/or a limit measured in the same group:
//!
//! - `overhead`: a 4-element `to_host_array` (per-call cost, not bandwidth);
//! - `contiguous_64MiB_f32`: a dense copy vs memcpy of the same bytes, twice: `Vec` clone (into
//!   fresh memory, what a plain Rust copy costs) and `copy_from_slice` into a buffer already paged
//!   in (pure memory bandwidth, the hard limit);
//! - `transpose_8192_f32`: `t.t().to_host()` vs ndarray's `a.t().as_standard_layout().into_owned()`
//!   (the naive peer) and the same two memcpy limits;
//! - `step_slice_8_f32`: the `[:, ::8]` view of the 8192² tensor vs ndarray's `.slice(..).to_owned()`;
//! - `bf16_to_f32_256MiB`: `to_host_as(F32)` of 256 MiB of bf16 vs ndarray's `mapv(bf16::to_f32)`.
//!
//! Throughput is in bytes of *output* written. Fresh output memory is page-faulted in every
//! iteration, as it is for a real caller; dropping the result (munmap) is left out of the timing.
//! On Linux tensorbridge asks for transparent huge pages for large outputs (as NumPy does), a plain
//! `Vec` does not: that difference is most of the gap to `memcpy_vec_clone`. Page-fault cost also
//! depends on the machine's memory state (a VM returning freed memory to its host makes fresh
//! pages dearer), so a group run alone can read faster than in a full run.
//!
//! Run: `cargo bench -p tensorbridge-cpu --bench to_host`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use half::bf16;
use ndarray::{s, Ix2};
use tensorbridge_core::{DType, Layout, Tensor};
use tensorbridge_cpu::{Cpu, CpuElement};

const MIB: usize = 1 << 20;

/// A contiguous tensor over `data`, without an extra copy.
fn tensor_of<T: CpuElement>(data: Vec<T>, shape: &[usize]) -> Tensor<Cpu> {
    Tensor::from_storage(Arc::new(Cpu::from_vec(data)), Layout::contiguous(shape))
        .expect("layout fits its own storage")
}

/// Settings for groups whose one iteration moves hundreds of MiB: few, long samples.
fn big_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    out_bytes: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(out_bytes as u64));
    g
}

fn overhead(c: &mut Criterion) {
    let t = tensor_of(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let mut g = c.benchmark_group("overhead");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(16));
    g.bench_function("tensorbridge_to_host_array_4xf32", |b| {
        b.iter(|| black_box(&t).to_host_array::<f32>().expect("f32 tensor"))
    });
    g.finish();
}

fn contiguous(c: &mut Criterion) {
    let n = 64 * MIB / 4;
    let t = tensor_of((0..n).map(|i| i as f32).collect::<Vec<_>>(), &[n]);
    let src = t.host_view::<f32>().expect("cpu tensor is host memory");
    let src = src.as_slice().expect("contiguous");
    let mut g = big_group(c, "contiguous_64MiB_f32", 64 * MIB);
    g.bench_function("tensorbridge_to_host", |b| {
        b.iter_with_large_drop(|| t.to_host().expect("to_host"))
    });
    g.bench_function("memcpy_vec_clone", |b| {
        b.iter_with_large_drop(|| src.to_vec())
    });
    let mut warm = src.to_vec();
    g.bench_function("memcpy_into_warm_buffer", |b| {
        b.iter(|| warm.copy_from_slice(black_box(src)))
    });
    g.finish();
}

fn transpose_and_step_slice(c: &mut Criterion) {
    let side = 8192usize;
    let t = tensor_of(
        (0..side * side).map(|i| i as f32).collect::<Vec<_>>(),
        &[side, side],
    );
    let a = t.host_view::<f32>().expect("cpu tensor is host memory");
    let a = a.into_dimensionality::<Ix2>().expect("2-d");
    let bytes = side * side * 4;

    let tt = t.t();
    let mut g = big_group(c, "transpose_8192_f32", bytes);
    g.bench_function("tensorbridge_to_host", |b| {
        b.iter_with_large_drop(|| tt.to_host().expect("to_host"))
    });
    g.bench_function("ndarray_as_standard_layout", |b| {
        b.iter_with_large_drop(|| a.t().as_standard_layout().into_owned())
    });
    let flat = a.as_slice().expect("contiguous");
    g.bench_function("memcpy_vec_clone", |b| {
        b.iter_with_large_drop(|| flat.to_vec())
    });
    let mut warm = flat.to_vec();
    g.bench_function("memcpy_into_warm_buffer", |b| {
        b.iter(|| warm.copy_from_slice(black_box(flat)))
    });
    drop(warm);
    g.finish();

    let sliced = t.slice(1, None, None, 8).expect("valid slice");
    let mut g = big_group(c, "step_slice_8_f32", bytes / 8);
    g.bench_function("tensorbridge_to_host", |b| {
        b.iter_with_large_drop(|| sliced.to_host().expect("to_host"))
    });
    g.bench_function("ndarray_slice_to_owned", |b| {
        b.iter_with_large_drop(|| a.slice(s![.., ..;8]).to_owned())
    });
    g.finish();
}

fn bf16_to_f32(c: &mut Criterion) {
    let n = 256 * MIB / 2;
    let data: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f32((i % 4096) as f32 - 2048.0))
        .collect();
    let t = tensor_of(data, &[n]);
    let a = t.host_view::<bf16>().expect("cpu tensor is host memory");
    let mut g = big_group(c, "bf16_to_f32_256MiB", n * 4);
    g.bench_function("tensorbridge_to_host_as_f32", |b| {
        b.iter_with_large_drop(|| t.to_host_as(DType::F32).expect("bf16 → f32"))
    });
    g.bench_function("ndarray_mapv_to_f32", |b| {
        b.iter_with_large_drop(|| a.mapv(bf16::to_f32))
    });
    g.finish();
}

criterion_group!(
    benches,
    overhead,
    contiguous,
    transpose_and_step_slice,
    bf16_to_f32
);
criterion_main!(benches);
