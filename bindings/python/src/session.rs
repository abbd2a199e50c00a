//! Deferred execution in Python, TF1 style: `tb.Session` evaluates lazy tensors
//! (`s.run([a, b])`, `t.eval(session=s)`), `with tb.Session() as s:` makes `s` the thread's
//! default session and closes it at the end, and `t.eval()` without a session or a default one is
//! an error, as in TF1. Conversions (`t.numpy()`, `np.asarray(t)`) need no session: they evaluate
//! implicitly.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tensorbridge::registry::{self, BackendEntry, DynSession};
use tensorbridge::{AnyTensor, Device};

use crate::args::parse_device;
use crate::errors::{self, run_guarded, IntoPyResult};
use crate::interop::numpy::{export_copy, export_view};
use crate::tensor::PyTensor;

thread_local! {
    /// The default sessions of this thread, innermost last (`with tb.Session() as s:`).
    static DEFAULT_SESSIONS: RefCell<Vec<Py<PySession>>> = const { RefCell::new(Vec::new()) };
}

/// Evaluates lazy tensors on one backend and device. Use it as a context manager to make it the
/// default session of the thread (closed at the end of the block).
#[pyclass(name = "Session", module = "tensorbridge", frozen)]
pub struct PySession {
    backend: &'static BackendEntry,
    device: Device,
    /// `None` once closed.
    inner: Mutex<Option<Arc<dyn DynSession>>>,
    last: Mutex<Vec<(&'static str, usize)>>,
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("Attempted to use a closed Session.")
}

/// The lazy backend named by `backend` (`"lazy:cpu"`, or `"cpu"` for the lazy backend over it).
fn lazy_backend(py: Python<'_>, backend: &str) -> PyResult<&'static BackendEntry> {
    registry::init();
    let name = if backend.starts_with("lazy") {
        backend.to_string()
    } else {
        format!("lazy:{backend}")
    };
    match registry::find(&name) {
        Ok(e) if e.deferred().is_some() => Ok(e),
        Err(e) if !registry::names().contains(&backend) => Err(errors::to_py(py, e)),
        _ => {
            let lazy: Vec<&str> = registry::backends()
                .into_iter()
                .filter(|b| b.deferred().is_some())
                .map(|b| b.name())
                .collect();
            Err(PyValueError::new_err(format!(
                "a Session evaluates lazy tensors; backend '{backend}' has no lazy variant in \
                 this build (lazy backends: {})",
                lazy.join(", ")
            )))
        }
    }
}

impl PySession {
    /// Evaluates the lazy tensors together (a shared subgraph once) with the GIL released.
    fn evaluate(&self, py: Python<'_>, tensors: &[AnyTensor]) -> PyResult<()> {
        for (i, t) in tensors.iter().enumerate() {
            if !std::ptr::eq(t.backend(), self.backend) {
                let what = if t.is_deferred() {
                    format!("a tensor of the lazy backend {}", t.backend())
                } else {
                    format!(
                        "a tensor of the eager backend {}, which has its values already (use \
                         t.numpy())",
                        t.backend()
                    )
                };
                return Err(PyTypeError::new_err(format!(
                    "Session.run: fetch {i} is {what}; this Session evaluates '{}' tensors",
                    self.backend
                )));
            }
        }
        // Not holding the lock while the GIL is released: another thread may use the session.
        let session = self
            .inner
            .lock()
            .map_err(|_| closed_error())?
            .clone()
            .ok_or_else(closed_error)?;
        // Evaluation work is the graph's, not the results' size: always let other threads run.
        let stats = run_guarded(py, usize::MAX, || {
            session.run(tensors)?;
            Ok(session.last_run_stats())
        })?;
        if let Ok(mut last) = self.last.lock() {
            *last = stats;
        }
        Ok(())
    }
}

/// The ndarray of an evaluated tensor: a read-only view of its value, else one copy.
fn value_array<'py>(t: &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>> {
    let py = t.py();
    let inner = &t.get().inner;
    match export_view(py, t.as_any(), inner)? {
        Some(a) => Ok(a),
        None => export_copy(py, inner, inner.dtype()),
    }
}

#[pymethods]
impl PySession {
    #[new]
    #[pyo3(signature = (backend="lazy:cpu", device=None))]
    fn new(py: Python<'_>, backend: &str, device: Option<&str>) -> PyResult<Self> {
        let entry = lazy_backend(py, backend)?;
        let dev = match device {
            None => Device::Cpu,
            Some(d) => parse_device(py, d)?,
        };
        entry.check_device(&dev).py(py)?;
        let deferred = entry
            .deferred()
            .ok_or_else(|| PyValueError::new_err(format!("{entry} is not a lazy backend")))?;
        let session: Arc<dyn DynSession> = Arc::from(deferred.new_session(&dev).py(py)?);
        let last = Mutex::new(session.last_run_stats());
        Ok(PySession {
            backend: entry,
            device: dev,
            inner: Mutex::new(Some(session)),
            last,
        })
    }

    /// The lazy backend this session evaluates (`"lazy:cpu"`).
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The device it evaluates on.
    #[getter]
    fn device(&self) -> String {
        self.device.to_string()
    }

    /// True after `close()` (or the end of its `with` block).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    /// Evaluates `fetches` (one lazy tensor, or a list/tuple of them) together, computing a
    /// subgraph they share once; returns a NumPy array, or a list of them, each a read-only
    /// zero-copy view of the evaluated value (as TF1's `Session.run` returns arrays).
    fn run<'py>(&self, fetches: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = fetches.py();
        let single = fetches.cast::<PyTensor>().ok().cloned();
        let list: Vec<Bound<'py, PyTensor>> = match &single {
            Some(t) => vec![t.clone()],
            None => {
                let is_seq =
                    fetches.is_instance_of::<PyList>() || fetches.is_instance_of::<PyTuple>();
                if !is_seq {
                    return Err(PyTypeError::new_err(format!(
                        "Session.run expects a Tensor or a list/tuple of Tensors, got {}",
                        fetches.get_type().name()?
                    )));
                }
                fetches
                    .try_iter()?
                    .map(|f| {
                        let f = f?;
                        f.cast_into::<PyTensor>().map_err(|e| {
                            PyTypeError::new_err(format!(
                                "Session.run: every fetch must be a Tensor ({e})"
                            ))
                        })
                    })
                    .collect::<PyResult<_>>()?
            }
        };
        let tensors: Vec<AnyTensor> = list.iter().map(|t| t.get().inner.clone()).collect();
        self.evaluate(py, &tensors)?;
        let arrays: Vec<Bound<'py, PyAny>> =
            list.iter().map(value_array).collect::<PyResult<_>>()?;
        match single {
            Some(_) => arrays
                .into_iter()
                .next()
                .ok_or_else(|| PyRuntimeError::new_err("Session.run: no result")),
            None => Ok(PyList::new(py, arrays)?.into_any()),
        }
    }

    /// What the last `run` / `eval` did: nodes evaluated, common subexpressions merged, kernels
    /// launched, of which fused, the ops computed inside fused kernels, and the most
    /// intermediate values held at once.
    fn last_run_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.last.lock().map(|s| s.clone()).unwrap_or_default();
        let d = PyDict::new(py);
        for (name, value) in stats {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// Closes the session; using it afterwards is a RuntimeError.
    fn close(&self) {
        if let Ok(mut g) = self.inner.lock() {
            *g = None;
        }
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        if slf.get().closed() {
            return Err(closed_error());
        }
        let me = slf.clone().unbind();
        DEFAULT_SESSIONS.with(|d| d.borrow_mut().push(me.clone_ref(slf.py())));
        Ok(me)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) -> bool {
        DEFAULT_SESSIONS.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(pos) = d.iter().rposition(|s| s.is(slf)) {
                d.remove(pos);
            }
        });
        slf.get().close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "tb.Session(backend={}, device={}{state})",
            self.backend, self.device
        )
    }
}

/// `t.eval(session=None)`: the value of a lazy tensor as a NumPy array, evaluated in `session`,
/// else in the thread's default session; an error when there is neither (as TF1).
pub fn eval_tensor<'py>(
    t: &Bound<'py, PyTensor>,
    session: Option<&Bound<'py, PySession>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = t.py();
    let inner = &t.get().inner;
    if !inner.is_deferred() {
        return Err(PyTypeError::new_err(format!(
            "eval() evaluates lazy tensors; this tensor is on the eager backend {} and has its \
             values already: use t.numpy()",
            inner.backend()
        )));
    }
    let session: Bound<'py, PySession> = match session {
        Some(s) => s.clone(),
        None => DEFAULT_SESSIONS
            .with(|d| d.borrow().last().map(|s| s.clone_ref(py)))
            .map(|s| s.into_bound(py))
            .ok_or_else(|| {
                PyValueError::new_err(
                    "Cannot evaluate tensor using `eval()`: no session was given and no default \
                     session is registered. Pass one, `t.eval(session=tb.Session())`, or \
                     evaluate inside `with tb.Session() as sess:`. (Conversions such as \
                     t.numpy() and np.asarray(t) evaluate without a session.)",
                )
            })?,
    };
    session.get().evaluate(py, std::slice::from_ref(inner))?;
    value_array(t)
}
