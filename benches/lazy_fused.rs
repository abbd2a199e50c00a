//! Criterion bench of deferred execution: `((x * 2) + 1).sqrt()` on 64M float32 elements, in one
//! group so the ratios come from one run:
//!
//! - `eager_cpu`: the CPU backend, three ops, three passes over memory, two full-size temporaries;
//! - `lazy_cpu_fused`: `Lazy<Cpu>`, recorded then evaluated as one fused kernel (one pass, rayon
//!   over all cores, as the CPU backend's copy kernel does);
//! - `lazy_cpu_fused_1_thread`: the same fused kernel in a one-thread rayon pool, to separate
//!   the gain of fusion from the gain of parallelism;
//! - `lazy_cpu_unfused`: `Lazy<Cpu>` with fusion off (the backend's own three ops), the cost of
//!   recording and evaluating a graph without the optimisation.
//!
//! Every variant produces the result in fresh memory (page faults included, as for a real caller)
//! and drops it inside the timing. `synchronize()` is the evaluation point of the lazy tensors.
//!
//! Run: `make bench-lazy` (prints the ratios), or `cargo bench -p tensorbridge-lazy --bench lazy_fused`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensorbridge_core::{Backend, Device, Tensor};
use tensorbridge_cpu::Cpu;
use tensorbridge_lazy::{Lazy, LazyTensor, Session, SessionOptions};

const N: usize = 64 << 20;

fn chain<B: Backend>(x: &Tensor<B>) -> Tensor<B> {
    let doubled = (x * 2.0).expect("x * 2");
    (&doubled + 1.0).expect("+ 1").sqrt().expect("sqrt")
}

fn bench(c: &mut Criterion) {
    let data: Vec<f32> = (0..N).map(|i| (i % 1000) as f32 * 0.5).collect();
    let eager = Tensor::<Cpu>::from_slice(&data, &[N], &Device::Cpu).expect("input");
    drop(data);
    let lazy = Lazy::lift(&eager).expect("lift");
    // The same values either way (same element arithmetic).
    assert_eq!(
        chain(&eager).to_host_array::<f32>().expect("eager"),
        chain(&lazy).to_host_array::<f32>().expect("lazy")
    );
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool");
    let unfused = Session::<Cpu>::with_options(
        Device::Cpu,
        SessionOptions {
            fuse: false,
            cse: true,
        },
    );

    let mut g = c.benchmark_group("sqrt_x2_plus1_64M_f32");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12))
        .throughput(Throughput::Bytes((N * 4 * 2) as u64));
    g.bench_function("eager_cpu", |b| {
        b.iter(|| {
            let y = chain(&eager);
            y.synchronize().expect("sync");
            y
        })
    });
    g.bench_function("lazy_cpu_fused", |b| {
        b.iter(|| {
            let y = chain(&lazy);
            y.synchronize().expect("evaluate");
            y
        })
    });
    g.bench_function("lazy_cpu_fused_1_thread", |b| {
        b.iter(|| {
            one_thread.install(|| {
                let y = chain(&lazy);
                y.synchronize().expect("evaluate");
                y
            })
        })
    });
    g.bench_function("lazy_cpu_unfused", |b| {
        b.iter(|| chain(&lazy).eval(&unfused).expect("evaluate"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
