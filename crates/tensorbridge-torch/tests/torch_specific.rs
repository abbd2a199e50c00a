//! What the shared conformance suite cannot see: libtorch specifics (kind mapping, bf16 bits,
//! CUDA loading, zero-copy reads, borrowed-memory lifetimes, autograd).

use std::sync::Arc;

use half::bf16;
use tch::Kind;
use tensorbridge_core::{Backend, DType, Device, Error, Tensor};
use tensorbridge_torch::{cuda, from_tch, storage_kind, to_tch, Torch};

#[test]
fn bf16_round_trips_bit_exactly_in_both_directions() {
    // Every bf16 bit pattern, NaN payloads and subnormals included.
    let all: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
    let t = Tensor::<Torch>::from_slice(&all, &[all.len()], &Device::Cpu).unwrap();
    assert_eq!(t.storage().tch_tensor().kind(), Kind::BFloat16);
    let back = t.to_host_array::<bf16>().unwrap();
    let bits: Vec<u16> = back.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, (0..=u16::MAX).collect::<Vec<_>>());

    // tch -> tensorbridge: a libtorch BFloat16 tensor keeps its values (tch's own Element mapping
    // would read it as Half).
    let src = tch::Tensor::from_slice(&[1.0f32, -2.5, 3.0e38, 1.0e-39]).to_kind(Kind::BFloat16);
    let t = from_tch(&src).unwrap();
    assert_eq!(t.dtype(), DType::BF16);
    let got = t.to_host_array::<bf16>().unwrap();
    let want: Vec<bf16> = [1.0f32, -2.5, 3.0e38, 1.0e-39]
        .iter()
        .map(|&v| bf16::from_f32(v))
        .collect();
    assert_eq!(got.as_slice().unwrap(), want.as_slice());
    // ... and back to tch as BFloat16, same bits.
    let again = to_tch(&t).unwrap();
    assert_eq!(again.kind(), Kind::BFloat16);
    let diff = (&again.to_kind(Kind::Float) - &src.to_kind(Kind::Float))
        .abs()
        .max();
    assert_eq!(diff.double_value(&[]), 0.0);
}

#[test]
fn every_dtype_has_a_storage_kind_of_the_same_width() {
    for d in DType::ALL {
        let t = Tensor::<Torch>::zeros(&[3], d, &Device::Cpu).unwrap();
        let k = t.storage().tch_tensor().kind();
        assert_eq!(k, storage_kind(d));
        assert_eq!(k.elt_size_in_bytes(), d.size_in_bytes(), "{d}");
    }
}

#[test]
fn contiguous_cpu_storage_is_read_in_place() {
    let t = Tensor::<Torch>::arange(0i64.into(), 1000i64.into(), 1i64.into(), None, &Device::Cpu)
        .unwrap();
    let bytes = t
        .storage()
        .host_bytes()
        .expect("cpu storage is host memory");
    assert_eq!(bytes.as_ptr(), t.storage().data_ptr());
    assert_eq!(bytes.len(), 8000);
    let view = t.host_view::<i64>().unwrap();
    assert_eq!(view.as_ptr() as *const u8, t.storage().data_ptr());
    assert_eq!(view[[999]], 999);
}

#[test]
fn a_view_of_borrowed_host_memory_keeps_it_alive_after_the_source_drops() {
    // i64 -> u64 is a reinterpretation in libtorch (same kind): the result aliases the input's
    // borrowed host array, which must outlive the input.
    let vals: Vec<i64> = (0..4096).map(|i| -i).collect();
    let t = Tensor::<Torch>::from_slice(&vals, &[4096], &Device::Cpu).unwrap();
    let u = t.cast(DType::U64).unwrap();
    let abs_view = u.abs().unwrap();
    drop(t);
    // Allocate and fill memory that would reuse the freed block.
    let noise: Vec<Vec<u8>> = (0..64).map(|_| vec![0xAB; 32768]).collect();
    let got = abs_view.to_host_array::<u64>().unwrap();
    drop(noise);
    for (i, &g) in got.iter().enumerate() {
        assert_eq!(g, (-(i as i64)) as u64);
    }
}

#[test]
fn from_raw_reads_caller_memory_in_place_and_holds_its_owner() {
    let data: Arc<Vec<f32>> = Arc::new((0..16).map(|i| i as f32).collect());
    let ptr = data.as_ptr() as *const u8;
    // SAFETY: 16 aligned f32s, alive and unmodified while the Arc (the owner) lives.
    let s = unsafe { Torch::from_raw(ptr, 16, DType::F32, &Device::Cpu, data.clone()) }.unwrap();
    assert_eq!(Arc::strong_count(&data), 2);
    assert_eq!(s.data_ptr(), ptr);
    let t =
        Tensor::from_storage(Arc::new(s), tensorbridge_core::Layout::contiguous(&[4, 4])).unwrap();
    let tt = t.t().to_host_array::<f32>().unwrap();
    assert_eq!(tt[[1, 0]], 1.0);
    assert_eq!(tt[[0, 1]], 4.0);
    drop(t);
    assert_eq!(Arc::strong_count(&data), 1);
}

#[test]
fn unaligned_or_odd_sized_requests_are_refused_before_memory_is_touched() {
    let t = Tensor::<Torch>::zeros(&[2, 3], DType::F32, &Device::Cpu).unwrap();
    let mut wrong = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[3, 2]));
    let e = t.to_host_into(&mut wrong.view_mut()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(matches!(
        t.to_host_array::<f64>(),
        Err(Error::DTypeMismatch { .. })
    ));
}

#[test]
fn tensors_that_require_grad_are_taken_detached() {
    let src = tch::Tensor::from_slice(&[1.0f64, 2.0, 3.0]).set_requires_grad(true);
    let y = &src * 2.0;
    assert!(y.requires_grad());
    let t = from_tch(&y).unwrap();
    assert!(!t.storage().tch_tensor().requires_grad());
    assert_eq!(
        t.to_host_array::<f64>().unwrap().as_slice().unwrap(),
        &[2.0, 4.0, 6.0]
    );
}

#[test]
fn libtorch_cuda_is_loaded_when_a_cuda_device_is_requested() {
    // tch links libtorch_cuda --as-needed, so it is dropped (tch #907/#980); we load it.
    let r = Tensor::<Torch>::zeros(&[2], DType::F32, &Device::Cuda(0));
    cuda::load_libtorch_cuda().expect("the PyPI torch wheel ships libtorch_cuda.so");
    assert!(cuda::libtorch_cuda_loaded());
    if cuda::device_count() == 0 {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
        assert!(e.to_string().contains("cuda:0"), "{e}");
        assert!(!cuda::is_available());
    } else {
        assert!(cuda::is_available());
        assert_eq!(r.unwrap().device(), Device::Cuda(0));
    }
}

#[test]
fn a_cuda_ordinal_beyond_the_visible_devices_is_device_unavailable() {
    let n = cuda::device_count();
    let e = Tensor::<Torch>::zeros(&[2], DType::F32, &Device::Cuda(n + 7)).unwrap_err();
    assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
    assert!(e.to_string().contains(&format!("cuda:{}", n + 7)), "{e}");
}

#[test]
fn unsigned_dtypes_compare_and_reduce_with_unsigned_order() {
    let v = [u64::MAX, 1, 1 << 63, 0];
    let t = Tensor::<Torch>::from_slice(&v, &[4], &Device::Cpu).unwrap();
    let max = t.max(None, false).unwrap().to_host_array::<u64>().unwrap();
    assert_eq!(max.iter().copied().collect::<Vec<_>>(), vec![u64::MAX]);
    let gt = t
        .gt_scalar(1u64 << 62)
        .unwrap()
        .to_host_array::<bool>()
        .unwrap();
    assert_eq!(gt.as_slice().unwrap(), &[true, false, true, false]);
    let f = t.cast(DType::F64).unwrap().to_host_array::<f64>().unwrap();
    assert_eq!(
        f.as_slice().unwrap(),
        &[u64::MAX as f64, 1.0, (1u64 << 63) as f64, 0.0]
    );
}

#[cfg(test)]
mod gpu {
    //! Run only where libtorch sees a GPU (the GPU check script); skipped with the reason otherwise.
    use super::*;
    use tensorbridge_conformance as conf;

    const NEEDS_GPU: &str = "needs a CUDA GPU; scripts/gpu-check runs these with --include-ignored";

    fn gpu() -> Option<Device> {
        // Only reached with --include-ignored: on a machine without a GPU that is a setup error.
        assert!(
            cuda::device_count() > 0,
            "{NEEDS_GPU}: no CUDA device visible to libtorch"
        );
        Some(Device::Cuda(0))
    }

    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check runs it with --include-ignored"]
    fn cuda_conformance_suite_where_a_gpu_exists() {
        let Some(d) = gpu() else { return };
        conf::check_creation::<Torch>(&d);
        conf::check_views::<Torch>(&d);
        conf::check_cast::<Torch>(&d);
        conf::check_binary::<Torch>(&d);
        conf::check_scalar_arithmetic::<Torch>(&d);
        conf::check_unary::<Torch>(&d);
        conf::check_compare::<Torch>(&d);
        conf::check_matmul::<Torch>(&d);
        conf::check_reductions::<Torch>(&d);
        conf::check_host_transfers::<Torch>(&d);
        conf::check_errors::<Torch>(&d);
        conf::check_numpy_edge_cases::<Torch>(&d);
    }

    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check runs it with --include-ignored"]
    fn cuda_view_transfers_only_its_elements() {
        let Some(d) = gpu() else { return };
        let t = Tensor::<Torch>::arange(0i64.into(), 4096i64.into(), 1i64.into(), None, &d)
            .unwrap()
            .reshape(&[64, 64])
            .unwrap();
        let s = t.slice(0, Some(8), Some(16), 1).unwrap().t();
        let h = s.to_host_array::<i64>().unwrap();
        assert_eq!(h.shape(), &[64, 8]);
        assert_eq!(h[[3, 2]], (10 * 64 + 3) as i64);
        assert!(t.storage().host_bytes().is_none());
    }
}
