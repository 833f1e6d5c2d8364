"""The differential check for one fuzz program instance.

The program runs four ways and all must agree with eager NumPy: compiled fused and compiled
unfused (one kernel per op) with the backend choosing serial or parallel loops by work, compiled
fused with `parallel=True` forced (prange loops and chunked reductions even for 0, 1 or a few
elements), and the graph through the reference interpreter. Agreement means the same result
structure, array-vs-scalar types, dtypes and shapes, values to tight tolerance with NaN and inf
where NumPy has them, and arguments left as NumPy leaves them.

Large instances (`make_instance(..., large=True)`, above the backend's parallel threshold) run
the same way; there the automatic choice is parallel too (but for cheap elementwise kernels on
narrow dtypes, cpu.PARALLEL_BYTES), and reductions combine per-chunk
partial results in another order than NumPy's pairwise sums, so float values that went through a
reduction are compared with a looser tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np
from conftest import assert_same, snapshot

import tracejit as tj
from tracejit import pytree

# NumPy (or Python, for Python scalars) raises on these for some values only; a compiled kernel
# cannot raise per element and follows NumPy's C loops instead (x ** -n is 0 for |x| > 1,
# x // 0 is 0). Such instances are skipped and counted.
VALUE_DEPENDENT_ERRORS = ("Integers to negative integer powers are not allowed",
                          "division by zero", "modulo by zero", "Numerical result out of range",
                          "negative shift count")


def run_eager(fn, args):
    """(result, exception, warning messages) of running fn on copies of args."""
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        try:
            result, error = fn(*copies), None
        except Exception as e:  # NumPy rejecting the call is part of the oracle
            result, error = None, e
    return result, error, [str(w.message) for w in caught], copies


def undefined_cast(messages):
    """Float -> int casts of NaN, inf or out-of-range values are undefined in NumPy (C casts)."""
    return any("invalid value encountered in cast" in m for m in messages)


# (fuse, parallel) of each compiled run; parallel=None lets the backend choose by work
CONFIGS = ((True, None), (False, None), (True, True))


def check(prog, args, stats=None, large=False):
    """Compare compiled (fused, unfused, forced parallel) and interpreted runs with NumPy."""
    fn = prog.function()
    expected, error, messages, eager_args = run_eager(fn, args)
    if error is not None:
        if any(text in str(error) for text in VALUE_DEPENDENT_ERRORS):
            _count(stats, "skipped_value_dependent")
            return
        for fuse, parallel in CONFIGS:
            traced = tj.trace(fn, fuse=fuse, fallback="raise", parallel=parallel)
            try:
                with np.errstate(all="ignore"):
                    traced(*args)
            except Exception:
                continue
            raise AssertionError(f"NumPy raised {error!r} but the compiled program returned "
                                 f"(fuse={fuse}, parallel={parallel})")
        _count(stats, "numpy_errors")
        return
    values_defined = not undefined_cast(messages)
    if prog.min_float_bytes == 2:
        # float16 is computed in float32 inside kernels and rounded once (by design), so values
        # can differ from NumPy's per-op float16 rounding; types and shapes must still match
        values_defined = False
        _count(stats, "float16_types_only")
    # libms differ by an ulp in float32 transcendental functions; that ulp can surface in a
    # float64 result computed from a float32 intermediate
    tol = {} if prog.min_float_bytes == 8 else {"rtol": 1e-5, "atol": 1e-6}
    if large and prog.reduces:
        # a sum of a million terms in another order: cancellation leaves relative errors well
        # above one rounding (the README promises float32 sums to about 1e-6, not bit for bit)
        tol = {"rtol": 1e-9, "atol": 1e-9} if prog.min_float_bytes == 8 else \
            {"rtol": 1e-3, "atol": 1e-3}
        _count(stats, "large_reductions_loose_tolerance")
    for fuse, parallel in CONFIGS:
        traced = tj.trace(fn, fuse=fuse, fallback="raise", parallel=parallel)
        before = snapshot(args)
        with np.errstate(all="ignore"):
            result = traced(*args)
        _compare(result, expected, values_defined,
                 f"compiled (fuse={fuse}, parallel={parallel})", tol)
        for i, (a, b, e) in enumerate(zip(args, before, eager_args)):
            if isinstance(a, np.ndarray):  # arguments end as eager NumPy leaves them
                np.testing.assert_array_equal(a, e if values_defined else b,
                                              err_msg=f"argument {i} after the call")
        info = traced.cache_info()
        assert (info.traces, info.misses, info.fallbacks) == (1, 1, 0), info
        if parallel is not None:
            continue  # the same graph as the fused run; only its kernels differ
        graph = traced.graph(*args)  # the fused graph is rewritten (unit-axis views)
        tj.verify(graph)
        with np.errstate(all="ignore"):
            interpreted = tj.interpret(graph, *pytree.flatten((tuple(args), {}))[0])
        _compare_loose(interpreted, expected, values_defined, tol)
    _count(stats, "checked")
    if large:
        _count(stats, "checked_large")


def _count(stats, key):
    if stats is not None:
        stats[key] = stats.get(key, 0) + 1


def _compare(result, expected, values_defined, what, tol):
    try:
        if values_defined:
            assert_same(result, expected, **tol)
        else:
            _compare_types(result, expected)
    except AssertionError as e:
        raise AssertionError(f"{what} differs from NumPy: {e}") from None


def _compare_types(result, expected):
    r_leaves, r_tree = pytree.flatten(result)
    e_leaves, e_tree = pytree.flatten(expected)
    assert r_tree == e_tree, (r_tree, e_tree)
    for r, e in zip(r_leaves, e_leaves):
        assert type(r) is type(e), (type(r), type(e))
        assert np.shape(r) == np.shape(e) and np.asarray(r).dtype == np.asarray(e).dtype


def _compare_loose(result, expected, values_defined, tol):
    """The interpreter may return 0-d arrays where NumPy returns scalars; otherwise the same."""
    r_leaves, r_tree = pytree.flatten(result)
    e_leaves, e_tree = pytree.flatten(expected)
    assert r_tree == e_tree, (r_tree, e_tree)
    for r, e in zip(r_leaves, e_leaves):
        r, e = np.asarray(r), np.asarray(e)
        assert (r.shape, r.dtype) == (e.shape, e.dtype), ("interpreter", r.shape, r.dtype,
                                                           e.shape, e.dtype)
        if values_defined:
            assert_same(r, e, _path="interpreter result", **tol)
