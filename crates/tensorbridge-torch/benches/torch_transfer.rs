//! The torch backend's host transfer against doing it with tch directly, same process, same data:
//! - a transposed view to a contiguous host array: our blocked kernel reading libtorch's memory
//!   in place vs libtorch's own `contiguous()` followed by tch's copy out (which zero-fills first);
//! - a contiguous 256 MiB tensor: our one copy vs tch's `Vec::<f32>::try_from`;
//! - the zero-copy read (`host_view`, what Python's `.numpy()` does) per call.
//!
//! `cargo bench -p tensorbridge-torch --bench torch_transfer` (the Makefile sets LIBTORCH).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tensorbridge_core::{Device, Tensor};
use tensorbridge_torch::{to_tch, Torch};

fn bench(c: &mut Criterion) {
    let n = 4096usize;
    let t = Tensor::<Torch>::arange(
        0f32.into(),
        ((n * n) as f32).into(),
        1f32.into(),
        Some(tensorbridge_core::DType::F32),
        &Device::Cpu,
    )
    .unwrap()
    .reshape(&[n as isize, n as isize])
    .unwrap();
    let bytes = (n * n * 4) as u64;

    let mut g = c.benchmark_group("torch transposed 4096x4096 f32 -> host");
    g.throughput(Throughput::Bytes(bytes)).sample_size(10);
    g.bench_function("tensorbridge to_host_array (core blocked kernel)", |b| {
        b.iter_batched(
            || (),
            |_| t.t().to_host_array::<f32>().unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tch contiguous() + Vec::try_from", |b| {
        b.iter_batched(
            || to_tch(&t.t()).unwrap(),
            |v| Vec::<f32>::try_from(v.contiguous().view([-1])).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let big =
        Tensor::<Torch>::ones(&[64 << 20], tensorbridge_core::DType::F32, &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("torch contiguous 256 MiB f32 -> host");
    g.throughput(Throughput::Bytes(256 << 20)).sample_size(10);
    g.bench_function("tensorbridge to_host_array (one copy)", |b| {
        b.iter(|| big.to_host_array::<f32>().unwrap())
    });
    g.bench_function("tch Vec::<f32>::try_from (zero-fill + copy)", |b| {
        let raw = to_tch(&big).unwrap();
        b.iter(|| Vec::<f32>::try_from(&raw).unwrap())
    });
    g.finish();

    let small = Tensor::<Torch>::ones(&[4], tensorbridge_core::DType::F32, &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("torch per-call read, 4 x f32");
    g.bench_function("tensorbridge host_view (zero-copy)", |b| {
        b.iter(|| small.host_view::<f32>().unwrap()[[3]])
    });
    g.bench_function("tensorbridge to_host_array (copy)", |b| {
        b.iter(|| small.to_host_array::<f32>().unwrap())
    });
    let raw = to_tch(&small).unwrap();
    g.bench_function("tch Vec::<f32>::try_from", |b| {
        b.iter(|| Vec::<f32>::try_from(&raw).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
