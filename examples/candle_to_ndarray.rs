//! A candle user's tensor into `ndarray`: share candle's storage, take any view, convert once.
//!
//! Run: `cargo run -p tensorbridge --features candle --example candle_to_ndarray`.

use tensorbridge::candle::candle_core::{Device, Tensor};
use tensorbridge::candle::{from_candle, to_candle};
use tensorbridge::ndarray::ArrayD;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Activations as a candle model would produce them (here on candle's CPU device; a
    // `Device::new_cuda(0)?` tensor works the same and is copied device → host once).
    let x = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((3, 4))?;

    let t = from_candle(&x)?; // shares candle's storage, no copy
    let all: ArrayD<f32> = t.to_host_array()?; // one copy into ndarray
    let cols: ArrayD<f32> = t.t().slice(0, Some(1), None, 2)?.to_host_array()?; // only the view's elements
    println!("{all}\n{cols}");

    let back = to_candle(&t)?; // and back to candle, the same storage
    assert_eq!(back.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
    Ok(())
}
