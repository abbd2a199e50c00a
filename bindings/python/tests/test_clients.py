"""Real clients of the array protocols take a tensor as they take an ndarray: pandas (which
checks ``is_list_like`` — an ``__iter__`` and ``ndim != 0`` — before ``__array__``) and plain
Python iteration, on every compiled backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tensorbridge as tb

BACKENDS = tb.compiled_backends()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "bool"])
def test_pandas_series_and_dataframe_take_a_tensor_as_an_ndarray(backend: str, dtype: str) -> None:
    a = np.array([[1, 0, 3], [4, 5, 0]]).astype(dtype)
    t = tb.tensor(a, backend=backend)
    pd.testing.assert_frame_equal(pd.DataFrame(t), pd.DataFrame(a))
    pd.testing.assert_frame_equal(
        pd.DataFrame(t, columns=["x", "y", "z"], index=[7, 8]),
        pd.DataFrame(a, columns=["x", "y", "z"], index=[7, 8]),
    )
    pd.testing.assert_series_equal(pd.Series(t[0]), pd.Series(a[0]))
    pd.testing.assert_series_equal(pd.Series(t[:, 1], name="c"), pd.Series(a[:, 1], name="c"))
    pd.testing.assert_frame_equal(pd.DataFrame(t[0]), pd.DataFrame(a[0]))  # 1-D: one column
    pd.testing.assert_frame_equal(pd.DataFrame({"c": t[1]}), pd.DataFrame({"c": a[1]}))
    assert pd.api.types.is_list_like(t)
    assert not pd.api.types.is_list_like(t[0, 0])  # 0-d: a scalar, as a 0-d ndarray


@pytest.mark.parametrize("backend", BACKENDS)
def test_pandas_rejects_what_it_rejects_for_ndarrays(backend: str) -> None:
    a = np.zeros((2, 2, 2))
    t = tb.tensor(a, backend=backend)
    for make in (pd.DataFrame, pd.Series):
        with pytest.raises(ValueError) as want:
            make(a)
        with pytest.raises(ValueError) as got:
            make(t)
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_and_for_iterate_the_first_axis_as_ndarray_rows(backend: str) -> None:
    a = np.arange(6.0).reshape(3, 2)
    t = tb.tensor(a, backend=backend)
    assert [r.tolist() for r in list(t)] == [r.tolist() for r in list(a)]
    seen = []
    for row in t:
        assert isinstance(row, tb.Tensor) and (row.backend, row.device) == (t.backend, t.device)
        seen.append(row.numpy())
    np.testing.assert_array_equal(np.stack(seen), a)
    x, y, z = t  # unpacking iterates too
    np.testing.assert_array_equal(z.numpy(), a[2])
    assert sorted(float(v) for v in t[:, 0]) == [0.0, 2.0, 4.0]
    with pytest.raises(TypeError):
        list(np.array(1.0))
    with pytest.raises(TypeError):
        list(tb.tensor(1.0, backend=backend))
