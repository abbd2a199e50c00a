//! A tch (libtorch) user's tensor into `ndarray`, requires-grad and bfloat16 included: what
//! `Vec::<f32>::try_from(&t)` and friends refuse or copy twice.
//!
//! Run: `cargo run -p tensorbridge --features torch --example tch_to_ndarray` (libtorch from the
//! `torch` wheel, see the README).

use tensorbridge::ndarray::ArrayD;
use tensorbridge::torch::tch::{Device, Kind, Tensor};
use tensorbridge::torch::{from_tch, to_tch};
use tensorbridge::DType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let w = Tensor::arange(12, (Kind::Float, Device::Cpu))
        .reshape([3, 4])
        .set_requires_grad(true);

    let t = from_tch(&w)?; // shares libtorch's memory, detached: no autograd error
    let a: ArrayD<f32> = t.t().to_host_array()?; // the transposed view, one pass
    println!("{a}");

    let h = from_tch(&w.detach().to_kind(Kind::BFloat16))?; // bf16 is BFloat16, never Half
    let as_f32 = h.to_host_as(DType::F32)?.into_typed::<f32>()?; // cast fused into the copy
    println!("{as_f32}");

    let back = to_tch(&t)?; // a view of the same memory for libtorch
    assert_eq!(back.size(), [3, 4]);
    Ok(())
}
