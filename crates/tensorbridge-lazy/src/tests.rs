//! Unit tests of the lazy backend's own behaviour: deferral, the session, fusion, CSE, printing.
//! (Values of every op, dtype and layout are the conformance suite's job.)

use tensorbridge_core::{Backend, DType, Device, Error, Layout, Tensor, UnaryOp};
use tensorbridge_cpu::Cpu;

use super::*;

type L = Lazy<Cpu>;

fn lazy_f32(data: &[f32], shape: &[usize]) -> Tensor<L> {
    Tensor::<L>::from_slice(data, shape, &Device::Cpu).unwrap()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect()
}

#[test]
fn nothing_is_computed_until_a_value_is_needed() {
    let x = lazy_f32(&[1.0, 4.0, 9.0], &[3]);
    let y = (&(&x * 2.0).unwrap() + 1.0).unwrap().sqrt().unwrap();
    assert!(x.is_evaluated(), "a source is data");
    assert!(!y.is_evaluated());
    assert_eq!(y.shape(), &[3]);
    assert_eq!(y.dtype(), DType::F32);
    let _ = y.graph();
    assert!(!y.is_evaluated(), "printing the graph computes nothing");
    let h = y.to_host_array::<f32>().unwrap();
    assert!(y.is_evaluated(), "to_host evaluates implicitly");
    assert_eq!(h.as_slice().unwrap(), &[3f32.sqrt(), 3.0, 19f32.sqrt()]);
}

#[test]
fn an_elementwise_chain_with_scalars_is_one_fused_kernel() {
    let x = lazy_f32(&ramp(10_000), &[100, 100]);
    let y = (&(&x * 2.0).unwrap() + 1.0)
        .unwrap()
        .abs()
        .unwrap()
        .sqrt()
        .unwrap();
    let s = Session::<Cpu>::new(Device::Cpu);
    let v = y.eval(&s).unwrap();
    let st = s.last_run_stats();
    assert_eq!(
        (st.kernels, st.fused_kernels, st.fused_ops),
        (1, 1, 4),
        "{st:?}"
    );
    let eager = Tensor::<Cpu>::from_slice(&ramp(10_000), &[100, 100], &Device::Cpu).unwrap();
    let want = (&(&eager * 2.0).unwrap() + 1.0)
        .unwrap()
        .abs()
        .unwrap()
        .sqrt()
        .unwrap();
    assert_eq!(
        v.to_host_array::<f32>().unwrap(),
        want.to_host_array::<f32>().unwrap()
    );
}

#[test]
fn fusion_off_runs_each_op_with_the_backend_and_gives_the_same_values() {
    let positive: Vec<f32> = ramp(1000).iter().map(|v| v.abs()).collect();
    let x = lazy_f32(&positive, &[1000]);
    let y = (&(&x * 2.0).unwrap() + 1.0).unwrap().sqrt().unwrap();
    let off = SessionOptions {
        fuse: false,
        cse: true,
    };
    let s = Session::<Cpu>::with_options(Device::Cpu, off);
    let unfused = y.eval(&s).unwrap();
    // full(2), mul, full(1), add, sqrt
    assert_eq!(s.last_run_stats().kernels, 5);
    assert_eq!(s.last_run_stats().fused_kernels, 0);
    let again = (&(&x * 2.0).unwrap() + 1.0).unwrap().sqrt().unwrap();
    let fused = again.to_host_array::<f32>().unwrap();
    assert_eq!(unfused.to_host_array::<f32>().unwrap(), fused);
}

#[test]
fn a_subgraph_shared_by_two_fetches_is_computed_once() {
    let x = lazy_f32(&ramp(5000), &[5000]);
    let shared = (&x * 2.0).unwrap().exp().unwrap();
    let a = (&shared + 1.0).unwrap();
    let b = (&shared - 1.0).unwrap();
    let s = Session::<Cpu>::new(Device::Cpu);
    let out = s.run(&[&a, &b]).unwrap();
    // shared (mul+exp) once, then a and b: three fused kernels, not four.
    let st = s.last_run_stats();
    assert_eq!((st.kernels, st.fused_kernels), (3, 3), "{st:?}");
    assert!(a.is_evaluated() && b.is_evaluated());
    assert!(!shared.is_evaluated(), "intermediates are not kept");
    let sh = shared.to_host_array::<f32>().unwrap();
    assert_eq!(out[0].to_host_array::<f32>().unwrap(), sh.mapv(|v| v + 1.0));
    assert_eq!(out[1].to_host_array::<f32>().unwrap(), sh.mapv(|v| v - 1.0));
}

#[test]
fn identical_subexpressions_built_twice_are_computed_once() {
    let x = lazy_f32(&ramp(100), &[100]);
    let a = (&(&x * 2.0).unwrap() + 1.0).unwrap();
    let b = (&(&x * 2.0).unwrap() + 1.0).unwrap();
    let s = Session::<Cpu>::new(Device::Cpu);
    let out = s.run(&[&a, &b]).unwrap();
    let st = s.last_run_stats();
    // full(2), mul, full(1), add of `b` are those of `a`.
    assert_eq!((st.cse_merged, st.kernels), (4, 1), "{st:?}");
    assert_eq!(
        out[0].to_host_array::<f32>().unwrap(),
        out[1].to_host_array::<f32>().unwrap()
    );
    let no_cse = Session::<Cpu>::with_options(
        Device::Cpu,
        SessionOptions {
            fuse: true,
            cse: false,
        },
    );
    let c = (&(&x * 2.0).unwrap() + 1.0).unwrap();
    let d = (&(&x * 2.0).unwrap() + 1.0).unwrap();
    no_cse.run(&[&c, &d]).unwrap();
    assert_eq!(no_cse.last_run_stats().kernels, 2);
    // Different scalars are different expressions; 0.0 and -0.0 too.
    let e = (&x + 0.0).unwrap();
    let f = (&x + (-0.0)).unwrap();
    s.run(&[&e, &f]).unwrap();
    assert_eq!(s.last_run_stats().cse_merged, 0);
}

#[test]
fn broadcasts_views_casts_and_comparisons_fuse_and_match_the_eager_backend() {
    let n: i32 = 300 * 50;
    let ints: Vec<i32> = (0..n).map(|i| (i * 7919) % 1000 - 500).collect();
    let row: Vec<f64> = (0..300).map(|i| i as f64 * 0.5 - 10.0).collect();
    fn chain<B: Backend>(ints: &[i32], row: &[f64]) -> Vec<Tensor<B>> {
        let a = Tensor::<B>::from_slice(ints, &[300, 50], &Device::Cpu).unwrap();
        let r = Tensor::<B>::from_slice(row, &[300, 1], &Device::Cpu).unwrap();
        // A transposed, step-sliced int view (gathered across chunk boundaries), promoted to
        // f64 against a broadcast column, then compared.
        let v = a.slice(0, None, None, -1).unwrap().t();
        let w = (&a.cast(DType::F64).unwrap() / &r).unwrap(); // int / f64 column
        let x = (&(&v.t() * 3i64).unwrap() - 7i64).unwrap().abs().unwrap();
        let y = (&w + &x).unwrap();
        let z = y.gt_scalar(0.5f64).unwrap();
        let q = (&y.neg().unwrap() * 0.25f64)
            .unwrap()
            .cast(DType::F16)
            .unwrap();
        vec![v.contiguous().unwrap(), w, x, y, z, q]
    }
    let lazy = chain::<L>(&ints, &row);
    let eager = chain::<Cpu>(&ints, &row);
    for (i, (l, e)) in lazy.iter().zip(&eager).enumerate() {
        assert_eq!(l.dtype(), e.dtype(), "result {i}");
        assert_eq!(l.to_host().unwrap(), e.to_host().unwrap(), "result {i}");
    }
}

#[test]
fn an_evaluated_result_is_read_in_place() {
    let x = lazy_f32(&ramp(64), &[8, 8]);
    let y = (&x * 3.0).unwrap();
    let s = Session::<Cpu>::new(Device::Cpu);
    let v = y.eval(&s).unwrap();
    let hv = y.host_view::<f32>().unwrap();
    assert_eq!(hv.as_ptr(), v.storage().as_slice::<f32>().unwrap().as_ptr());
    // Evaluating again computes nothing.
    y.eval(&s).unwrap();
    assert_eq!(s.last_run_stats().kernels, 0);
}

#[test]
fn a_session_for_another_device_refuses_the_fetch() {
    let x = lazy_f32(&[1.0], &[1]);
    let y = (&x + 1.0).unwrap();
    let s = Session::<Cpu>::new(Device::Cuda(0));
    let e = y.eval(&s).unwrap_err().to_string();
    assert!(
        e.contains("evaluates on cuda:0") && e.contains("on cpu"),
        "{e}"
    );
    assert!(!y.is_evaluated());
}

#[test]
fn invalid_ops_fail_when_recorded_not_when_evaluated() {
    let e = Tensor::<L>::zeros(&[2], DType::F32, &Device::Cuda(0)).unwrap_err();
    assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
    let i = Tensor::<L>::from_slice(&[1i32, 2], &[2], &Device::Cpu).unwrap();
    let e = i
        .storage()
        .unary(&Layout::contiguous(&[2]), UnaryOp::Exp)
        .err()
        .unwrap();
    assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");
    // Operands of different dtypes never reach the trait: the core promotes them first (the
    // backend contract is checked once, in `Tensor`), and the promoted op records fine.
    let f = lazy_f32(&[1.0, 2.0], &[2]);
    let sum = (&f + &i).unwrap();
    assert_eq!(sum.dtype(), DType::F64);
    assert!(!sum.is_evaluated());
}

#[test]
fn a_very_long_chain_evaluates_and_drops_without_overflowing_the_stack() {
    let x = lazy_f32(&[0.0; 16], &[16]);
    let mut y = x.clone();
    for _ in 0..20_000 {
        y = (&y + 1.0).unwrap();
    }
    let s = Session::<Cpu>::new(Device::Cpu);
    let v = y.eval(&s).unwrap();
    assert!(v
        .to_host_array::<f32>()
        .unwrap()
        .iter()
        .all(|&e| e == 20_000.0));
    // Chains are cut into fused kernels of bounded length, and each cut's value is dropped once
    // the next kernel has read it.
    let st = s.last_run_stats();
    assert!(st.fused_kernels > 1, "{st:?}");
    assert!(st.peak_live_values <= 2, "{st:?}");
    let deep = (0..100_000).fold(x, |t, _| (&t * 1.0).unwrap());
    drop(deep);
}

#[test]
fn graph_text_and_dot_name_the_ops_scalars_and_views() {
    let x = lazy_f32(&[1.0, 2.0, 3.0], &[3]);
    let y = (&(&x * 2.0).unwrap() + 1.0).unwrap().sqrt().unwrap();
    let g = y.graph();
    assert!(g.contains("%0 = input -> float32[3]  [evaluated]"), "{g}");
    assert!(g.contains("full(2.0) -> float32[1]"), "{g}");
    assert!(
        g.contains("mul(%0, %1.broadcast([3])) -> float32[3]"),
        "{g}"
    );
    assert!(g.contains("sqrt(%"), "{g}");
    assert!(g.ends_with("result: %5"), "{g}");
    assert_eq!(y.expression(), "sqrt(add(mul(input, 2.0), 1.0))");
    let dot = y.graph_dot();
    assert!(
        dot.starts_with("digraph tensorbridge {") && dot.contains("n0 -> n2"),
        "{dot}"
    );
    let sliced = y.slice(0, Some(1), None, 1).unwrap();
    assert!(
        sliced
            .graph()
            .ends_with("result: %5.view(shape=[2], strides=[1], offset=1)"),
        "{}",
        sliced.graph()
    );
}

#[test]
fn into_host_array_of_a_unique_evaluated_tensor_gives_its_values() {
    let x = lazy_f32(&ramp(10), &[10]);
    let y = (&x * 2.0).unwrap();
    let a = y.into_host_array::<f32>().unwrap();
    assert_eq!(
        a.as_slice().unwrap(),
        ramp(10)
            .iter()
            .map(|v| v * 2.0)
            .collect::<Vec<_>>()
            .as_slice()
    );
}

#[test]
fn lift_shares_the_eager_tensors_storage() {
    let e = Tensor::<Cpu>::from_slice(&[1.0f64, 2.0, 3.0, 4.0], &[2, 2], &Device::Cpu).unwrap();
    let l = Lazy::lift(&e.t()).unwrap();
    assert_eq!(
        l.host_view::<f64>().unwrap().as_ptr(),
        e.storage().as_slice::<f64>().unwrap().as_ptr()
    );
    let y = (&l + 1.0).unwrap();
    assert_eq!(
        y.to_host_array::<f64>().unwrap().as_slice().unwrap(),
        &[2.0, 4.0, 3.0, 5.0]
    );
}
