//! # tensorbridge-conformance
//!
//! The one backend-generic conformance suite of tensorbridge. It owns the contract tests every
//! [`Backend`](tensorbridge_core::Backend) must pass: every op × every dtype ([`DType::ALL`]) ×
//! every layout (contiguous, transposed, step-sliced with positive and negative steps, 0-d,
//! zero-size, broadcast with stride 0), the three host transfers, and the error cases.
//!
//! Expected values never come from a backend. Each input is built as an `ndarray` array on the
//! host, the same view is applied with `ndarray`'s own slicing and permuting, and a naive
//! per-element reference in this crate computes the result (integers in `i128` with NumPy's
//! wrapping, floats in `f64`, dtype conversions through
//! [`cast_element`](tensorbridge_core::cast_element)). Integer, bool, view, cast and transfer
//! results must match exactly; float math within a tolerance scaled to the dtype.
//!
//! It does not own backends, benches or the Python contract (pytest covers that).
//!
//! A backend runs the whole suite with one line in its `tests/conformance.rs`; that expands to one
//! `#[test]` per op group, each calling one of the `check_*` functions below:
//!
//! ```text
//! tensorbridge_conformance::conformance_suite!(tensorbridge_cpu::Cpu, tensorbridge_core::Device::Cpu);
//! ```
//!
//! A failing group lists every failing case (op, dtypes, layout, first mismatching index) rather
//! than stopping at the first.
//!
//! [`DType::ALL`]: tensorbridge_core::DType::ALL
#![warn(missing_docs)]

mod checker;
mod checks;
mod fixtures;
mod reference;
mod rng;

pub use checker::declare_unsupported_dtypes;
pub use checks::cast::check_cast;
pub use checks::creation::check_creation;
pub use checks::elementwise::{check_binary, check_compare, check_scalar_arithmetic, check_unary};
pub use checks::errors::check_errors;
pub use checks::matmul::check_matmul;
pub use checks::pinned::check_numpy_edge_cases;
pub use checks::reduce::check_reductions;
pub use checks::transfer::check_host_transfers;
pub use checks::views::check_views;
pub use rng::Lcg;

/// Expands to one `#[test]` per op group, each running the suite's `check_*` function for
/// `$backend` on `$device`.
///
/// ```text
/// tensorbridge_conformance::conformance_suite!(tensorbridge_cpu::Cpu, tensorbridge_core::Device::Cpu);
/// ```
///
/// A backend that cannot store some dtypes names them; every case with such an input or result
/// dtype must then fail with `Error::UnsupportedDType` for it (and is counted as skipped), and
/// creating a tensor of each must fail that way:
///
/// ```text
/// conformance_suite!(tensorbridge_candle::Candle, Device::Cpu, unsupported = [DType::U16, DType::I8]);
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ty, $device:expr, unsupported = [$($d:expr),* $(,)?], ignore = $why:literal $(,)?) => {
        $crate::conformance_suite!(@all $backend, $device, &[$($d),*], [#[ignore = $why]]);
    };
    ($backend:ty, $device:expr, unsupported = [$($d:expr),* $(,)?] $(,)?) => {
        $crate::conformance_suite!(@all $backend, $device, &[$($d),*], []);
    };
    ($backend:ty, $device:expr $(,)?) => {
        $crate::conformance_suite!($backend, $device, unsupported = []);
    };
    (@all $backend:ty, $device:expr, $unsupported:expr, [$(#[$attr:meta])*]) => {
        $crate::conformance_suite!(@tests $backend, $device, $unsupported, [$(#[$attr])*];
            creation_from_host_data_fills_and_arange_round_trips => check_creation,
            views_read_back_like_numpy_views_and_contiguous_copies => check_views,
            cast_between_every_dtype_pair_follows_numpy_astype => check_cast,
            binary_arithmetic_broadcasts_and_promotes_like_numpy => check_binary,
            scalar_arithmetic_treats_python_scalars_as_weak => check_scalar_arithmetic,
            unary_math_matches_reference_in_numpy_result_dtypes => check_unary,
            comparisons_promote_and_return_bool => check_compare,
            matmul_handles_vectors_matrices_and_broadcast_batches => check_matmul,
            reductions_over_all_and_each_axis_with_keepdim => check_reductions,
            host_transfers_copy_the_view_and_convert_on_request => check_host_transfers,
            invalid_operations_return_typed_errors => check_errors,
            integer_wrapping_nan_propagation_and_dtype_rules_match_numpy => check_numpy_edge_cases,
        );
    };
    (@tests $backend:ty, $device:expr, $unsupported:expr, $attrs:tt;
     $($name:ident => $check:ident),* $(,)?) => {
        $(
            $crate::conformance_suite!(@one $backend, $device, $unsupported, $attrs, $name, $check);
        )*
    };
    (@one $backend:ty, $device:expr, $unsupported:expr, [$(#[$attr:meta])*], $name:ident, $check:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            $crate::declare_unsupported_dtypes($unsupported);
            $crate::$check::<$backend>(&$device);
        }
    };
}
