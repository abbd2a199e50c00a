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
use tensorbridge::{AnyTensor, BackendKind, Cpu, Device, RunStats, Session};

use crate::convert::{export_copy, export_view};
use crate::errors::{detached, IntoPyResult};
use crate::PyTensor;

thread_local! {
    /// The default sessions of this thread, innermost last (`with tb.Session() as s:`).
    static DEFAULT_SESSIONS: RefCell<Vec<Py<PySession>>> = const { RefCell::new(Vec::new()) };
}

/// Evaluates lazy tensors on one backend and device. Use it as a context manager to make it the
/// default session of the thread (closed at the end of the block).
#[pyclass(name = "Session", module = "tensorbridge", frozen)]
pub struct PySession {
    kind: BackendKind,
    /// `None` once closed.
    inner: Mutex<Option<Arc<Session<Cpu>>>>,
    last: Mutex<RunStats>,
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("Attempted to use a closed Session.")
}

fn lazy_kind(py: Python<'_>, backend: &str) -> PyResult<BackendKind> {
    let name = if backend.starts_with("lazy") {
        backend.to_string()
    } else {
        format!("lazy:{backend}")
    };
    let kind = name.parse::<BackendKind>().py(py)?;
    if kind == BackendKind::LazyCpu {
        return Ok(kind);
    }
    Err(PyValueError::new_err(format!(
        "a Session evaluates lazy tensors; backend '{backend}' has no lazy variant in this build \
         (lazy backends: lazy:cpu)"
    )))
}

impl PySession {
    /// Evaluates the lazy tensors together (a shared subgraph once) with the GIL released.
    fn evaluate(&self, py: Python<'_>, tensors: &[AnyTensor]) -> PyResult<()> {
        let mut lazies = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            match t {
                AnyTensor::LazyCpu(l) => lazies.push(l.clone()),
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "Session.run: fetch {i} is a tensor of the eager backend {}, which has \
                         its values already (use t.numpy()); a Session evaluates lazy tensors \
                         (backend '{}')",
                        other.backend(),
                        self.kind
                    )))
                }
            }
        }
        // Not holding the lock while the GIL is released: another thread may use the session.
        let session = self
            .inner
            .lock()
            .map_err(|_| closed_error())?
            .clone()
            .ok_or_else(closed_error)?;
        let bytes = tensors
            .iter()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum();
        let stats = detached(py, bytes, || {
            let refs: Vec<_> = lazies.iter().collect();
            session.run(&refs)?;
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
        let kind = lazy_kind(py, backend)?;
        let dev = match device {
            None => Device::Cpu,
            Some(d) => d.parse::<Device>().py(py)?,
        };
        if dev != Device::Cpu {
            return Err(PyRuntimeError::new_err(format!(
                "backend '{kind}' has no device {dev}; its tensors live on cpu"
            )));
        }
        Ok(PySession {
            kind,
            inner: Mutex::new(Some(Arc::new(Session::new(dev)))),
            last: Mutex::new(RunStats::default()),
        })
    }

    /// The lazy backend this session evaluates (`"lazy:cpu"`).
    #[getter]
    fn backend(&self) -> &'static str {
        self.kind.name()
    }

    /// The device it evaluates on.
    #[getter]
    fn device(&self) -> PyResult<String> {
        let guard = self.inner.lock().map_err(|_| closed_error())?;
        Ok(guard
            .as_ref()
            .map(|s| s.device().to_string())
            .unwrap_or_else(|| "cpu".into()))
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
        let s = self.last.lock().map(|s| *s).unwrap_or_default();
        let d = PyDict::new(py);
        d.set_item("nodes", s.nodes)?;
        d.set_item("cse_merged", s.cse_merged)?;
        d.set_item("kernels", s.kernels)?;
        d.set_item("fused_kernels", s.fused_kernels)?;
        d.set_item("fused_ops", s.fused_ops)?;
        d.set_item("peak_live_values", s.peak_live_values)?;
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
        format!("tb.Session(backend={}, device=cpu{state})", self.kind)
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
    if !inner.is_lazy() {
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
