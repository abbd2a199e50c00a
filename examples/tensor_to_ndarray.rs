//! The seed walkthrough in Rust: a tensor into an `ndarray` host array, one contract on every backend.
//!
//! Run: `cargo run -p tensorbridge --example tensor_to_ndarray`.

use std::any::type_name;

use tensorbridge::ndarray::{arr2, ArrayD};
use tensorbridge::{Cpu, DType, Device, Tensor};

/// The Rust type of a host array, the way Python prints `type(a)` and `a.dtype`.
fn type_of<T>(a: &ArrayD<T>) -> String {
    format!(
        "ndarray::ArrayD<{}>, shape {:?}",
        type_name::<T>(),
        a.shape()
    )
}

fn main() -> Result<(), tensorbridge::Error> {
    // A constant tensor, like tf.constant([[1, 2], [4, 8]]) (int64, as NumPy would infer).
    let t = Tensor::<Cpu>::from_array(&arr2(&[[1i64, 2], [4, 8]]), &Device::Cpu)?;
    println!("{t:?}");

    // The product: the tensor's values as a host array. Typed, so asking for the wrong element
    // type is an error rather than a silent cast (use `cast` or `to_host_as` for that).
    let a = t.to_host_array::<i64>()?;
    println!("{a}");
    println!("{}", type_of(&a));

    // Ops stay tensors ...
    let t2 = (&t * 2i64)?;
    println!("{t2:?}\n{}", t2.to_host_array::<i64>()?);

    // ... and once on the host, it is plain ndarray arithmetic.
    let host = t2.to_host_array::<i64>()?;
    let b = &host + 1;
    println!("{b}");
    println!("{}", type_of(&b));

    // Conversions are explicit and fused into the copy: bf16 → f32 in one pass.
    let h = Tensor::<Cpu>::from_slice(&[0.5f32, 1.5], &[2], &Device::Cpu)?.cast(DType::BF16)?;
    println!(
        "{} → {}",
        h.dtype(),
        h.to_host_as(DType::F32)?.into_typed::<f32>()?
    );

    // Device tensors: on a GPU backend, to_host_array makes exactly one explicit device → host
    // copy of the view's own elements. A device that does not exist is a clear error, never a hang.
    println!(
        "device tensors: to_host_array copies device → host explicitly; a missing device is an error:"
    );
    match Tensor::<Cpu>::zeros(&[2, 2], DType::F32, &Device::Cuda(0)) {
        Ok(t) => println!("  {t:?}"),
        Err(e) => println!("  {e}"),
    }
    Ok(())
}
