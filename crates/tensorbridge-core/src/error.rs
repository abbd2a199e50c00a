//! Errors: one `thiserror` enum whose variants say what went wrong with which shape, dtype and backend.
//! The Python bindings map each variant to one exception type in one place.

use crate::dtype::DType;

/// `Result` with tensorbridge's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a tensorbridge operation can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A typed read asked for a different element type than the tensor holds.
    #[error("dtype mismatch in {op}: tensor is {actual}, requested {requested}; cast explicitly with .cast({requested})")]
    DTypeMismatch {
        /// The operation.
        op: &'static str,
        /// The tensor's dtype.
        actual: DType,
        /// The requested dtype.
        requested: DType,
    },
    /// The dtype is not supported by this operation.
    #[error("{op} does not support dtype {dtype}")]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// The offending dtype.
        dtype: DType,
    },
    /// A dtype name that tensorbridge does not know.
    #[error("unknown dtype '{name}'; expected one of bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float16, bfloat16, float32, float64")]
    UnknownDType {
        /// The name given.
        name: String,
    },
    /// Shapes that do not fit together.
    #[error("shape mismatch in {op}: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// First shape.
        lhs: Vec<usize>,
        /// Second shape.
        rhs: Vec<usize>,
    },
    /// An element count that does not match the shape.
    #[error("{op}: {len} elements cannot have shape {shape:?} ({expected} elements)")]
    ElementCount {
        /// The operation.
        op: &'static str,
        /// Elements given.
        len: usize,
        /// Shape asked for.
        shape: Vec<usize>,
        /// Elements the shape holds.
        expected: usize,
    },
    /// An axis outside `-ndim..ndim`.
    #[error("{op}: axis {axis} is out of bounds for a tensor of {ndim} dimensions")]
    AxisOutOfRange {
        /// The operation.
        op: &'static str,
        /// Axis given.
        axis: isize,
        /// Dimensions of the tensor.
        ndim: usize,
    },
    /// An index outside a dimension.
    #[error("index {index} is out of bounds for axis {axis} with size {size}")]
    IndexOutOfRange {
        /// Index given.
        index: isize,
        /// Axis indexed.
        axis: usize,
        /// Size of that axis.
        size: usize,
    },
    /// Any other argument that makes no sense.
    #[error("{0}")]
    InvalidArgument(String),
    /// Two tensors on different backends or devices in one op.
    #[error("{op}: tensors are on different backends/devices ({lhs} and {rhs}); move one with .to(backend=..., device=...)")]
    BackendMismatch {
        /// The operation.
        op: &'static str,
        /// Left backend/device.
        lhs: String,
        /// Right backend/device.
        rhs: String,
    },
    /// A device that does not exist or cannot be used.
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),
    /// An integer (a Python `int`) outside the range of the integer dtype it must become, in
    /// arithmetic or creation (NumPy 2 raises `OverflowError` with this text; comparisons never
    /// raise it: they are answered exactly).
    #[error("Python integer {value} out of bounds for {dtype}")]
    IntegerOutOfBounds {
        /// The integer given.
        value: i128,
        /// The dtype it does not fit.
        dtype: DType,
    },
    /// A shape whose element count, or size in bytes, exceeds `isize::MAX`: no array can address
    /// it (NumPy raises `ValueError`, "array is too big"). Checked with exact arithmetic wherever
    /// a shape is made, so a size never wraps.
    #[error("{op}: array is too big; shape {}{} exceeds the maximum array size of isize::MAX bytes", crate::memory_guard::shape_text(shape), dtype_suffix(.dtype))]
    ShapeTooLarge {
        /// The operation.
        op: &'static str,
        /// The shape asked for.
        shape: Vec<usize>,
        /// The dtype, when the operation has one (views check the element count alone).
        dtype: Option<DType>,
    },
    /// A result that an array could address but whose bytes cannot be allocated now (more than
    /// the host's available memory, or the allocator refused; NumPy raises `MemoryError`; see
    /// [`memory_guard`](crate::memory_guard)).
    #[error("{}", crate::memory_guard::too_large_message(op, shape, *dtype, *bytes, limit))]
    TooLarge {
        /// The operation.
        op: &'static str,
        /// The shape, as the caller gave it.
        shape: Vec<usize>,
        /// The dtype.
        dtype: DType,
        /// Bytes requested; `u128::MAX` when the element count overflows.
        bytes: u128,
        /// The limit that was hit, with its figures.
        limit: crate::memory_guard::MemoryLimit,
    },
    /// The operation is not defined for these operands (e.g. `-` on bool, as in NumPy).
    #[error("{0}")]
    Unsupported(String),
    /// A backend-specific failure, with the backend's own text.
    #[error("{backend} backend error: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// Its message.
        message: String,
    },
}

impl Error {
    /// The same error, a [`TooLarge`](Error::TooLarge) naming `shape` instead of the shape the
    /// allocation saw (a backend allocates the flat element count of a shape the caller gave).
    pub fn with_shape(self, shape: &[usize]) -> Error {
        match self {
            Error::TooLarge {
                op,
                dtype,
                bytes,
                limit,
                ..
            } => Error::TooLarge {
                op,
                shape: shape.to_vec(),
                dtype,
                bytes,
                limit,
            },
            e => e,
        }
    }
}

fn dtype_suffix(dtype: &Option<DType>) -> String {
    dtype.map(|d| format!(" of dtype {d}")).unwrap_or_default()
}
