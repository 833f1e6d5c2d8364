"""The error catalogue: every kind of bad input or unsupported use, as a new user would write it.

Each case asserts the exception type, that the message says what is wrong, and that it names the
line of this file that caused it. After any error the caller's arrays are unchanged and the same
traced function still works on good input. TraceError (and UnsupportedError) fall back to eager
NumPy under fallback="warn"/"eager"; ShapeError is the user's bug and always propagates.
"""

import gc
import inspect
import re
import warnings

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj

HERE = "test_errors.py"


def line_of(fn, marker):
    """The line number in this file of the line in fn's source that contains `marker`."""
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if marker in text:
            return start + i
    raise AssertionError(f"{marker!r} not in the source of {fn.__name__}")


def assert_names_line(exc, fn, marker):
    assert f"{HERE}:{line_of(fn, marker)}" in str(exc), str(exc)


def raises_with(exc_type, fn, args, marker, *words, fallback="raise"):
    """Call traced fn on args; assert the error type, its words and its location. Returns the
    traced function for further calls."""
    traced = tj.trace(fn, fallback=fallback)
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    with pytest.raises(exc_type) as info:
        traced(*args)
    message = str(info.value)
    for word in words:
        assert re.search(word, message, re.IGNORECASE), f"{word!r} not in {message!r}"
    assert "numba" not in message.lower()
    if marker is not None:
        assert_names_line(info.value, fn, marker)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    return traced


# ---------------------------------------------------------------------------------------------
# shapes: the user's bug, always raised (never silently run eagerly)

@pytest.mark.parametrize("fallback", ["raise", "warn", "eager"])
def test_operands_that_do_not_broadcast(fallback):
    def f(a, b):
        return a + b  # MARK
    traced = raises_with(tj.ShapeError, f, (np.ones(3), np.ones(4)), "# MARK",
                         r"\(3,\)", r"\(4,\)", "broadcast", fallback=fallback)
    assert issubclass(tj.ShapeError, ValueError)  # code catching NumPy's ValueError still works
    assert_same(traced(np.ones(3), np.ones(3)), np.full(3, 2.0))


def test_bad_axis():
    def f(a):
        return np.transpose(a, (0, 2, 1))  # MARK
    traced = raises_with(tj.ShapeError, f, (np.ones((2, 3)),), "# MARK", "axis 2", "dimension 2")
    assert_same(traced(np.ones((2, 3, 4))), np.transpose(np.ones((2, 3, 4)), (0, 2, 1)))


def test_inplace_update_that_would_change_the_shape_raises_numpys_error():
    def f(a, b):
        c = a * 1
        c += b  # MARK
        return c
    for fallback in ("raise", "warn"):
        raises_with(ValueError, f, (np.ones(3), np.ones((2, 3))), "# MARK", "non-broadcastable",
                    fallback=fallback)


# ---------------------------------------------------------------------------------------------
# unsupported dtypes, functions and arguments: UnsupportedError, eager fallback by default

DTYPE_CASES = {
    "object": np.array([1.0, None], dtype=object),
    "complex": np.ones(3, np.complex128),
    "datetime": np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
    "string": np.array(["a", "b"]),
}


@pytest.mark.parametrize("name", DTYPE_CASES)
def test_unsupported_argument_dtype(name):
    arg = DTYPE_CASES[name]

    def f(a):
        return a
    traced = tj.trace(f, fallback="raise")
    with pytest.raises(tj.UnsupportedError, match=rf"argument 'a' has dtype .*{HERE}:\d+") as info:
        traced(arg)  # MARK
    assert_names_line(info.value, test_unsupported_argument_dtype, "traced(arg)  # MARK")
    assert str(arg.dtype) in str(info.value)
    # the default policy runs it eagerly, warning once with the same reason
    warned = tj.trace(f)
    with pytest.warns(tj.FallbackWarning, match="has dtype"):
        assert warned(arg) is arg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warned(arg) is arg  # decision remembered: no second warning
    assert warned.cache_info().fallbacks == 2
    assert_same(warned(np.ones(2)), np.ones(2))


def test_complex_result_inside_the_function():
    def f(a):
        return np.sqrt(a + 0j)  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "complex")
    traced = tj.trace(f, fallback="eager")
    x = -np.ones(3)
    assert_same(traced(x), np.sqrt(x + 0j))


def test_astype_to_unsupported_dtype():
    def f(a):
        return a.astype(np.complex64)  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "complex64")


def test_unsupported_numpy_function():
    def f(a):
        return np.fft.fft(a)  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(4),), "# MARK", r"numpy\.fft\.fft",
                "not supported")
    traced = tj.trace(f, fallback="eager")
    assert_same(traced(np.arange(4.0)), np.fft.fft(np.arange(4.0)))


def test_unsupported_ufunc_method():
    def f(a):
        return np.add.reduceat(a, [0, 2])  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(4),), "# MARK", r"np\.add\.reduceat")


def test_unsupported_ndarray_method():
    def f(a):
        return a.argpartition(1)  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(4),), "# MARK", r"argpartition is not supported")


def test_ufunc_without_a_loop_for_the_dtypes():
    def f(a):
        return a & a  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "bitwise_and", "float64")


def test_python_int_too_large():
    def f(a):
        return a + 2**70  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "int64")


@pytest.mark.parametrize("kind", ["masked", "matrix"])
def test_ndarray_subclass_is_not_silently_converted(kind):
    arg = np.ma.array([1.0, 2.0], mask=[False, True]) if kind == "masked" \
        else np.matrix([[1.0, 2.0]])

    def f(a):
        return a * 2
    traced = tj.trace(f, fallback="raise")
    with pytest.raises(tj.UnsupportedError, match="plain ndarrays"):
        traced(arg)
    result = tj.trace(f, fallback="eager")(arg)
    assert type(result) is type(arg)  # eager fallback keeps the subclass (and its mask)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(arg * 2))


# ---------------------------------------------------------------------------------------------
# control flow and conversions on traced values: TraceError with a hint

@pytest.mark.parametrize("conversion", [float, int, bool, complex])
def test_python_conversion_of_a_traced_array(conversion):
    def f(a):
        return conversion(a)  # MARK
    raises_with(tj.TraceError, f, (np.ones(()),), "# MARK",
                rf"{conversion.__name__}\(\) of a traced array", "np.where")
    traced = tj.trace(f, fallback="eager")
    assert traced(np.ones(())) == conversion(np.ones(()))


def test_data_dependent_if():
    def f(a):
        if a > 0:  # MARK
            return a
        return -a
    raises_with(tj.TraceError, f, (np.ones(()),), "# MARK", r"bool\(\)", "control flow")
    traced = tj.trace(f, fallback="eager")
    x = -np.ones(())
    assert_same(traced(x), f(x))


def test_data_dependent_while():
    def f(a):
        while a < 10:  # MARK
            a = a * 2
        return a
    raises_with(tj.TraceError, f, (np.ones(()),), "# MARK", r"bool\(\)")


def test_iterating_over_a_long_traced_array():
    def f(a):
        return [x * 2 for x in a]  # MARK
    raises_with(tj.TraceError, f, (np.ones(1000),), "# MARK", "iterating", "1000 rows")
    assert_same(tj.trace(f, fallback="raise")(np.arange(3.0)), f(np.arange(3.0)))


def test_assignment_of_an_array_through_a_mask():
    def f(a):
        b = a * 1
        b[b > 0] = np.array([5.0, 6.0, 7.0])  # MARK
        return b
    raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "boolean mask")
    x = np.ones(3)
    assert_same(tj.trace(f, fallback="eager")(x), np.array([5.0, 6.0, 7.0]))
    np.testing.assert_array_equal(x, np.ones(3))


def test_out_argument_of_another_shape():
    def f(a):
        return np.add(a, 1, out=a[:2])  # MARK
    raises_with(ValueError, f, (np.ones(3),), "# MARK", "non-broadcastable")


def test_in_place_cast_that_numpy_refuses():
    def f(a):
        a += 0.5
    with pytest.raises(TypeError) as eager_error:
        f(np.arange(3))
    for fallback in ("raise", "warn"):
        x = np.arange(3)
        with pytest.raises(type(eager_error.value), match="same_kind"):
            tj.trace(f, fallback=fallback)(x)
        np.testing.assert_array_equal(x, np.arange(3))


# ---------------------------------------------------------------------------------------------
# traced values leaking out of the function

_LEAKED = []


def test_traced_value_stored_on_a_global_then_used():
    def leak(a):
        _LEAKED.append(a * 2)
        return a + 1

    def use(b):
        return _LEAKED[0] + b  # MARK
    _LEAKED.clear()
    leak_traced = tj.trace(leak, fallback="raise")
    assert_same(leak_traced(np.ones(3)), np.full(3, 2.0))
    raises_with(tj.TraceError, use, (np.ones(3),), "# MARK", "after its function returned",
                "global")
    with pytest.raises(tj.TraceError, match="after its function returned"):
        float(_LEAKED[0])  # leaked values give the leak message everywhere
    with pytest.raises(tj.TraceError, match="after its function returned"):
        np.exp(_LEAKED[0])
    _LEAKED.clear()
    gc.collect()


@pytest.mark.parametrize("container", ["set", "object", "function", "generator"])
def test_returning_an_unsupported_container(container):
    def f(a):  # MARK
        b = a * 2
        if container == "set":
            return {b}
        if container == "object":
            return type("Box", (), {"value": b})()
        if container == "function":
            return lambda: b
        return (x for x in [b])
    traced = raises_with(tj.UnsupportedError, f, (np.ones(3),), "# MARK", "returned a value",
                         "tuples, lists and dicts")
    with pytest.raises(tj.UnsupportedError):
        traced(np.ones(3))  # raises again: fallback="raise" remembers no eager decision
    if container == "set":  # eagerly, a set of arrays is NumPy's TypeError (unhashable)
        with pytest.raises(TypeError, match="unhashable"):
            tj.trace(f, fallback="eager")(np.ones(3))
    else:
        assert tj.trace(f, fallback="eager")(np.ones(3)) is not None


# ---------------------------------------------------------------------------------------------
# arguments

def test_too_many_arguments():
    def f(a):
        return a + 1
    traced = tj.trace(f, fallback="raise")
    with pytest.raises(TypeError, match=r"f\(\): too many positional arguments") as info:
        traced(np.ones(3), np.ones(3))  # MARK
    assert_names_line(info.value, test_too_many_arguments, "np.ones(3))  # MARK")
    assert_same(traced(np.ones(3)), np.full(3, 2.0))


def test_missing_and_unexpected_arguments():
    def f(a, b):
        return a + b
    traced = tj.trace(f)
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        traced(np.ones(3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        traced(np.ones(3), np.ones(3), c=np.ones(3))
    assert_same(traced(np.ones(3), b=np.ones(3)), np.full(3, 2.0))
    assert traced.cache_info().fallbacks == 0


@pytest.mark.parametrize("arg", ["text", None, [1.0, "x"]])
def test_non_array_argument_behaves_as_in_numpy(arg):
    # Non-array leaves are static: the function sees them as they are, so NumPy's own error
    # (or result) is what the user gets, never a tracejit internal error.
    def f(a):
        return np.exp(a)
    with pytest.raises(TypeError) as eager_error:
        f(arg)
    with pytest.raises(type(eager_error.value)):
        tj.trace(f, fallback="eager")(arg)


def test_unhashable_static_argument():
    def f(a, opts):
        return a * len(opts)
    traced = tj.trace(f, static_argnames="opts", fallback="raise")
    with pytest.raises(tj.TraceError, match="not hashable") as info:
        traced(np.ones(3), {1, 2})  # MARK
    assert_names_line(info.value, test_unhashable_static_argument, "{1, 2})  # MARK")


def test_non_numeric_value_used_as_an_array():
    def f(a, opts):
        return a * opts["scale"]  # MARK
    raises_with(tj.UnsupportedError, f, (np.ones(3), {"scale": object()}), "# MARK",
                "type object")


def test_python_list_argument_falls_back_to_numpy():
    # A list argument is a container of Python scalars; NumPy converting it with np.asarray
    # cannot be traced, so it runs eagerly (with the reason), giving NumPy's answer.
    def f(a):
        return np.exp(a)
    with pytest.warns(tj.FallbackWarning, match="np.asarray"):
        assert_same(tj.trace(f)([0.0, 1.0]), np.exp([0.0, 1.0]))


def test_bad_options():
    with pytest.raises(ValueError, match="fallback"):
        tj.trace(lambda a: a, fallback="sometimes")
    with pytest.raises(ValueError, match="max_cache_entries"):
        tj.trace(lambda a: a, max_cache_entries=0)
    with pytest.raises(tj.UnsupportedError, match="backend"):
        tj.trace(lambda a: a, backend="tpu")


# ---------------------------------------------------------------------------------------------
# recovery: errors never leave the function or the caller's data in a bad state

def test_function_works_after_each_kind_of_error():
    def f(a, b):
        return np.exp(a) * b
    traced = tj.trace(f, fallback="raise")
    x, y = np.linspace(0, 1, 4), np.arange(4.0)
    before = (x.copy(), y.copy())
    for bad in [(x, np.ones(5)), (x.astype(complex), y), (x,), (x, y, y)]:
        with pytest.raises((tj.TracejitError, TypeError)):
            traced(*bad)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(y, before[1])
    assert_same(traced(x, y), f(x, y))
    assert_same(traced(x, y), f(x, y))
    info = traced.cache_info()
    assert info.hits >= 1 and info.fallbacks == 0, info


def test_nested_traced_function_error_names_the_inner_line():
    @tj.trace(fallback="raise")
    def inner(a):
        return a + np.ones(7)  # MARK

    def outer(a):
        return inner(a) * 2
    raises_with(tj.ShapeError, outer, (np.ones(3),), None, "broadcast")
    with pytest.raises(tj.ShapeError) as info:
        tj.trace(outer, fallback="raise")(np.ones(3))
    assert_names_line(info.value, inner.fn, "# MARK")


@pytest.mark.parametrize("dtype, value", [(np.int32, 2**40), (np.uint8, -1), (np.int8, 300)])
def test_python_int_out_of_bounds_for_the_array_dtype(dtype, value):
    # NumPy 2 raises OverflowError instead of wrapping; a kernel must not wrap silently
    def f(a):
        return a + value  # MARK
    with pytest.raises(OverflowError):
        f(np.arange(3, dtype=dtype))
    raises_with(tj.UnsupportedError, f, (np.arange(3, dtype=dtype),), "# MARK", str(value),
                np.dtype(dtype).name)
    with pytest.warns(tj.FallbackWarning), pytest.raises(OverflowError):
        tj.trace(f)(np.arange(3, dtype=dtype))  # the eager fallback gives NumPy's own error


def test_np_array_of_a_traced_value():
    def f(a):
        return np.asfortranarray(a) + 1  # MARK
    raises_with(tj.TraceError, f, (np.ones(3),), "# MARK", r"np\.asarray\(\) of a traced array")
