//! Property test: the host copy kernels (`to_contiguous`, `copy_into`) for every pair of the 13
//! dtypes, on random strided sources (negative and zero strides, offsets, empty and size-1 axes)
//! and random strided destinations (any axis order, padding, flipped axes), against a naive loop
//! that reads each element by its index and converts it with the scalar `cast_element`.
//! Destination memory outside the view must be left untouched. A second property runs large
//! transposed and stepped copies through the tiled and parallel paths. Case count and time
//! budget: see `fuzz/mod.rs`.

mod fuzz;

use ndarray::{ArrayD, ArrayViewMutD, Axis, Dimension, IxDyn, ShapeBuilder};
use proptest::prelude::*;
use tensorbridge_core::host::{copy_into, to_contiguous};
use tensorbridge_core::{cast_element, with_dtype, DType, Element, Layout};

/// Raw values each source element is made from (`Element::from_f64` of the source dtype):
/// specials, fractions, and values out of range of the narrow types.
const VALUES: [f64; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -2.75,
    127.0,
    128.0,
    255.0,
    -129.0,
    65504.0,
    3.0e38,
    1.0e-40,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

#[derive(Clone, Debug)]
struct Source {
    shape: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
    len: usize,
}

/// A strided source over `len` elements: each stride in `-max_stride..=max_stride` (0 included),
/// or a contiguous layout permuted and with axes flipped.
fn source(max_dim: usize, max_ndim: usize) -> impl Strategy<Value = Source> {
    (
        prop::collection::vec((0..=max_dim, -4isize..=4, any::<bool>()), 0..=max_ndim),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(axes, dense, slack)| {
            let shape: Vec<usize> = axes.iter().map(|a| a.0).collect();
            let strides: Vec<isize> = if dense {
                // A permuted dense layout with some axes reversed: the kernel's tiled path.
                let mut order: Vec<usize> = (0..shape.len()).collect();
                order.sort_by_key(|&i| (axes[i].1, i));
                let mut s: Vec<isize> = vec![0; shape.len()];
                let mut acc = 1isize;
                for &i in order.iter().rev() {
                    s[i] = if axes[i].2 { -acc } else { acc };
                    acc *= shape[i].max(1) as isize;
                }
                s
            } else {
                axes.iter().map(|a| a.1).collect()
            };
            let (mut lo, mut hi) = (0isize, 0isize);
            for (&d, &s) in shape.iter().zip(&strides) {
                let reach = s * (d.max(1) as isize - 1);
                if reach < 0 {
                    lo += reach;
                } else {
                    hi += reach;
                }
            }
            let offset = (-lo) as usize + slack;
            Source {
                len: offset + hi as usize + 1 + slack,
                shape,
                strides,
                offset,
            }
        })
}

/// Where the destination lives in its buffer: memory order of the axes (outermost first),
/// padding per axis, and flipped axes.
#[derive(Clone, Debug)]
struct Dest {
    order_keys: Vec<u8>,
    pad: Vec<usize>,
    flip: Vec<bool>,
}

fn dest() -> impl Strategy<Value = Dest> {
    (
        prop::collection::vec(any::<u8>(), 8),
        prop::collection::vec(1usize..=3, 8),
        prop::collection::vec(any::<bool>(), 8),
    )
        .prop_map(|(order_keys, pad, flip)| Dest {
            order_keys,
            pad,
            flip,
        })
}

fn dtype() -> impl Strategy<Value = DType> {
    (0..DType::ALL.len()).prop_map(|i| DType::ALL[i])
}

/// Same value: equal bytes, or both NaN.
fn same<T: Element>(a: T, b: T) -> bool {
    let bytes = |v: &T| {
        // SAFETY: every `Element` is plain data of `size_of::<T>()` initialised bytes (bool is one
        // byte holding 0 or 1); the slice borrows `v`.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    };
    #[allow(clippy::eq_op)]
    let both_nan = a != a && b != b;
    bytes(&a) == bytes(&b) || both_nan
}

fn check_pair<S: Element, D: Element>(
    src: &Source,
    picks: &[usize],
    dst: &Dest,
) -> Result<(), TestCaseError> {
    let data: Vec<S> = (0..src.len)
        .map(|i| S::from_f64(VALUES[picks[i % picks.len()] % VALUES.len()]))
        .collect();
    let layout = Layout::new(src.shape.clone(), src.strides.clone(), src.offset).unwrap();
    let shape = &src.shape;
    // The naive loop: every index, read by its offset, converted by the scalar cast.
    let want = ArrayD::from_shape_fn(IxDyn(shape), |ix| {
        let at: isize = ix
            .slice()
            .iter()
            .zip(&src.strides)
            .map(|(&i, &s)| i as isize * s)
            .sum();
        cast_element::<S, D>(data[(src.offset as isize + at) as usize])
    });
    let got = to_contiguous::<S, D>(&data, &layout)
        .map_err(|e| TestCaseError::fail(format!("to_contiguous: {e}")))?;
    prop_assert!(got.is_standard_layout());
    prop_assert_eq!(got.shape(), want.shape());
    for (ix, &w) in want.indexed_iter() {
        let g = got[&ix];
        prop_assert!(
            same(g, w),
            "to_contiguous {}->{} at {:?}: {:?} != {:?}",
            S::DTYPE,
            D::DTYPE,
            ix.slice(),
            g,
            w
        );
    }

    // A strided destination inside a larger buffer of sentinels.
    let nd = shape.len();
    let mut order: Vec<usize> = (0..nd).collect();
    order.sort_by_key(|&i| (dst.order_keys[i % 8], i));
    let mut strides = vec![0usize; nd];
    let mut acc = 1usize;
    for &i in order.iter().rev() {
        strides[i] = acc * dst.pad[i % 8];
        acc = strides[i] * shape[i].max(1);
    }
    let sentinel = D::from_f64(-3.0);
    let mut buf = vec![sentinel; acc];
    {
        let mut view =
            ArrayViewMutD::from_shape(IxDyn(shape).strides(IxDyn(&strides)), &mut buf[..])
                .map_err(|e| TestCaseError::fail(format!("destination: {e}")))?;
        for ax in 0..nd {
            if dst.flip[ax % 8] {
                view.invert_axis(Axis(ax));
            }
        }
        copy_into(&data, &layout, &mut view)
            .map_err(|e| TestCaseError::fail(format!("copy_into: {e}")))?;
        for (ix, &w) in want.indexed_iter() {
            let g = view[&ix];
            prop_assert!(
                same(g, w),
                "copy_into {}->{} at {:?}: {:?} != {:?}",
                S::DTYPE,
                D::DTYPE,
                ix.slice(),
                g,
                w
            );
        }
        view.fill(sentinel);
    }
    prop_assert!(
        buf.iter().all(|&v| same(v, sentinel)),
        "copy_into wrote outside its destination"
    );
    Ok(())
}

#[test]
fn copies_of_every_dtype_pair_match_the_naive_loop() {
    fuzz::fuzz(
        "copy kernels, every dtype pair",
        (
            dtype(),
            dtype(),
            source(7, 4),
            prop::collection::vec(0usize..VALUES.len(), 1..40),
            dest(),
        ),
        |(sd, dd, src, picks, dst)| with_dtype!(sd, S => with_dtype!(dd, D => check_pair::<S, D>(&src, &picks, &dst))),
    );
}

#[test]
fn large_copies_through_the_tiled_and_parallel_paths_match_the_naive_loop() {
    // Up to 2 × 300 × 300 elements: tiles of 64 with ragged edges, and above the kernel's
    // parallel threshold (2^18 elements) for the larger cases.
    fuzz::fuzz_scaled(
        "large copy kernels",
        32,
        (
            prop::sample::select(vec![
                DType::F32,
                DType::F64,
                DType::BF16,
                DType::I8,
                DType::Bool,
            ]),
            prop::sample::select(vec![DType::F32, DType::F16, DType::I64, DType::U8]),
            source(300, 2).prop_flat_map(|s| {
                // One leading axis of 1 or 2 keeps the 3-D cases bounded.
                (Just(s), 1usize..=2)
            }),
            prop::collection::vec(0usize..VALUES.len(), 1..40),
            dest(),
        ),
        |(sd, dd, (mut src, lead), picks, dst)| {
            if lead == 2 {
                let span = src.len as isize;
                src.shape.insert(0, 2);
                src.strides.insert(0, span);
                src.len *= 2;
            }
            with_dtype!(sd, S => with_dtype!(dd, D => check_pair::<S, D>(&src, &picks, &dst)))
        },
    );
}
