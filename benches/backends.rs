//! Cross-backend criterion benches: the same workloads on every backend compiled into the facade
//! crate, side by side, with the host memcpy limit measured in the same run.
//!
//! Workloads (f32 unless stated; throughput counts bytes of *output*, GFLOP/s for matmul):
//! - `to_host_contiguous`, `to_host_transposed` (`t.t()`), `to_host_slice_1_8` (`[:, ::8]` of a
//!   square tensor), `to_host_bf16_to_f32` (`to_host_as(F32)` of a bf16 tensor);
//! - `from_host` (`Tensor::from_slice`: a copy of borrowed host data onto the device);
//! - `add` (two contiguous tensors), `matmul` (square, n×n @ n×n);
//! - `limit/memcpy`: `copy_from_slice` of the same output bytes into an already paged-in buffer,
//!   in every conversion group (the host-memory bound no conversion can beat).
//!
//! Every timed closure ends with `synchronize()` on the result (or the source), so asynchronous
//! backends (CUDA, lazy graphs) are timed to completion, not to the launch. Results are dropped
//! outside the timing (`iter_with_large_drop`); fresh output memory is paged in inside it, as for
//! a real caller.
//!
//! A backend is registered by feature in [`all_backends`], one line each; a backend whose device
//! is absent (no GPU) is skipped with a message, not an error.
//!
//! Run: `cargo bench -p tensorbridge --bench backends` (add `--features torch,cuda,...` for more
//! backends). `TB_BENCH_QUICK=1` uses smaller sizes and shorter measurements (regression check);
//! criterion's own flags (`-- --measurement-time 5`, a name filter) still apply.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use criterion::{SamplingMode, Throughput};
use half::bf16;
use tensorbridge::{Backend, DType, Device, Tensor};

/// Sides of the square f32 tensors the conversion workloads use (elements = side²).
fn sides() -> &'static [usize] {
    if quick() {
        &[2, 256, 1024]
    } else {
        &[2, 256, 4096]
    }
}

/// Sides of the square matmul operands.
fn matmul_sides() -> &'static [usize] {
    if quick() {
        &[64, 256]
    } else {
        &[64, 512]
    }
}

fn quick() -> bool {
    std::env::var_os("TB_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

fn config() -> Criterion {
    // Quick mode also resamples less: criterion's bootstrap of the confidence intervals costs
    // more than the measurement on a busy 2-core machine, and the report uses min and median.
    let (warm, measure, resamples) = if quick() {
        (0.2, 0.5, 5_000)
    } else {
        (1.0, 3.0, 100_000)
    };
    Criterion::default()
        .sample_size(10)
        .nresamples(resamples)
        .warm_up_time(Duration::from_secs_f64(warm))
        .measurement_time(Duration::from_secs_f64(measure))
}

/// Every compiled backend, each on its device. Adding a backend is one line here (plus its
/// feature and optional dependency in `crates/tensorbridge/Cargo.toml`).
fn all_backends(c: &mut Criterion) {
    #[cfg(feature = "cpu")]
    bench_backend::<tensorbridge::Cpu>(c, Device::Cpu);
    // ---- more backends: one line each -------------------------------------------------------
    #[cfg(feature = "torch")]
    bench_backend::<tensorbridge::Torch>(c, Device::Cpu);
    #[cfg(feature = "torch")]
    bench_backend::<tensorbridge::Torch>(c, Device::Cuda(0));
    // #[cfg(feature = "cuda")]
    // bench_backend::<tensorbridge_candle::Candle>(c, Device::Cuda(0));
    #[cfg(feature = "lazy")]
    bench_backend::<tensorbridge::Lazy<tensorbridge::Cpu>>(c, Device::Cpu);
    // -------------------------------------------------------------------------------------------
    limits(c);
}

/// Throughput in output bytes; groups whose one iteration moves MiB get flat sampling (every
/// sample the same iteration count), so a sample is never thousands of page-faulting copies.
fn set_size(g: &mut BenchmarkGroup<'_, WallTime>, out_bytes: usize) {
    g.throughput(Throughput::Bytes(out_bytes as u64));
    g.sampling_mode(if out_bytes >= 1 << 20 {
        SamplingMode::Flat
    } else {
        SamplingMode::Auto
    });
}

fn square_f32(side: usize) -> Vec<f32> {
    (0..side * side).map(|i| (i % 65_521) as f32).collect()
}

/// All workloads of one backend on one device, in groups shared with the other backends so the
/// report shows them side by side (`<workload>/<backend>@<device>/<elements>`).
fn bench_backend<B: Backend>(c: &mut Criterion, device: Device) {
    let id = format!("{}@{device}", B::NAME);
    if let Err(e) = Tensor::<B>::zeros(&[1], DType::F32, &device) {
        eprintln!("backends bench: skipping {id}: {e}");
        return;
    }
    for &side in sides() {
        let n = side * side;
        let data = square_f32(side);
        let t = Tensor::<B>::from_slice(&data, &[side, side], &device).expect("device tensor");
        t.synchronize().expect("synchronize");

        let mut g = c.benchmark_group("to_host_contiguous");
        set_size(&mut g, n * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| to_host_synced(&t, None))
        });
        g.finish();

        let tt = t.t();
        let mut g = c.benchmark_group("to_host_transposed");
        set_size(&mut g, n * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| to_host_synced(&tt, None))
        });
        g.finish();

        let sliced = t.slice(1, None, None, 8).expect("valid slice");
        let mut g = c.benchmark_group("to_host_slice_1_8");
        set_size(&mut g, sliced.elem_count() * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| to_host_synced(&sliced, None))
        });
        g.finish();

        let halves: Vec<bf16> = data.iter().map(|&x| bf16::from_f32(x)).collect();
        let h = Tensor::<B>::from_slice(&halves, &[side, side], &device).expect("bf16 tensor");
        drop(halves);
        let mut g = c.benchmark_group("to_host_bf16_to_f32");
        set_size(&mut g, n * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| to_host_synced(&h, Some(DType::F32)))
        });
        g.finish();
        drop(h);

        let mut g = c.benchmark_group("from_host");
        set_size(&mut g, n * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| {
                let t = Tensor::<B>::from_slice(black_box(&data), &[side, side], &device)
                    .expect("from_slice");
                t.synchronize().expect("synchronize");
                t
            })
        });
        g.finish();

        let mut g = c.benchmark_group("add");
        set_size(&mut g, n * 4);
        g.bench_function(BenchmarkId::new(&id, n), |b| {
            b.iter_with_large_drop(|| {
                let r = t.add(black_box(&t)).expect("add");
                r.synchronize().expect("synchronize");
                r
            })
        });
        g.finish();
    }
    for &side in matmul_sides() {
        let a = Tensor::<B>::from_slice(&square_f32(side), &[side, side], &device)
            .expect("device tensor");
        let mut g = c.benchmark_group("matmul");
        g.throughput(Throughput::Elements(2 * (side as u64).pow(3)));
        g.sampling_mode(SamplingMode::Flat);
        g.bench_function(BenchmarkId::new(&id, side * side), |b| {
            b.iter_with_large_drop(|| {
                let r = a.matmul(black_box(&a)).expect("matmul");
                r.synchronize().expect("synchronize");
                r
            })
        });
        g.finish();
    }
}

/// `to_host` (or `to_host_as`) followed by a device sync, both inside the timed region.
fn to_host_synced<B: Backend>(t: &Tensor<B>, cast: Option<DType>) -> tensorbridge::HostArray {
    let h = match cast {
        None => t.to_host(),
        Some(dtype) => t.to_host_as(dtype),
    }
    .expect("to_host");
    t.synchronize().expect("synchronize");
    h
}

/// The host-memory limit for every conversion group and size: memcpy of the output bytes into an
/// already paged-in buffer.
fn limits(c: &mut Criterion) {
    let groups = [
        ("to_host_contiguous", 1),
        ("to_host_transposed", 1),
        ("to_host_slice_1_8", 8),
        ("to_host_bf16_to_f32", 1),
        ("from_host", 1),
    ];
    for &side in sides() {
        let n = side * side;
        for (name, divisor) in groups {
            let len = (side * side.div_ceil(divisor)).max(1);
            let src = vec![1.0f32; len];
            let mut dst = vec![0.0f32; len];
            let mut g = c.benchmark_group(name);
            set_size(&mut g, len * 4);
            g.bench_function(BenchmarkId::new("limit_memcpy", n), |b| {
                b.iter(|| dst.copy_from_slice(black_box(&src)))
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = all_backends
}
criterion_main!(benches);
