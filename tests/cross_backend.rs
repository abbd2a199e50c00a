//! Cross-backend contract: the same inputs, built through [`AnyTensor`] on every registered
//! backend, give the same host arrays (dtype, shape and values), checked against expectations
//! computed with `ndarray`. Mixing backends or devices in one op is an error that tells the user
//! to move a tensor with `.to(...)`, never a silent copy.
//!
//! With only the CPU backend compiled, every assertion still runs against the `ndarray`
//! expectations; every further backend joins by being registered (`tensorbridge::registry`): each
//! runs on the CPU device, and on `cuda:0` too where it has CUDA devices and a GPU is usable.

use half::bf16;
use tensorbridge::ndarray::{arr1, arr2, Array, ArrayD, ArrayViewMutD, IxDyn, ShapeBuilder};
use tensorbridge::registry::{self, BackendEntry};
use tensorbridge::{
    AnyTensor, Backend, BinaryOp, CmpOp, Cpu, DType, Device, DeviceKind, DeviceMemory, Element,
    Error, ExternalMemory, HostArray, Layout, ReduceOp, Result, Scalar, Tensor, UnaryOp,
};

type Kind = &'static BackendEntry;

/// Every registered backend on the CPU device, and on `cuda:0` where it works.
fn placements() -> Vec<(Kind, Device)> {
    registry::init();
    let mut out = Vec::new();
    for b in registry::backends() {
        out.push((b, Device::Cpu));
        let gpu = Device::Cuda(0);
        if b.accepts(DeviceKind::Cuda) && b.full(&[1], Scalar::Int(0), None, &gpu).is_ok() {
            out.push((b, gpu));
        }
    }
    out
}

fn on(kind: Kind, device: &Device, data: impl Into<HostArray>) -> AnyTensor {
    AnyTensor::from_host(kind, data.into(), device)
        .unwrap_or_else(|e| panic!("{}:{device}: from_host failed: {e}", kind.name()))
}

#[cfg(feature = "torch")]
fn named(name: &str) -> Kind {
    registry::init();
    registry::find(name).unwrap()
}

fn host(t: Result<AnyTensor>) -> Result<HostArray> {
    t.and_then(|t| t.to_host())
}

#[test]
fn every_backend_gives_the_same_host_arrays_for_ops_and_views() {
    let ints = arr2(&[[1i64, 2], [4, 8]]).into_dyn();
    let grid = Array::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 - 5.5).into_dyn();
    let row = arr1(&[0.5f32, -1.0, 2.0, 4.0]).into_dyn();
    let cube = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as i32).into_dyn();
    let lhs = arr2(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let rhs = arr2(&[[1.0f32, 0.5], [-1.0, 2.0], [0.0, 3.0]]);

    for (kind, device) in placements() {
        let t = on(kind, &device, ints.clone());
        let g = on(kind, &device, grid.clone());
        let r = on(kind, &device, row.clone());
        let c = on(kind, &device, cube.clone());
        let (a, b) = (
            on(kind, &device, lhs.clone().into_dyn()),
            on(kind, &device, rhs.clone().into_dyn()),
        );
        let cases: Vec<(&str, Result<HostArray>, HostArray)> = vec![
            ("round trip int64", t.to_host(), ints.clone().into()),
            (
                "multiply by a weak scalar keeps int64",
                host(t.mul_scalar(Scalar::Int(2))),
                (&ints * 2).into(),
            ),
            (
                "true division of int64 gives float64",
                host(t.div_scalar(Scalar::Int(2))),
                ints.mapv(|v| v as f64 / 2.0).into(),
            ),
            (
                "transposed view",
                t.t().to_host(),
                ints.t().as_standard_layout().into_owned().into(),
            ),
            (
                "negative-step slice view",
                host(g.slice(1, None, None, -2)),
                Array::from_shape_fn((3, 2), |(i, j)| grid[[i, 3 - 2 * j]])
                    .into_dyn()
                    .into(),
            ),
            (
                "permuted 3-d view",
                host(c.permute(&[2, 0, 1])),
                cube.clone()
                    .permuted_axes(IxDyn(&[2, 0, 1]))
                    .as_standard_layout()
                    .into_owned()
                    .into(),
            ),
            (
                "broadcast add of a row",
                host(g.add(&r)),
                (&grid + &row).into(),
            ),
            (
                "sum over an axis of int64",
                host(t.sum(Some(0), false)),
                arr1(&[5i64, 10]).into_dyn().into(),
            ),
            (
                "mean of everything is a 0-d float64",
                host(t.mean(None, false)),
                ArrayD::from_elem(IxDyn(&[]), 3.75f64).into(),
            ),
            (
                "matmul",
                host(a.matmul(&b)),
                lhs.dot(&rhs).into_dyn().into(),
            ),
            (
                "comparison gives bool",
                host(g.gt_scalar(Scalar::Float(0.0))),
                grid.mapv(|v| v > 0.0).into(),
            ),
            (
                "bf16 storage read back as f32 in one pass",
                g.cast(DType::BF16).and_then(|h| h.to_host_as(DType::F32)),
                grid.mapv(|v| bf16::from_f32(v).to_f32()).into(),
            ),
            (
                "zero-size slice keeps its shape",
                host(g.slice(0, Some(1), Some(1), 1)),
                ArrayD::<f32>::zeros(IxDyn(&[0, 4])).into(),
            ),
        ];
        for (name, got, want) in cases {
            let got = got.unwrap_or_else(|e| panic!("{kind}:{device}: {name}: {e}"));
            assert_eq!(got.dtype(), want.dtype(), "{kind}:{device}: {name}: dtype");
            assert_eq!(got.shape(), want.shape(), "{kind}:{device}: {name}: shape");
            assert_eq!(got, want, "{kind}:{device}: {name}: values");
        }

        // A caller's buffer in Fortran order receives the same values as a fresh array.
        let mut out = Array::<f64, _>::zeros((4, 3).f()).into_dyn();
        let mut view: ArrayViewMutD<'_, f64> = out.view_mut();
        g.t().to_host_into(&mut view).unwrap();
        assert_eq!(
            out,
            grid.t().mapv(f64::from),
            "{kind}:{device}: to_host_into"
        );

        // Typed reads never cast behind the user's back.
        let e = t.to_host().unwrap().into_typed::<f32>().unwrap_err();
        assert!(matches!(e, Error::DTypeMismatch { .. }), "{kind}: {e}");
    }
}

/// Asserts that `r` is a backend/device mismatch whose message tells the user to move a tensor.
#[test]
fn reductions_over_several_axes_match_ndarray_on_every_backend() {
    // NumPy's `a.sum(axis=(0, 2))` of a 2 × 3 × 4 cube: one reduction over the merged axes.
    let cube = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as i32).into_dyn();
    let sum_02 = arr1(&[60i64, 92, 124]).into_dyn();
    let max_21 = arr2(&[[11i32], [23]]).into_dyn();
    for (kind, device) in placements() {
        let ctx = format!("{}:{device}", kind.name());
        let t = on(kind, &device, cube.clone());
        let got = host(t.reduce_axes(ReduceOp::Sum, &[2, 0], false)).unwrap();
        assert_eq!(got, HostArray::from(sum_02.clone()), "{ctx} sum (2, 0)");
        let got = host(
            t.reduce_axes(ReduceOp::Max, &[-1, 1], true)
                .and_then(|r| r.reshape(&[2, 1])),
        );
        assert_eq!(
            got.unwrap(),
            HostArray::from(max_21.clone()),
            "{ctx} max (-1, 1)"
        );
        // All axes: the whole-tensor reduction; keepdim gives 1 × 1 × 1.
        let all = t.reduce_axes(ReduceOp::Sum, &[0, 1, 2], true).unwrap();
        assert_eq!(all.shape(), &[1, 1, 1], "{ctx}");
        assert_eq!(
            host(all.reshape(&[])).unwrap(),
            HostArray::from(arr0_i64(276)),
            "{ctx}"
        );
        // No axes: nothing reduced, in the reduction's dtype (i32 sums to i64).
        let none = t.reduce_axes(ReduceOp::Sum, &[], false).unwrap();
        assert_eq!(
            (none.shape(), none.dtype()),
            (&[2usize, 3, 4][..], DType::I64),
            "{ctx}"
        );
        assert!(
            matches!(
                t.reduce_axes(ReduceOp::Sum, &[0, -3], false),
                Err(Error::InvalidArgument(m)) if m.contains("duplicate value in 'axis'")
            ),
            "{ctx}"
        );
        assert!(
            matches!(
                t.reduce_axes(ReduceOp::Min, &[0, 3], false),
                Err(Error::AxisOutOfRange {
                    axis: 3,
                    ndim: 3,
                    ..
                })
            ),
            "{ctx}"
        );
    }
}

fn arr0_i64(v: i64) -> ArrayD<i64> {
    tensorbridge::ndarray::arr0(v).into_dyn()
}

fn assert_mismatch<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    let e = r.expect_err(what);
    assert!(
        matches!(e, Error::BackendMismatch { .. }),
        "{what}: expected BackendMismatch, got {e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(".to("),
        "{what}: message should name .to(: {msg}"
    );
}

#[test]
fn mixing_compiled_backends_is_an_error_that_names_to() {
    let ps = placements();
    for (ka, da) in &ps {
        for (kb, db) in &ps {
            let x = on(ka, da, arr1(&[1.0f32, 2.0]).into_dyn());
            let y = on(kb, db, arr1(&[3.0f32, 4.0]).into_dyn());
            if std::ptr::eq(*ka, *kb) && da == db {
                assert!(x.add(&y).is_ok(), "{ka}:{da} with itself");
                continue;
            }
            let what = format!("{ka}:{da} + {kb}:{db}");
            assert_mismatch(&what, x.add(&y));
            assert_mismatch(&what, x.matmul(&y));
            assert_mismatch(&what, x.eq(&y));
            // Moving one side explicitly is the way out.
            let moved = y.to(ka, da).unwrap();
            assert!(x.add(&moved).is_ok(), "{what} after .to()");
        }
    }
}

#[test]
fn asking_a_backend_for_a_device_it_lacks_is_a_clear_error() {
    for (kind, device) in placements() {
        let t = on(kind, &device, arr1(&[1i64, 2]).into_dyn());
        let missing = Device::Cuda(7);
        let e = t.to(kind, &missing).unwrap_err();
        assert!(
            matches!(e, Error::DeviceUnavailable(_)),
            "{kind}: moving to {missing}: {e:?}"
        );
        assert!(e.to_string().contains("cuda:7"), "{kind}: {e}");
    }
}

/// Ops between tensors of one backend on two devices. No compiled backend has two devices on
/// this machine, so this backend is the CPU backend's storage reporting whichever device it was
/// created for: the core's device check is what is under test.
#[test]
fn mixing_devices_of_one_backend_is_an_error_that_names_to() {
    let dev0 = Device::Cuda(0);
    let x = Tensor::<Placed>::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], &dev0).unwrap();
    let y =
        Tensor::<Placed>::from_slice(&[1.0f32, 0.0, 0.0, 1.0], &[2, 2], &Device::Cuda(1)).unwrap();
    assert_mismatch("add", x.add(&y));
    assert_mismatch("div", x.div(&y));
    assert_mismatch("matmul", x.matmul(&y));
    assert_mismatch("lt", x.lt(&y));
    let msg = x.mul(&y).unwrap_err().to_string();
    assert!(msg.contains("cuda:0") && msg.contains("cuda:1"), "{msg}");

    // The explicit move: through the host onto the other tensor's device.
    let y0 = Tensor::<Placed>::from_host(y.to_host().unwrap(), &dev0).unwrap();
    let product = x.matmul(&y0).unwrap().to_host_array::<f32>().unwrap();
    assert_eq!(product, arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn());
}

/// CPU storage that reports the device it was created for (see the test above).
struct Placed {
    inner: Cpu,
    device: Device,
}

impl Placed {
    fn on(&self, inner: Cpu) -> Placed {
        Placed {
            inner,
            device: self.device,
        }
    }
}

impl Backend for Placed {
    const NAME: &'static str = "placed";
    const DEVICE_KINDS: &'static [DeviceKind] = &[DeviceKind::Cpu, DeviceKind::Cuda];

    fn device_memory(&self) -> Option<DeviceMemory> {
        None
    }
    unsafe fn from_external(_memory: ExternalMemory) -> Result<Option<Self>> {
        Ok(None)
    }

    fn device(&self) -> Device {
        self.device
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        Ok(Placed {
            inner: Cpu::from_host(&Device::Cpu, data)?,
            device: *device,
        })
    }
    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        Ok(Placed {
            inner: Cpu::full(&Device::Cpu, len, dtype, value)?,
            device: *device,
        })
    }
    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        Ok(self.on(self.inner.unary(layout, op)?))
    }
    fn binary(&self, layout: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
        Ok(self.on(self.inner.binary(layout, &rhs.inner, rl, op)?))
    }
    fn compare(&self, layout: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
        Ok(self.on(self.inner.compare(layout, &rhs.inner, rl, op)?))
    }
    fn matmul(&self, layout: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
        Ok(self.on(self.inner.matmul(layout, &rhs.inner, rl)?))
    }
    fn reduce(&self, l: &Layout, op: ReduceOp, axis: Option<usize>, dt: DType) -> Result<Self> {
        Ok(self.on(self.inner.reduce(l, op, axis, dt)?))
    }
    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        Ok(self.on(self.inner.cast(layout, dtype)?))
    }
    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        Ok(self.on(self.inner.contiguous(layout)?))
    }
    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        self.inner.to_host(layout, dtype)
    }
    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        self.inner.into_host(layout, dtype)
    }
    fn to_host_into<T: Element>(&self, l: &Layout, out: &mut ArrayViewMutD<'_, T>) -> Result<()> {
        self.inner.to_host_into(l, out)
    }
    fn to_host_into_contiguous<T: Element>(
        &self,
        l: &Layout,
        out: &mut [std::mem::MaybeUninit<T>],
    ) -> Result<()> {
        self.inner.to_host_into_contiguous(l, out)
    }
    fn host_bytes(&self) -> Option<&[u8]> {
        None
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
}

/// cpu and torch, same inputs, same ops: bit-identical host arrays except where the kernels
/// legitimately differ, which stay within 1 ulp of the result dtype: transcendental functions
/// (each library's own `exp`/`log`; float16/bfloat16 `sqrt`, which libtorch computes in float32),
/// float sums/means (both in f64, in different orders) and matmuls (libtorch accumulates in the
/// input precision).
#[cfg(feature = "torch")]
#[test]
fn cpu_and_torch_agree_bit_for_bit_or_within_one_ulp_where_kernels_differ() {
    use tensorbridge::ndarray::Zip;

    fn ulps_apart(a: &AnyTensor, b: &AnyTensor) -> f64 {
        let f64s = |t: &AnyTensor| {
            t.to_host_as(DType::F64)
                .and_then(|h| h.into_typed::<f64>())
                .unwrap()
        };
        let (a, b) = (f64s(a), f64s(b));
        let mut worst = 0.0f64;
        Zip::from(&a).and(&b).for_each(|&x, &y| {
            if x == y || (x.is_nan() && y.is_nan()) {
                return;
            }
            worst = worst.max((x - y).abs() / x.abs().max(y.abs()));
        });
        worst
    }

    let n = 4096usize;
    let vals: Vec<f64> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f64 / 37.0 + 0.01)
        .collect();
    let base = Array::from_shape_vec((64, 64), vals).unwrap().into_dyn();
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64] {
        let eps = match dtype {
            DType::F16 => 2f64.powi(-10),
            DType::BF16 => 2f64.powi(-7),
            DType::F32 => 2f64.powi(-23),
            _ => 2f64.powi(-52),
        };
        let c = on(named("cpu"), &Device::Cpu, base.clone())
            .cast(dtype)
            .unwrap();
        let t = on(named("torch"), &Device::Cpu, base.clone())
            .cast(dtype)
            .unwrap();
        type Op = fn(&AnyTensor) -> Result<AnyTensor>;
        let exact: [(&str, Op); 4] = [
            ("add", |x| x.add(&x.t())),
            ("mul", |x| x.mul_scalar(Scalar::Float(3.0))),
            ("div", |x| x.div(&x.t())),
            ("max", |x| x.max(Some(0), false)),
        ];
        if dtype == DType::F32 {
            // libtorch 2.11's own CPU sqrt is not correctly rounded (float32: 16% of these inputs
            // are one ulp off NumPy's and ours); the torch backend takes float32 through f64,
            // whose error (at most an ulp) cannot move the result across a float32 midpoint.
            assert_eq!(
                c.sqrt().unwrap().to_host().unwrap(),
                t.sqrt().unwrap().to_host().unwrap(),
                "{dtype} sqrt: cpu and torch differ"
            );
        }
        // float16/bfloat16 sqrt: libtorch computes in float32 and rounds; float64: libtorch's.
        let close: [(&str, Op); 6] = [
            ("sqrt", |x| x.sqrt()),
            ("exp", |x| x.mul_scalar(Scalar::Float(0.1))?.exp()),
            ("log", |x| x.log()),
            ("sum", |x| x.sum(Some(1), false)),
            ("mean", |x| x.mean(None, false)),
            ("matmul", |x| {
                x.slice(0, Some(0), Some(8), 1)?.matmul(&x.t())
            }),
        ];
        for (name, op) in exact {
            let (a, b) = (
                op(&c).unwrap().to_host().unwrap(),
                op(&t).unwrap().to_host().unwrap(),
            );
            assert_eq!(a, b, "{dtype} {name}: cpu and torch differ");
        }
        for (name, op) in close {
            let (a, b) = (op(&c).unwrap(), op(&t).unwrap());
            assert_eq!(
                (a.dtype(), a.shape()),
                (b.dtype(), b.shape()),
                "{dtype} {name}"
            );
            // float64 accumulations: both are exact to well under an f32 ulp, but summation
            // orders differ (libtorch pairwise, ours sequential), so allow sqrt(terms) = 8 ulps.
            let accumulates = matches!(name, "sum" | "mean" | "matmul");
            let allowed = if dtype == DType::F64 && accumulates {
                8.0 * eps
            } else {
                eps
            };
            let d = ulps_apart(&a, &b);
            assert!(
                d <= allowed,
                "{dtype} {name}: relative difference {d:e} > {allowed:e}"
            );
        }
    }
    // Integers and bool: identical, wrapping included.
    let ints = Array::from_shape_fn((16, 16), |(i, j)| {
        (i as i64 - 8) * 40_000_000_000 + j as i64
    });
    for dtype in [
        DType::I8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I64,
        DType::Bool,
    ] {
        let c = on(named("cpu"), &Device::Cpu, ints.clone().into_dyn())
            .cast(dtype)
            .unwrap();
        let t = on(named("torch"), &Device::Cpu, ints.clone().into_dyn())
            .cast(dtype)
            .unwrap();
        for (name, f) in [
            (
                "matmul",
                (|x: &AnyTensor| x.matmul(&x.t())) as fn(&AnyTensor) -> Result<AnyTensor>,
            ),
            ("sum", |x| x.sum(Some(0), false)),
            ("min", |x| x.min(None, false)),
            ("lt", |x| x.lt(&x.t())),
        ] {
            let (a, b) = (
                f(&c).unwrap().to_host().unwrap(),
                f(&t).unwrap().to_host().unwrap(),
            );
            assert_eq!(a, b, "{dtype} {name}: cpu and torch differ");
        }
    }
}

#[test]
fn dtype_erased_contiguous_copies_check_the_byte_buffer_and_write_c_order() {
    use std::mem::MaybeUninit;
    let grid = Array::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 - 5.5).into_dyn();
    // The transposed view's values in C order, as f64.
    let expected: Vec<f64> = grid.t().iter().map(|&v| f64::from(v)).collect();
    const SENTINEL: f64 = -1.0e300;
    for (kind, device) in placements() {
        let what = format!("{kind}:{device}");
        let t = on(kind, &device, grid.clone()).t();
        let empty = on(kind, &device, Array::<f32, _>::zeros((0, 3)).into_dyn());
        // 13 f64 words: 8-byte-aligned bytes for the 12 elements and one spare word, so a buffer
        // one byte in is still long enough.
        let mut words = vec![MaybeUninit::new(SENTINEL); 13];
        {
            // SAFETY: the 13 initialised `f64` positions are 104 bytes, viewed as
            // `MaybeUninit<u8>` (no invalid values) for this block only, while `words` is not
            // otherwise used.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<MaybeUninit<u8>>(), 104)
            };
            let refused = |r: Result<()>, invalid: bool, why: &str| {
                let e = r.expect_err(&format!("{what}: {why}"));
                let ok = if invalid {
                    matches!(e, Error::InvalidArgument(_))
                } else {
                    matches!(e, Error::ShapeMismatch { .. })
                };
                assert!(ok, "{what}: {why}: {e:?}");
            };
            refused(
                t.to_host_into_contiguous(DType::F64, &mut bytes[1..97]),
                true,
                "misaligned",
            );
            refused(
                t.to_host_into_contiguous(DType::F64, &mut bytes[..95]),
                true,
                "part element",
            );
            refused(
                t.to_host_into_contiguous(DType::F64, &mut bytes[..88]),
                false,
                "one short",
            );
            refused(
                t.to_host_into_contiguous(DType::F64, &mut bytes[1..1]),
                false,
                "empty",
            );
            // An empty view into an empty buffer whose pointer is not aligned for f64.
            empty
                .to_host_into_contiguous(DType::F64, &mut bytes[1..1])
                .unwrap_or_else(|e| panic!("{what}: empty: {e}"));
            t.to_host_into_contiguous(DType::F64, &mut bytes[..96])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        // SAFETY: every word was initialised (the sentinel, then the copy's writes).
        let got: Vec<f64> = words.iter().map(|w| unsafe { w.assume_init() }).collect();
        assert_eq!(&got[..12], &expected[..], "{what}");
        assert_eq!(got[12], SENTINEL, "{what}: wrote past the buffer");
    }
}
