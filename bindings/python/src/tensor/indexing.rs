//! Basic indexing (`t[1, ::2, ..., None]`): ints, slices with steps, `...` and `None`, each a view.

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyEllipsis, PyInt, PyNone, PySlice, PyTuple};
use tensorbridge::AnyTensor;

use crate::errors::IntoPyResult;

enum Item {
    Int(isize),
    Slice(Option<isize>, Option<isize>, isize),
    Ellipsis,
    NewAxis,
}

fn opt_isize(v: Bound<'_, PyAny>) -> PyResult<Option<isize>> {
    if v.is_none() {
        return Ok(None);
    }
    // Out-of-range slice bounds clamp like Python's; saturate huge ints.
    match v.extract::<isize>() {
        Ok(x) => Ok(Some(x)),
        Err(_) => {
            let negative = v.lt(0)?;
            Ok(Some(if negative {
                isize::MIN / 2
            } else {
                isize::MAX / 2
            }))
        }
    }
}

fn parse_item(obj: &Bound<'_, PyAny>) -> PyResult<Item> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "boolean indices are advanced indexing, which tensorbridge does not support; \
             convert with np.asarray(t) first",
        ));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<isize>()
            .map(Item::Int)
            .map_err(|_| PyIndexError::new_err("index out of range"));
    }
    if let Ok(s) = obj.cast::<PySlice>() {
        let step = opt_isize(s.getattr("step")?)?.unwrap_or(1);
        if step == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "slice step cannot be zero",
            ));
        }
        return Ok(Item::Slice(
            opt_isize(s.getattr("start")?)?,
            opt_isize(s.getattr("stop")?)?,
            step,
        ));
    }
    if obj.is_instance_of::<PyEllipsis>() {
        return Ok(Item::Ellipsis);
    }
    if obj.is_instance_of::<PyNone>() {
        return Ok(Item::NewAxis);
    }
    // Objects with __index__ (NumPy integers) are ints too.
    if let Ok(i) = obj.call_method0("__index__") {
        if let Ok(v) = i.extract::<isize>() {
            return Ok(Item::Int(v));
        }
    }
    Err(PyTypeError::new_err(format!(
        "unsupported index of type {}: tensorbridge supports ints, slices, ... and None \
         (basic indexing, always a view); for advanced indexing convert with np.asarray(t) first",
        obj.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    )))
}

/// `t[key]` as a view.
pub fn get_item(py: Python<'_>, t: &AnyTensor, key: &Bound<'_, PyAny>) -> PyResult<AnyTensor> {
    let items: Vec<Item> = match key.cast::<PyTuple>() {
        Ok(tuple) => tuple
            .iter()
            .map(|o| parse_item(&o))
            .collect::<PyResult<_>>()?,
        Err(_) => vec![parse_item(key)?],
    };
    let consumed = items
        .iter()
        .filter(|i| matches!(i, Item::Int(_) | Item::Slice(..)))
        .count();
    let ellipses = items.iter().filter(|i| matches!(i, Item::Ellipsis)).count();
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let ndim = t.shape().len();
    if consumed > ndim {
        return Err(PyIndexError::new_err(format!(
            "too many indices for tensor: tensor is {ndim}-dimensional, but {consumed} were indexed"
        )));
    }
    let mut out = t.clone();
    let mut axis: isize = 0;
    for item in items {
        match item {
            Item::Int(i) => out = out.select(axis, i).py(py)?,
            Item::Slice(start, stop, step) => {
                out = out.slice(axis, start, stop, step).py(py)?;
                axis += 1;
            }
            Item::Ellipsis => axis += (ndim - consumed) as isize,
            Item::NewAxis => {
                out = out.unsqueeze(axis).py(py)?;
                axis += 1;
            }
        }
    }
    Ok(out)
}
