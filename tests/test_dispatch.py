"""The cached call's fast path (dispatch.py): calls shaped like one compiled before run it
without the general path, and every argument that differs in a way the compiled code depends
on (type, shape, dtype, layout, byte order, a static value, a container's members) is told
apart and compiled for, as NumPy's results show."""

from collections import namedtuple

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit import dispatch


def fma(a, b, c):
    return a * b + c


def calls_counted(traced, *args, **kwargs):
    """The result of traced(...) and how it changed cache_info's misses and hits."""
    before = traced.cache_info()
    result = traced(*args, **kwargs)
    after = traced.cache_info()
    return result, after.misses - before.misses, after.hits - before.hits


def test_arrays_and_scalars_take_the_fast_path():
    traced = tj.trace(fma, fallback="raise")
    a, b, c = np.linspace(-1, 1, 7), np.arange(7.0), np.ones(7)
    for args in [(a, b, c), (a, b, 0.5), (a, b, np.float64(0.5)), (a, 2, c)]:
        assert_same(calls_counted(traced, *args)[0], fma(*args))
        result, misses, hits = calls_counted(traced, *args)
        assert_same(result, fma(*args))
        assert (misses, hits) == (0, 1)
    assert traced.cache_info().entries == 4
    # the fast path for (arrays, float) is filed apart from the one for (arrays, array)
    assert len(traced._fast.by_shape[3]) == 4


@pytest.mark.parametrize("change", ["shape", "dtype", "strided", "bool", "0-d",
                                    "big-endian", "subclass", "list"])
def test_what_the_compiled_code_depends_on_misses(change):
    traced = tj.trace(fma, fallback="raise")
    a, b = np.linspace(-1, 1, 6), np.arange(6.0)
    c = 1.5
    traced(a, b, c)
    other = {"shape": (np.linspace(-1, 1, 5), np.arange(5.0), c),
             "dtype": (a.astype(np.float32), b, c),
             "strided": (np.linspace(-1, 1, 12)[::2], b, c),
             "bool": (a, b, True),
             "0-d": (a, b, np.array(1.5)),
             "big-endian": (a.astype(">f8"), b, c),
             "subclass": (np.ma.masked_array(a), b, c),
             "list": ([a], b, c)}[change]
    if change == "subclass":  # NumPy subclasses are not traced: the general path says so
        with pytest.raises(tj.UnsupportedError):
            traced(*other)
        return
    if change == "list":
        with pytest.raises(tj.TracejitError):
            traced(*other)
        return
    for _ in range(2):
        assert_same(traced(*other), fma(*other))
    # a big-endian array is converted on entry, then runs the code compiled for native order
    assert traced.cache_info().misses == (1 if change == "big-endian" else 2)
    assert_same(traced(a, b, c), fma(a, b, c))  # the first signature is still served


def test_pytrees_and_keywords():
    traced = tj.trace(lambda p, scale=1.0: p["a"] * p["b"] + scale, fallback="raise")
    a, b = np.linspace(-1, 1, 5), np.arange(5.0)
    p = {"a": a, "b": b}
    assert_same(traced(p), a * b + 1.0)
    result, misses, hits = calls_counted(traced, {"b": b, "a": a})  # key order does not matter
    assert_same(result, a * b + 1.0)
    assert (misses, hits) == (0, 1)
    traced(p, scale=2.0)
    result, misses, hits = calls_counted(traced, p, scale=3.0)
    assert_same(result, a * b + 3.0)
    assert (misses, hits) == (0, 1)
    result, misses, hits = calls_counted(traced, {"a": a, "b": b, "c": a})  # one more member
    assert_same(result, a * b + 1.0)
    assert misses == 1
    for q in ({"a": a, "c": b}, {"a": a}):  # b missing: NumPy's KeyError
        with pytest.raises(KeyError):
            traced(q)
    result, misses, hits = calls_counted(traced, p)
    assert_same(result, a * b + 1.0)
    assert (misses, hits) == (0, 1)

    Pair = namedtuple("Pair", "x y")
    pair_traced = tj.trace(lambda pairs: pairs[0].x * pairs[1].y, fallback="raise")
    args = [Pair(a, b), Pair(b, a)]
    for _ in range(2):
        assert_same(pair_traced(args), a * a)
    assert pair_traced.cache_info()[:2] == (1, 1)
    assert_same(pair_traced((Pair(a, b), Pair(b, a))), a * a)  # a tuple, not a list
    assert pair_traced.cache_info().misses == 2


def test_static_values_and_scalars_used_as_python_values():
    traced = tj.trace(lambda x, n, mode: x * n if mode == "mul" else x + n,
                      static_argnames="mode", fallback="raise")

    def power_sum(x, k):
        return sum(x ** i for i in range(k))

    x = np.linspace(0, 1, 4)
    for args in [(x, 2.0, "mul"), (x, 2.0, "add"), (x, 3.0, "mul"), (x, 2.0, "add")]:
        assert_same(traced(*args), args[0] * args[1] if args[2] == "mul" else x + args[1])
    assert traced.cache_info().misses == 2
    traced_power = tj.trace(power_sum, fallback="raise")
    for k in (2, 3, 2, 3, 4):
        assert_same(traced_power(x, k), power_sum(x, k))
    assert traced_power.cache_info().entries == 3


weights = np.linspace(0, 1, 4)


def test_captured_arrays_are_read_at_each_call():
    global weights
    traced = tj.trace(lambda x: x * weights, fallback="raise")
    x = np.arange(4.0)
    assert_same(traced(x), x * weights)
    weights[:] = 2.0  # changed in place: read live
    assert_same(traced(x), x * weights)
    weights = np.arange(5.0)  # rebound to another shape: traced again
    x = np.arange(5.0)
    assert_same(traced(x), x * weights)


def test_evicted_entries_leave_the_fast_path():
    traced = tj.trace(lambda a: a + 1.0, max_cache_entries=2, fallback="raise")
    xs = [np.zeros(n) for n in (1, 2, 3)]
    for x in xs:
        traced(x)
    assert not any(e.graph.inputs[0].shape == (1,) for e in _fast_entries(traced))
    assert_same(traced(xs[0]), xs[0] + 1.0)
    assert traced.cache_info().misses == 4


def _fast_entries(traced):
    return [e for p in traced._fast._patterns.values() for e in p.table.values()]


def test_generated_code_is_readable():
    traced = tj.trace(fma, fallback="raise")
    traced(np.ones(3), np.ones(3), 1.0)
    (pattern,) = traced._fast._patterns.values()
    assert "x0.shape, x0.dtype, x0.strides" in pattern.source
    assert pattern.key((np.ones(3), np.ones(3), 1), {}) is dispatch.MISS  # an int, not a float
    special = traced._fast.last.source  # the entry's own lines inline, after the checks
    # the kernel checks the arrays' shapes and layout itself (cpu.py's _input_checks)
    assert "x0.ndim != 1" in special and "x0.shape" not in special
    assert "if k0(x0, x1, x2, o0): return _general(traced, (_a0, _a1, _a2), kwargs)" in special


def shifted_sine(a, b):
    return np.sin(a) * b + 1.0


@pytest.mark.parametrize("order,parallel", [("C", None), ("F", None), ("C", True)])
def test_arrays_the_first_kernel_checks_take_the_general_path_when_they_differ(order, parallel):
    """The fast path leaves the shape and layout of these arrays to the kernel, which runs
    nothing for any it was not compiled for: each such call takes the general path, with
    NumPy's result, and the first arrays' fast path still serves them after."""
    traced = tj.trace(shifted_sine, fallback="raise", parallel=parallel)
    a = np.asarray(np.linspace(-2, 2, 12).reshape(3, 4), order=order)
    b = np.asarray(np.linspace(1, 3, 12).reshape(3, 4), order=order)
    traced(a, b)
    entry = traced._fast.last.entry
    assert entry.checked is not None and entry.checked[1] == {0, 1}
    assert ("prange" in entry.kernels[0].source) == bool(parallel)
    big = np.linspace(-1, 1, 56).reshape(7, 8)
    others = [(a.reshape(4, 3), b.reshape(4, 3)),  # another shape, the same size
              (big[::2, ::2][:3], big[1::2, ::2][:3]),  # strided
              (big[:3, :4], b),  # a view of a larger array: rows apart
              (a[::-1], b[::-1]),  # negative strides
              (np.asfortranarray(a) if order == "C" else np.ascontiguousarray(a), b),
              (a[:, :1], b),  # broadcast along an axis it was not
              (a, b[:1])]
    for other in others[:2] if parallel else others:  # parallel kernels: seconds each
        type(traced).__call__ = entry.fast  # each time from a's own fast path
        assert_same(traced(*other), shifted_sine(*other))
        # served by the general path, by an entry of its own (traced now, or before for
        # other arrays of the same layout class), whose fast path it installed
        assert type(traced).__call__ is not entry.fast
    assert traced.cache_info().misses >= 3
    type(traced).__call__ = entry.fast
    result, misses, hits = calls_counted(traced, a, b)
    assert_same(result, shifted_sine(a, b))
    assert (misses, hits) == (0, 1)
    assert type(traced).__call__ is entry.fast


def test_arguments_read_before_the_first_kernel_keep_their_checks():
    traced = tj.trace(lambda a, b: np.sin(a.T) * b, fallback="raise")  # a view of a first
    a, b = np.ones((3, 2)), np.ones((2, 3))
    traced(a, b)
    entry = traced._fast.last.entry
    assert 0 not in (entry.checked or (0, ()))[1]
    assert "x0.shape != " in traced._fast.last.source
    assert_same(calls_counted(traced, np.ones((2, 3)), np.ones((3, 2)))[0],
                np.sin(np.ones((3, 2))) * np.ones((3, 2)))


def test_the_fast_path_is_the_traced_functions_own_call():
    traced = tj.trace(fma, fallback="raise")
    other = tj.trace(fma, fallback="raise")
    args = np.ones(3), np.ones(3), 1.0
    traced(*args)
    assert type(traced).__call__ is traced._fast.last  # one Python frame per cached call
    assert type(other).__call__ is tj.TracedFunction.__call__  # each function has its own
    with tj.disable():
        assert calls_counted(traced, *args)[1:] == (0, 0)  # the plain function ran


def test_a_traced_function_called_while_tracing_another_is_not_captured_state():
    scale = tj.trace(lambda: np.exp(np.ones(())), fallback="raise")
    outer = tj.trace(lambda x: x * scale(), fallback="raise")
    scale()  # compiled, so its fast path is its __call__ when `outer` is traced
    for n in (1, 2, 3, 2):
        x = np.linspace(0, 1, n)
        assert_same(outer(x), x * np.exp(np.ones(())))
    assert outer.cache_info().traces == 3  # once per shape: nothing in scale's fast path


def sgd_step(w, g):
    w -= 0.5 * g


def test_functions_writing_into_their_arguments():
    traced = tj.trace(sgd_step, fallback="raise")
    g = np.linspace(0, 1, 6)
    w, expected = np.ones(6), np.ones(6)
    for _ in range(3):
        assert traced(w, g) is None
        sgd_step(expected, g)
        np.testing.assert_array_equal(w, expected)
    assert traced.cache_info()[:2] == (2, 1)  # hits, misses: the fast path wrote into w
    x = np.ones(6)  # writes into an argument another one shares memory with: eager, warned
    with pytest.warns(tj.FallbackWarning, match="shares memory"):
        traced(x, x)
    np.testing.assert_array_equal(x, np.full(6, 0.5))
    frozen = np.ones(6)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        traced(frozen, g)


def test_big_endian_arrays_inside_containers_are_converted():
    traced = tj.trace(lambda p: p["a"] * 2.0, fallback="raise")
    big = np.arange(5.0).astype(">f8")
    for _ in range(3):
        assert_same(traced({"a": big}), np.arange(5.0) * 2.0)
    assert not _fast_entries(traced)  # never passed to a kernel as it is


def test_calls_in_any_order_of_shapes_and_layouts_match_numpy():
    """Whichever signature's fast path is installed, a call with other arrays gets NumPy's
    result: a seeded sequence of calls over arrays of several shapes, broadcasts, orders,
    strides and dtypes, each compared with NumPy."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((6, 10))
    pool = [base[:4, :5].copy(), base[:4, :5], base[:4, :10:2], base[:4, :5][::-1],
            np.asfortranarray(base[:4, :5]), base[:4, :5].T.copy().T, base[0, :5].copy(),
            base[:4, :1].copy(), base[:1, :5].copy(), base[:5, :4].copy(),
            base[:4, :5].astype(np.float32), np.zeros((0, 5)), base[:4, ::-2][:, :5]]
    traced = tj.trace(shifted_sine, fallback="raise")
    pairs = rng.integers(len(pool), size=(12, 2))  # 12 signatures, called 40 times in turn
    for i, j in pairs[rng.integers(len(pairs), size=40)]:
        a, b = pool[i], pool[j]
        try:
            want = shifted_sine(a, b)
        except ValueError:  # shapes that do not broadcast: NumPy's error, a ShapeError here
            with pytest.raises(ValueError):
                traced(a, b)
            continue
        assert_same(traced(a, b), want)
