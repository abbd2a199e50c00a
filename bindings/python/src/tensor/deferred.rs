//! Deferred execution on a tensor: `eval`, `graph`, `is_evaluated` (lazy backends; trivial or an
//! error on eager ones).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::PyTensor;
use crate::errors::IntoPyResult;
use crate::session::{self, PySession};

#[pymethods]
impl PyTensor {
    /// The value of a lazy tensor as a NumPy array, evaluated in `session` or else in the
    /// thread's default session (`with tb.Session() as s:`); without either, a ValueError (as
    /// TF1). A read-only zero-copy view of the evaluated value.
    #[pyo3(signature = (session=None))]
    fn eval<'py>(
        slf: &Bound<'py, Self>,
        session: Option<&Bound<'py, PySession>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        session::eval_tensor(slf, session)
    }

    /// True when the values exist: always for eager tensors, after evaluation for lazy ones.
    /// Asking computes nothing.
    #[getter]
    fn is_evaluated(&self) -> bool {
        self.inner.is_evaluated()
    }

    /// The graph behind a lazy tensor, one line per node (`format="dot"`: Graphviz DOT).
    /// Computes nothing; a ValueError for eager tensors.
    #[pyo3(signature = (format="text"))]
    fn graph(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        let dot = match format {
            "text" => false,
            "dot" => true,
            other => {
                return Err(PyValueError::new_err(format!(
                    "graph(format={other:?}): expected 'text' or 'dot'"
                )))
            }
        };
        self.inner.graph(dot).py(py)
    }
}
