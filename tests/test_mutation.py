"""Mutation with NumPy's semantics: in-place operators, item and slice assignment, out=, copyto,
on arguments, local arrays and views of either. After each call the arguments and the results
hold exactly what eager NumPy leaves."""

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj


def sgd(w, g, lr):
    w -= lr * g


def momentum(w, m, g, lr=0.1, beta=0.9):
    m *= beta
    m += g
    w -= lr * m
    return w.sum()


def adam(w, m, v, g, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    w -= lr * m_hat / (np.sqrt(v_hat) + eps)


def jacobi(u):
    for _ in range(4):
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
    return u


def gauss_seidel_rows(u):
    for i in range(1, u.shape[0] - 1):  # each row reads the row updated just before it
        u[i] = 0.5 * (u[i - 1] + u[i + 1])


def shift_right(x):
    x[1:] = x[:-1]
    return x.sum()


def normalise(p):
    p /= p.sum(axis=-1, keepdims=True)


def allocate_and_fill(x):
    out = np.empty_like(x)
    out[0] = x[0]
    out[1:] = x[1:] - x[:-1]
    return out


def clip_negative(x):
    y = x.copy()
    y[y < 0] = 0.0
    return y


def through_a_view(x):
    v = x[::2]
    v *= 3
    x.T[0] = -1
    return x


def ufunc_out(a, b):
    np.multiply(a, 2, out=b)
    np.add(b, a, out=b)
    np.copyto(a, b - 1)
    return b


def local_alias(x):
    y = x * 2
    head = y[:3]
    y += 1  # head sees the update
    head[0] = 100  # and y sees this one
    return y, head


def fill_row(x):
    y = np.zeros_like(x)
    y.fill(2.0)
    y[0, :] = x[0]
    return y * x


def read_before_a_write(x, y):
    t = x * 2  # fused with `t + y` below, so the kernel runs after the write: it must see old x
    x[0] = 5.0
    return t + y


def write_after_a_view_is_read(x):
    head = x[:2].sum()
    x[1:] = x[1:] * 0.5
    x[0] = head
    return x


def index_put_in_place(x, idx):
    y = x * 1.5
    y[idx] = 0.0
    np.add.at(y, idx, 1.0)
    return y


CASES = {
    "sgd": (sgd, lambda r, n: (r.random(n), r.random(n), 0.1)),
    "momentum": (momentum, lambda r, n: (r.random(n), r.random(n), r.random(n))),
    "adam": (adam, lambda r, n: (r.random(n).astype(np.float32), np.zeros(n, np.float32),
                                 np.zeros(n, np.float32), r.random(n).astype(np.float32), 3)),
    "jacobi": (jacobi, lambda r, n: (r.random((int(n ** 0.5), int(n ** 0.5))),)),
    "gauss-seidel rows": (gauss_seidel_rows, lambda r, n: (r.random((6, n // 6)),)),
    "shift": (shift_right, lambda r, n: (r.random(n),)),
    "normalise rows": (normalise, lambda r, n: (r.random((n // 8, 8)),)),
    "allocate and fill": (allocate_and_fill, lambda r, n: (r.random(n),)),
    "masked assignment": (clip_negative, lambda r, n: (r.standard_normal(n),)),
    "through a view": (through_a_view, lambda r, n: (r.random((n // 4, 4)),)),
    "out= and copyto": (ufunc_out, lambda r, n: (r.random(n), r.random(n))),
    "local alias": (local_alias, lambda r, n: (r.random(n),)),
    "fill": (fill_row, lambda r, n: (r.random((4, n // 4)),)),
    "read before a write": (read_before_a_write, lambda r, n: (r.random(n), r.random(n))),
    "write after a view is read": (write_after_a_view_is_read, lambda r, n: (r.random(n),)),
    "index arrays in place": (index_put_in_place,
                              lambda r, n: (r.random(n), r.integers(-n, n, 50))),
}


def _run_both(fn, args):
    eager = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    traced_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    expected = fn(*eager)
    traced = tj.trace(fn, fallback="raise")
    result = traced(*traced_args)
    return traced, traced_args, eager, result, expected


def _check(fn, args):
    traced, traced_args, eager, result, expected = _run_both(fn, args)
    assert_same(result, expected)
    for t, e in zip(traced_args, eager):
        if isinstance(e, np.ndarray):
            assert_same(t, e)
    for r, t in zip(result if isinstance(result, tuple) else (result,), traced_args):
        if isinstance(r, np.ndarray) and any(r is e for e in eager):
            assert r is t  # an argument returned is the caller's own array
    return traced


@pytest.mark.parametrize("n", [64, 2_000_000], ids=["small", "parallel"])
@pytest.mark.parametrize("name", CASES)
def test_mutating_code_matches_numpy(name, n):
    fn, make = CASES[name]
    args = make(np.random.default_rng(0), n)
    traced = _check(fn, args)
    again = make(np.random.default_rng(1), n)
    _check(fn, again)
    assert traced.cache_info().fallbacks == 0


def test_returned_argument_is_the_callers_array():
    def step(w, g):
        w -= 0.5 * g
        return w
    w, g = np.ones(4), np.arange(4.0)
    result = tj.trace(step, fallback="raise")(w, g)
    assert result is w
    assert_same(w, 1 - 0.5 * np.arange(4.0))


def test_arguments_sharing_memory_run_eagerly():
    def f(a, b):
        a += b
    x = np.arange(6.0)
    traced = tj.trace(f)
    traced(np.zeros(3), np.ones(3))
    with pytest.warns(tj.FallbackWarning, match="shares memory"):
        traced(x[:3], x[1:4])
    y = np.arange(6.0)
    f(y[:3], y[1:4])
    assert_same(x, y)


def test_read_only_argument_raises_before_anything_is_written():
    def f(a, b):
        b += 1
        a += 1
    a, b = np.zeros(3), np.zeros(3)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        tj.trace(f, fallback="raise")(a, b)
    assert_same(b, np.zeros(3))


def test_int_array_in_place_with_float_raises_numpys_error():
    def f(a):
        a += 0.5
    with pytest.raises(TypeError) as eager:
        f(np.arange(3))
    x = np.arange(3)
    with pytest.raises(type(eager.value)):
        tj.trace(f, fallback="raise")(x)
    assert_same(x, np.arange(3))


def test_gradient_through_local_mutation_equals_the_pure_rewrite():
    def mutating(x):
        y = x * 1.0
        y[1:] += y[:-1] * 2
        y[0] = x[2] ** 2
        return np.sum(y * y)

    def pure(x):
        y = np.concatenate([x[2:3] ** 2, x[1:] + x[:-1] * 2])
        return np.sum(y * y)

    x = np.array([0.5, -1.0, 2.0, 3.0])
    assert_same(tj.grad(mutating)(x), tj.grad(pure)(x))
    assert_same(tj.trace(mutating, fallback="raise")(x), pure(x))


def test_a_reshape_copies_or_views_as_numpys_does():
    def f(x):
        y = x.T.reshape(-1)  # NumPy copies here (x.T is not contiguous)
        y[0] = 5
        z = x[1].reshape(3, 1)  # a view: writes reach x
        z[0] = -1
        return y
    x, want = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3)
    assert_same(tj.trace(f, fallback="raise")(x), f(want))
    assert_same(x, want)


def test_writes_to_an_ambiguous_reshape_fall_back():
    def f(x):
        y = x.reshape(-1)  # a view or a copy by the argument's strides, unknown while tracing
        y[0] = 5
        return x
    x = np.arange(12.0).reshape(2, 6)[:, ::2]
    with pytest.warns(tj.FallbackWarning, match="reshaped"):
        result = tj.trace(f)(x)
    assert_same(result, f(np.arange(12.0).reshape(2, 6)[:, ::2]))


def _writes(traced, *args):
    text = str(traced.explain(*args))
    return text.split("-- writes:")[1].split("-- run:")[0]


def test_a_time_loop_updates_the_callers_array_in_place():
    u = np.random.default_rng(0).random((32, 32))
    want = jacobi(u.copy())
    traced = tj.trace(jacobi, fallback="raise")
    address = u.ctypes.data
    result = traced(u)
    assert_same(u, want)
    assert result is u and u.ctypes.data == address
    writes = _writes(traced, u)  # each step's kernel writes the interior of the next grid
    assert writes.count("its value's kernel stores straight into the slice") == 4
    assert "argument u written: holds the result, no copy" in writes


def test_a_slice_written_from_its_own_base_goes_to_a_buffer_of_its_own():
    def f(x):
        y = np.concatenate([x, x])  # NumPy's own result, outside the plan
        y[0] = -x[0]
        y[1:] = y[1:] * 2  # reads y while writing it: NumPy evaluates the right side first
        return y
    x = np.arange(4.0)
    traced = tj.trace(f, fallback="raise")
    assert_same(traced(x), f(x))
    assert_same(traced(x + 1), f(x + 1))
    lines = _writes(traced, x).split("\n")
    assert all("in a buffer of its own, the rest copied from" in line for line in lines[1:3])


def test_local_writes_are_in_place_over_their_base():
    def f(x):
        y = x * 2
        y[0] = -1.0
        y[1:3] = x[:2]
        return y
    x = np.arange(6.0)
    traced = tj.trace(f, fallback="raise")
    assert_same(traced(x), f(x))
    writes = _writes(traced, x)
    assert writes.count("in place over") == 2 and "into a copy" not in writes
