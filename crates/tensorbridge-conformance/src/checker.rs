//! Recording outcomes: a group runs every case, collects each failure with its context, and fails
//! once at the end with the whole list, so one run shows every broken combination.

use std::cell::RefCell;
use std::fmt::Display;

use ndarray::ArrayD;
use tensorbridge_core::{
    with_dtype, with_host_array, Backend, DType, Element, Error, HostArray, Result, Tensor,
};

use crate::reference::{epsilon, min_normal, Value};

/// How closely a float result must match the reference. Integers and bool always match exactly.
pub(crate) enum Tol {
    /// The same value and, for floats, the same sign of zero (any NaN matches any NaN): views,
    /// casts, transfers, `neg`/`abs`.
    Exact,
    /// The same number; -0.0 matches 0.0 (`max`/`min`, where NumPy leaves the tie unspecified).
    Equal,
    /// Within `n` roundings of the result dtype, relative to the expected value: one correctly
    /// rounded op is within 1, transcendental functions within 2.
    Ulps(f64),
    /// An accumulation of `terms` values (sum, mean, dot product): backends may add in another
    /// order or precision, so the error is measured against `scale = Σ|term|` per output element.
    Accumulated { terms: usize, scale: ArrayD<f64> },
}

impl Tol {
    /// The absolute error allowed around `want`, for a dtype with unit roundoff `eps` and
    /// smallest normal `min_normal` (below which spacing stops shrinking); `scale` is this
    /// element's entry of an `Accumulated` scale.
    fn allowed(&self, want: f64, scale: f64, eps: f64, min_normal: f64) -> f64 {
        let ulps = match self {
            Tol::Exact | Tol::Equal => return 0.0,
            Tol::Ulps(n) => *n,
            Tol::Accumulated { terms, .. } => 1.0 + (*terms as f64).sqrt(),
        };
        ulps * eps * (want.abs().max(scale) + min_normal)
    }

    /// The per-element scales, in logical order (zeros when there are none).
    fn scales(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        match self {
            Tol::Accumulated { scale, .. } => Box::new(scale.iter().copied()),
            _ => Box::new(std::iter::repeat(0.0)),
        }
    }
}

/// The multi-index of the `flat`-th element in row-major order of `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in index.iter_mut().zip(shape).rev() {
        *i = flat % d;
        flat /= d;
    }
    index
}

/// Why `got` is not `want`, or `None` when it matches.
pub(crate) fn mismatch(got: &HostArray, want: &HostArray, tol: &Tol) -> Option<String> {
    if got.dtype() != want.dtype() {
        return Some(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Some(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    with_host_array!(got, g => mismatch_typed(g, want.as_typed().expect("same dtype"), tol))
}

fn mismatch_typed<T: Element>(got: &ArrayD<T>, want: &ArrayD<T>, tol: &Tol) -> Option<String> {
    let (eps, floor) = (epsilon(T::DTYPE), min_normal(T::DTYPE));
    let mut bad = Vec::new();
    let mut count = 0usize;
    let pairs = got.iter().zip(want.iter()).zip(tol.scales());
    for (flat, ((&g, &w), scale)) in pairs.enumerate() {
        let (gv, wv) = (Value::of(g), Value::of(w));
        let ok = match (gv, wv) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) if b.is_nan() => a.is_nan(),
            (Value::Float(a), Value::Float(b)) if a.is_nan() || b.is_infinite() => a == b,
            (Value::Float(a), Value::Float(b)) if matches!(tol, Tol::Exact) => {
                a == b && a.is_sign_negative() == b.is_sign_negative()
            }
            (Value::Float(a), Value::Float(b)) => {
                (a - b).abs() <= tol.allowed(b, scale, eps, floor)
            }
            _ => false,
        };
        if !ok {
            count += 1;
            if bad.len() < 3 {
                let at = unravel(flat, want.shape());
                bad.push(format!("at {at:?}: got {gv:?}, expected {wv:?}"));
            }
        }
    }
    (count > 0).then(|| {
        format!(
            "{count} of {} elements differ; {}",
            want.len(),
            bad.join("; ")
        )
    })
}

/// The tensor's values through the typed transfer, `to_host_array::<T>` for its own dtype.
pub(crate) fn read_back<B: Backend>(t: &Tensor<B>) -> Result<HostArray> {
    with_dtype!(t.dtype(), T => t.to_host_array::<T>().map(HostArray::from))
}

thread_local! {
    /// The dtypes the backend under test declares it cannot store (set per test by
    /// `conformance_suite!(.., unsupported = [..])`).
    static UNSUPPORTED: RefCell<Vec<DType>> = const { RefCell::new(Vec::new()) };
}

/// Declares, for the checks run next on this thread, the dtypes the backend cannot store. A case
/// whose input or result has such a dtype must fail with `Error::UnsupportedDType` naming it; it
/// is then counted as skipped instead of failed. Called by `conformance_suite!`.
#[doc(hidden)]
pub fn declare_unsupported_dtypes(dtypes: &[DType]) {
    UNSUPPORTED.with(|u| *u.borrow_mut() = dtypes.to_vec());
}

/// The declared-unsupported dtypes on this thread.
pub(crate) fn unsupported_dtypes() -> Vec<DType> {
    UNSUPPORTED.with(|u| u.borrow().clone())
}

/// True when `e` is the error a backend owes for a dtype it declared unsupported.
fn excused(e: &Error) -> bool {
    matches!(e, Error::UnsupportedDType { dtype, .. } if unsupported_dtypes().contains(dtype))
}

/// The outcomes of one group of checks.
pub(crate) struct Checker {
    group: &'static str,
    passed: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Checker {
    pub(crate) fn new(group: &'static str) -> Self {
        Checker {
            group,
            passed: 0,
            skipped: 0,
            failures: Vec::new(),
        }
    }

    pub(crate) fn fail(&mut self, ctx: &str, why: impl Display) {
        self.failures.push(format!("{ctx}: {why}"));
    }

    /// An error where none was expected: a failure, unless it is `UnsupportedDType` for a dtype
    /// the backend declared unsupported (then the case is skipped).
    pub(crate) fn unexpected(&mut self, ctx: &str, e: Error) {
        if excused(&e) {
            self.skipped += 1;
        } else {
            self.fail(ctx, format!("unexpected error: {e}"));
        }
    }

    /// Records a condition; `why` describes the failure.
    pub(crate) fn check(&mut self, ok: bool, ctx: &str, why: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.fail(ctx, why());
        }
    }

    /// A host array must match the reference.
    pub(crate) fn host(&mut self, ctx: &str, got: Result<HostArray>, want: &HostArray, tol: &Tol) {
        match got {
            Err(e) => self.unexpected(ctx, e),
            Ok(h) => match mismatch(&h, want, tol) {
                Some(why) => self.fail(ctx, why),
                None => self.passed += 1,
            },
        }
    }

    /// A tensor must have the reference's dtype and shape, and read back to its values.
    pub(crate) fn tensor<B: Backend>(
        &mut self,
        ctx: &str,
        got: Result<Tensor<B>>,
        want: &HostArray,
        tol: &Tol,
    ) {
        let t = match got {
            Ok(t) => t,
            Err(e) => return self.unexpected(ctx, e),
        };
        if t.dtype() != want.dtype() || t.shape() != want.shape() {
            return self.fail(
                ctx,
                format!(
                    "tensor is {} {:?}, expected {} {:?}",
                    t.dtype(),
                    t.shape(),
                    want.dtype(),
                    want.shape()
                ),
            );
        }
        self.host(ctx, read_back(&t), want, tol);
    }

    /// An operation must fail with an error that `expected` describes and `is_expected` accepts.
    pub(crate) fn error<T>(
        &mut self,
        ctx: &str,
        got: Result<T>,
        expected: &str,
        is_expected: impl FnOnce(&Error) -> bool,
    ) {
        match got {
            Ok(_) => self.fail(ctx, format!("succeeded, expected {expected}")),
            Err(e) if is_expected(&e) => self.passed += 1,
            Err(e) if excused(&e) => self.skipped += 1,
            Err(e) => self.fail(ctx, format!("error `{e}` ({e:?}), expected {expected}")),
        }
    }

    /// Panics with every failure when any check failed.
    pub(crate) fn finish(self) {
        let failed = self.failures.len();
        if failed == 0 {
            eprintln!(
                "conformance {}: {} checks passed, {} skipped for dtypes the backend declares \
                 unsupported",
                self.group, self.passed, self.skipped
            );
            return;
        }
        const SHOWN: usize = 40;
        let mut list = self.failures;
        let more = list.len().saturating_sub(SHOWN);
        list.truncate(SHOWN);
        panic!(
            "conformance {}: {failed} of {} checks failed:\n  {}{}",
            self.group,
            failed + self.passed,
            list.join("\n  "),
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        );
    }
}
