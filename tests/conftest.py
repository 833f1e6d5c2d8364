"""Shared helpers for the tracejit test suite.

The helpers compare what a traced function returns with what plain NumPy returns for the
same call: same container structure, same Python/NumPy types (ndarray vs NumPy scalar),
same dtype and shape, and values equal (exact for integers and booleans, close for floats,
NaN equal to NaN).
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

# The suite exercises the compiled path; an inherited TRACEJIT_DISABLE would turn every
# traced call into a plain eager call and make the kernel/cache assertions meaningless.
# This runs before any test module imports tracejit.
os.environ.pop("TRACEJIT_DISABLE", None)
# Kernels compile in each run: one loaded from an earlier run's disk cache would not count as
# compiled. tests/test_disk_cache.py turns the cache on for the processes it starts.
os.environ["TRACEJIT_CACHE_DIR"] = ""
# Every test runs compiled code from its first call: background compiling (which runs the
# first calls eagerly) is turned on by the tests of it alone.
os.environ["TRACEJIT_COMPILE"] = "sync"


def pytest_configure(config):
    # A test that expects an eager fallback says so (pytest.warns); any other fallback fails the
    # test instead of passing through eager NumPy. Added here, after the environment is set.
    config.addinivalue_line("filterwarnings", "error::tracejit.FallbackWarning")

DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)

# (rtol, atol) per result dtype.
_TOLERANCES = {
    np.dtype(np.float16): (2e-3, 2e-3),
    np.dtype(np.float32): (1e-6, 1e-6),
    np.dtype(np.float64): (1e-12, 1e-13),
    np.dtype(np.complex64): (1e-6, 1e-6),
    np.dtype(np.complex128): (1e-12, 1e-13),
}


def dtype_id(dtype) -> str:
    """Short readable id for a dtype, for parametrize ids."""
    return np.dtype(dtype).name


def tolerances(dtype) -> tuple[float, float]:
    """Default (rtol, atol) used to compare floating results of the given dtype."""
    dtype = np.dtype(dtype)
    if dtype in _TOLERANCES:
        return _TOLERANCES[dtype]
    if dtype.kind in "fc":  # e.g. longdouble
        return 1e-12, 1e-13
    return 0.0, 0.0


def _compare_values(result, expected, rtol, atol, path):
    dtype = np.asarray(expected).dtype
    if dtype.kind in "fc":
        default_rtol, default_atol = tolerances(dtype)
        np.testing.assert_allclose(
            result,
            expected,
            rtol=default_rtol if rtol is None else rtol,
            atol=default_atol if atol is None else atol,
            equal_nan=True,
            err_msg=f"values differ at {path}",
        )
    else:
        np.testing.assert_array_equal(result, expected, err_msg=f"values differ at {path}")


def assert_same(result, expected, rtol=None, atol=None, _path="result"):
    """Assert that ``result`` is what NumPy returned as ``expected``.

    Checks container types and keys/lengths, ndarray vs NumPy scalar, dtype and shape
    exactly, then values (``assert_allclose`` with ``equal_nan=True`` for inexact dtypes,
    exact equality otherwise). Recurses into tuples, lists and dicts.
    """
    if isinstance(expected, (tuple, list)):
        assert type(result) is type(expected), (
            f"{_path}: expected {type(expected).__name__}, got {type(result).__name__}"
        )
        assert len(result) == len(expected), (
            f"{_path}: expected length {len(expected)}, got {len(result)}"
        )
        for i, (r, e) in enumerate(zip(result, expected, strict=True)):
            assert_same(r, e, rtol, atol, f"{_path}[{i}]")
        return
    if isinstance(expected, dict):
        assert type(result) is type(expected), (
            f"{_path}: expected {type(expected).__name__}, got {type(result).__name__}"
        )
        # Same keys; order is not compared (dict equality ignores it, and pytree libraries
        # such as JAX's return dict leaves in sorted-key order).
        assert set(result) == set(expected), (
            f"{_path}: keys {sorted(map(repr, result))} != {sorted(map(repr, expected))}"
        )
        for key in expected:
            assert_same(result[key], expected[key], rtol, atol, f"{_path}[{key!r}]")
        return
    if isinstance(expected, np.ndarray):
        assert isinstance(result, np.ndarray), (
            f"{_path}: expected ndarray, got {type(result).__name__} ({result!r})"
        )
        assert type(result) is type(expected), (
            f"{_path}: expected {type(expected).__name__}, got {type(result).__name__}"
        )
        assert result.dtype == expected.dtype, (
            f"{_path}: dtype {result.dtype} != NumPy's {expected.dtype}"
        )
        assert result.shape == expected.shape, (
            f"{_path}: shape {result.shape} != NumPy's {expected.shape}"
        )
        _compare_values(result, expected, rtol, atol, _path)
        return
    if isinstance(expected, np.generic):
        assert isinstance(result, np.generic), (
            f"{_path}: expected NumPy scalar {type(expected).__name__}, "
            f"got {type(result).__name__} ({result!r})"
        )
        assert result.dtype == expected.dtype, (
            f"{_path}: dtype {result.dtype} != NumPy's {expected.dtype}"
        )
        _compare_values(result, expected, rtol, atol, _path)
        return
    if expected is None:
        assert result is None, f"{_path}: expected None, got {result!r}"
        return
    # Python scalars and anything else: same type and equal value.
    assert type(result) is type(expected), (
        f"{_path}: expected {type(expected).__name__}, got {type(result).__name__}"
    )
    if isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(result), f"{_path}: expected nan, got {result!r}"
    else:
        assert result == expected, f"{_path}: {result!r} != {expected!r}"


def array_leaves(obj) -> list[np.ndarray]:
    """All ndarrays inside nested tuples/lists/dicts, in order."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [leaf for item in obj for leaf in array_leaves(item)]
    if isinstance(obj, dict):
        return [leaf for value in obj.values() for leaf in array_leaves(value)]
    return []


def assert_no_new_aliasing(result, expected, traced_inputs, eager_inputs):
    """Traced outputs may share memory only where NumPy's outputs do.

    NumPy returns fresh arrays from ufuncs; a traced function must not hand back one of the
    caller's arrays, nor two outputs that overlap, unless eager NumPy did the same.
    """
    res = array_leaves(result)
    exp = array_leaves(expected)
    assert len(res) == len(exp)
    t_in = [a for a in traced_inputs if isinstance(a, np.ndarray)]
    e_in = [a for a in eager_inputs if isinstance(a, np.ndarray)]
    for i, (r, e) in enumerate(zip(res, exp, strict=True)):
        if r.size == 0:
            continue
        for ti, ei in zip(t_in, e_in, strict=True):
            if not np.shares_memory(e, ei):
                assert not np.shares_memory(r, ti), f"output {i} aliases an input array"
        for j in range(i + 1, len(res)):
            if res[j].size and not np.shares_memory(e, exp[j]):
                assert not np.shares_memory(r, res[j]), f"outputs {i} and {j} share memory"


def snapshot(args):
    """Copies of the array arguments, to check later that a call did not modify them."""
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]


def assert_unchanged(args, before):
    for i, (a, b) in enumerate(zip(args, before, strict=True)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f"argument {i} was modified")


def numpy_result(fn, *args):
    """Run ``fn`` eagerly with NumPy warnings silenced. Returns (result, exception)."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args), None
    except Exception as exc:  # NumPy rejecting the call is the oracle
        return None, exc


def check_against_numpy(fn, *args, rtol=None, atol=None, calls=2, **options):
    """Trace ``fn`` and compare it with eager NumPy on ``args``.

    Uses ``fallback="raise"`` unless told otherwise, so a tracing failure is a test failure
    rather than a silent eager fallback. If NumPy itself rejects the call, the traced
    function must raise as well (any exception). Otherwise the result must match NumPy
    exactly (see ``assert_same``), the arguments must be left untouched, outputs must not
    alias inputs or each other unless NumPy's do, and a second call (a cache hit) must give
    the same answer without clobbering the first result.

    Returns the traced function (or ``None`` when NumPy rejected the call).
    """
    import tracejit as tj

    options.setdefault("fallback", "raise")
    traced = tj.trace(**options)(fn)
    eager_args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    expected, error = numpy_result(fn, *eager_args)
    if error is not None:
        # NumPy rejects this call: the traced function must raise too (any exception type).
        with pytest.raises(Exception), np.errstate(all="ignore"):  # noqa: B017
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced(*args)
        return None

    before = snapshot(args)
    with np.errstate(all="ignore"):
        result = traced(*args)
    assert_same(result, expected, rtol, atol)
    assert_unchanged(args, before)
    assert_no_new_aliasing(result, expected, args, eager_args)
    info = traced.cache_info()
    assert info.fallbacks == 0, info
    assert info.traces == 1, info

    for _ in range(calls - 1):
        with np.errstate(all="ignore"):
            again = traced(*args)
        assert_same(again, expected, rtol, atol, "cached call result")
        # the first result must not have been overwritten by the second run
        assert_same(result, expected, rtol, atol, "first result after second call")
        for r1, r2 in zip(array_leaves(result), array_leaves(again), strict=True):
            # a view of an argument (x[1:], x.T) is the same memory in both calls, as in NumPy
            views_argument = any(np.shares_memory(r1, a) for a in args
                                 if isinstance(a, np.ndarray))
            if r1.size and not views_argument:
                assert not np.shares_memory(r1, r2), "two calls returned the same buffer"
    if calls > 1:
        info = traced.cache_info()
        assert info.traces == 1, f"cached call re-traced: {info}"
        assert info.hits >= calls - 1, info
    return traced


_NODE_LOCATION = re.compile(r"#\s*(?P<file>\S+?):(?P<line>\d+)\s*$")


def graph_body_lines(graph) -> list[str]:
    """Lines of ``str(graph)`` between the header and the closing brace."""
    lines = [line for line in str(graph).splitlines() if line.strip()]
    assert lines[0].lstrip().startswith("graph "), lines[0]
    assert lines[-1].strip() == "}", lines[-1]
    return lines[1:-1]


def node_locations(graph) -> list[tuple[str, str, int]]:
    """(line text, file, line number) for every line of the graph that carries a location."""
    out = []
    for line in graph_body_lines(graph):
        m = _NODE_LOCATION.search(line)
        if m:
            out.append((line, m.group("file"), int(m.group("line"))))
    return out


def graph_mentions_op(graph, name: str) -> bool:
    """True if some node line of the graph uses op ``name`` (as a whole word)."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w.])")
    for line in graph_body_lines(graph):
        code = line.split("#", 1)[0]
        if code.strip().startswith("return"):
            continue
        if pattern.search(code):
            return True
    return False
