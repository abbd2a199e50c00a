//! Device → host transfer of the CUDA backend (needs the `cuda` feature and a GPU; without one it
//! prints why and measures nothing): 1 GiB of float32 and a 1/8 slice of it (a row range: a
//! contiguous 128 MiB window, and a column range: a strided view of the same size), against a
//! plain blocking `cuMemcpyDtoH` of the whole storage into page-locked memory, in the same run.
//!
//! `make bench-cuda`, or `cargo bench -p tensorbridge-candle --features cuda --bench d2h`.

use criterion::{criterion_group, criterion_main, Criterion};
#[cfg(feature = "cuda")]
use tensorbridge_core::{DType, Device, Tensor};
#[cfg(feature = "cuda")]
use tensorbridge_candle::Candle;

#[cfg(feature = "cuda")]
fn d2h(c: &mut Criterion) {
    use criterion::Throughput;
    use ndarray::{ArrayD, IxDyn};
    use tensorbridge_candle::transfer::PinnedHostBuffer;

    if let Err(e) = tensorbridge_candle::cuda_device_count() {
        eprintln!("d2h bench skipped: no CUDA device ({e})");
        return;
    }
    const ROWS: usize = 16384;
    const COLS: usize = 16384; // 16384 * 16384 * 4 B = 1 GiB
    let dev = Device::Cuda(0);
    let t = Tensor::<Candle>::arange(
        0.0.into(),
        ((ROWS * COLS) as f64).into(),
        1.0.into(),
        Some(DType::F32),
        &dev,
    )
    .and_then(|t| t.reshape(&[ROWS as isize, COLS as isize]))
    .expect("1 GiB float32 on cuda:0");
    let rows = t
        .slice(0, Some(0), Some((ROWS / 8) as isize), 1)
        .expect("row slice");
    let cols = t
        .slice(1, Some(0), Some((COLS / 8) as isize), 1)
        .expect("column slice");
    let bytes = (ROWS * COLS * 4) as u64;

    let mut g = c.benchmark_group("d2h");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let ctx = {
        let (s, _) = t.storage().candle().storage_and_layout();
        let candle_core::Storage::Cuda(s) = &*s else {
            unreachable!("on cuda:0")
        };
        s.device.cuda_stream().context().clone()
    };
    let mut pinned = PinnedHostBuffer::new(&ctx, bytes as usize).expect("1 GiB pinned");
    g.bench_function("pinned cuMemcpyDtoH 1 GiB (baseline)", |b| {
        b.iter(|| pinned.copy_storage_from(&t).expect("copy"))
    });
    let mut out = ArrayD::<f32>::zeros(IxDyn(&[ROWS, COLS]));
    g.bench_function("to_host_into 1 GiB f32", |b| {
        b.iter(|| t.to_host_into(&mut out.view_mut()).expect("d2h"))
    });
    g.bench_function("to_host_array 1 GiB f32 (allocates)", |b| {
        b.iter(|| t.to_host_array::<f32>().expect("d2h"))
    });
    g.throughput(Throughput::Bytes(bytes / 8));
    let mut part = ArrayD::<f32>::zeros(IxDyn(&[ROWS / 8, COLS]));
    g.bench_function("to_host_into 1/8 rows (contiguous view)", |b| {
        b.iter(|| rows.to_host_into(&mut part.view_mut()).expect("d2h"))
    });
    let mut part = ArrayD::<f32>::zeros(IxDyn(&[ROWS, COLS / 8]));
    g.bench_function("to_host_into 1/8 columns (strided view)", |b| {
        b.iter(|| cols.to_host_into(&mut part.view_mut()).expect("d2h"))
    });
    g.finish();
}

#[cfg(not(feature = "cuda"))]
fn d2h(_: &mut Criterion) {
    eprintln!("d2h bench skipped: built without the `cuda` feature (make bench-cuda)");
}

criterion_group!(benches, d2h);
criterion_main!(benches);
