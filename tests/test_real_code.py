"""Ordinary NumPy code as users write it: never a raw internal error, never a stale or frozen
value, never a wrong branch. Each case traces and equals eager NumPy, or falls back with a
warning that names the line."""

import dataclasses
import logging
import warnings
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj

HERE = "test_real_code.py"

# -- failures that are not tracejit's own ---------------------------------------------------


def _writes_traced_value_into_numpy_array(x):
    y = np.array([0.0, 0.0, 0.0])  # a NumPy array made from a list stays NumPy's
    y[0] = x[0] * 2  # MARK-SETITEM
    y[1:] = 0
    return y


def test_traced_value_written_into_a_numpy_array_falls_back_naming_the_line():
    x = np.array([1.5, 2.0, 3.0])
    traced = tj.trace(_writes_traced_value_into_numpy_array)
    with pytest.warns(tj.FallbackWarning, match=rf"{HERE}:\d+") as record:
        result = traced(x)
    assert "MARK-SETITEM" in open(__file__).read().splitlines()[
        int(str(record[0].message).rsplit(f"{HERE}:", 1)[1].split(")")[0]) - 1]
    assert_same(result, _writes_traced_value_into_numpy_array(x))
    with pytest.raises(tj.TraceError):
        tj.trace(_writes_traced_value_into_numpy_array, fallback="raise")(x)


def test_internal_failure_is_an_internal_error_chained_to_its_cause(monkeypatch):
    import tracejit.api as api

    def broken_build(*args, **kwargs):
        raise KeyError("a bug inside the compiler")

    monkeypatch.setattr(api, "build", broken_build)
    f = lambda x: x * 2  # noqa: E731
    with pytest.raises(tj.InternalError, match="failed internally.*KeyError") as info:
        tj.trace(f, fallback="raise")(np.ones(3))
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.warns(tj.FallbackWarning, match="failed internally.*report"):
        result = tj.trace(f)(np.ones(3))
    assert_same(result, np.full(3, 2.0))


def test_an_error_eager_numpy_raises_too_reaches_the_user_as_numpys():
    def f(x):
        if x.shape[0] != 4:
            raise ValueError("need four values")
        return x + 1

    for fallback in ("raise", "warn", "eager"):
        with pytest.raises(ValueError, match="need four values"):
            tj.trace(f, fallback=fallback)(np.ones(3))

    def g(x):
        return np.ones(3).reshape(x.shape)  # NumPy's own ValueError while tracing

    with pytest.raises(ValueError, match="reshape"):
        tj.trace(g)(np.ones(4))


def _allocates_and_fills(x):
    y = np.empty(3)
    y[0] = x[0] * 2
    y[1:] = 0
    return y


def test_array_made_with_np_empty_is_traced_and_filled():
    check_against_numpy(_allocates_and_fills, np.array([1.5, 2.0, 3.0]))


def test_constructors_called_by_compiled_code_are_numpys():
    # Generator.random allocates with np.empty from Cython: it must get a real array
    def f(x, rng):
        return x + rng.random(x.shape)
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    assert_same(tj.trace(f, fallback="raise")(np.zeros(3), a), f(np.zeros(3), b))


# -- Python protocols on traced values -------------------------------------------------------


@pytest.mark.parametrize("fn", [
    lambda x: round(x.sum(), 2),
    lambda x: round(x.mean() * 3.14159, 1),
    lambda x: divmod(x, 2.0),
    lambda x: divmod(7.5, x),
    lambda x: np.divmod(x, 0.75),
    lambda x: x.copy(order="F"),
    lambda x: x.copy(order="K") + 1,
    lambda x: x.conj() * x.real + x.itemsize + x.nbytes,
    lambda x: x * 2 if isinstance(x, np.ndarray) else x * 3,
    lambda x: x.sum() * 2 if isinstance(x.sum(), np.floating) else x,
    lambda x: x.sum() if not isinstance(x.sum(), np.ndarray) else x,
], ids=["round-sum", "round-mean", "divmod", "rdivmod", "np.divmod", "copy-F", "copy-K",
        "conj-real-itemsize", "isinstance-ndarray", "isinstance-floating", "scalar-not-array"])
def test_python_protocols_behave_as_on_arrays(fn):
    check_against_numpy(fn, np.array([1.25, -2.5, 3.75, 0.5]))


def test_round_of_an_array_raises_numpys_type_error():
    with pytest.raises(TypeError, match="__round__"):
        tj.trace(lambda x: round(x), fallback="raise")(np.ones(3))


def test_in_place_methods_fall_back():
    def f(x):
        y = x * 2
        y.partition(1)  # MARK
        return y
    with pytest.warns(tj.FallbackWarning, match="partition writes in place"):
        result = tj.trace(f)(np.array([3.0, 1.0, 2.0]))
    assert_same(result, np.array([2.0, 4.0, 6.0]))


@pytest.mark.parametrize("order", [">f8", ">i4", "<f8"])
def test_byte_order_is_converted_on_entry(order):
    x = np.arange(6).astype(order)
    check_against_numpy(lambda a: a * 2 + 1, x)
    check_against_numpy(lambda a: np.sum(a * a), x)


# -- containers as arguments -----------------------------------------------------------------


class Params(NamedTuple):
    W: np.ndarray
    b: np.ndarray


@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray
    scale: float = 1.0


def test_namedtuple_dataclass_and_namespace_arguments_are_traced():
    W, b, x = np.eye(3) * 2, np.arange(3.0), np.ones((4, 3))
    check_against_numpy(lambda p, x: x @ p.W + p.b, Params(W, b), x)
    check_against_numpy(lambda p, x: (x @ p.W + p.b) * p.scale, Layer(W, b, 0.5), x)
    check_against_numpy(lambda p, x: x @ p.W - p.b, SimpleNamespace(W=W, b=b), x)
    # containers come back as they went in
    check_against_numpy(lambda p: Params(p.W * 2, p.b + 1), Params(W, b))
    made = tj.trace(lambda p: Layer(p.W.T, p.b * 2, p.scale * 2), fallback="raise")(
        Layer(W, b, 3.0))
    assert type(made) is Layer
    assert_same((made.W, made.b, made.scale), (W.T, b * 2, 6.0))
    traced = tj.trace(lambda p, x: x @ p.W + p.b, fallback="raise")
    traced(Params(W, b), x)
    traced(Params(W + 1, b), x)
    assert traced.cache_info().traces == 1  # the arrays inside are traced, not static


def test_gradient_keeps_the_namedtuple_structure():
    p, x = Params(np.eye(2), np.zeros(2)), np.ones((3, 2))
    g = tj.grad(lambda p, x: np.sum((x @ p.W + p.b) ** 2))(p, x)
    assert type(g) is Params
    assert_same(g.W, 2 * x.T @ (x @ p.W + p.b))
    assert_same(g.b, 2 * np.sum(x @ p.W + p.b, axis=0))


# -- captured state is read live --------------------------------------------------------------

W_GLOBAL = np.eye(2)
LR = 0.5


def test_global_array_updated_in_place_or_rebound_is_seen():
    global W_GLOBAL
    W_GLOBAL = np.eye(2)
    f = tj.trace(lambda x: x @ W_GLOBAL, fallback="raise")
    x = np.ones(2)
    assert_same(f(x), np.ones(2))
    W_GLOBAL *= 10
    assert_same(f(x), np.full(2, 10.0))
    W_GLOBAL = np.full((2, 2), 3.0)  # rebound, same signature: read, no new trace
    assert_same(f(x), np.full(2, 6.0))
    assert f.cache_info().traces == 1
    W_GLOBAL = np.ones((2, 3))  # another shape: traced again
    assert_same(f(x), np.full(3, 2.0))


def test_global_scalar_rebound_retraces():
    global LR
    LR = 0.5
    f = tj.trace(lambda x: x * LR, fallback="raise")
    assert_same(f(np.ones(2)), np.full(2, 0.5))
    LR = 2.0
    assert_same(f(np.ones(2)), np.full(2, 2.0))
    assert f.cache_info().traces == 2
    assert_same(f(np.ones(2)), np.full(2, 2.0))
    assert f.cache_info().traces == 2


def test_closure_and_attributes_are_live():
    def make():
        scale = np.array([1.0, 2.0])

        @tj.trace(fallback="raise")
        def f(x):
            return x * scale
        return f, scale

    f, scale = make()
    assert_same(f(np.ones(2)), np.array([1.0, 2.0]))
    scale[:] = 5
    assert_same(f(np.ones(2)), np.full(2, 5.0))

    class Model:
        def __init__(self):
            self.W = np.eye(2)
            self.cfg = SimpleNamespace(lr=0.1)

        @tj.trace(fallback="raise")
        def step(self, x):
            return x @ self.W.T * self.cfg.lr  # W.T is made with NumPy before it meets x

    m = Model()
    x = np.ones(2)
    assert_same(m.step(x), x @ m.W.T * 0.1)
    m.W[0, 1] = 5.0
    assert_same(m.step(x), x @ m.W.T * 0.1)
    m.cfg.lr = 1.0
    assert_same(m.step(x), x @ m.W.T)
    m.W = np.full((2, 2), 2.0)
    assert_same(m.step(x), x @ m.W.T)


def test_helper_functions_globals_are_live():
    def helper(x):
        return x + W_GLOBAL[0]

    global W_GLOBAL
    W_GLOBAL = np.zeros((2, 2))
    f = tj.trace(lambda x: helper(x) * 2, fallback="raise")
    assert_same(f(np.ones(2)), np.full(2, 2.0))
    W_GLOBAL[0] = 1.0
    assert_same(f(np.ones(2)), np.full(2, 4.0))


def test_captured_arrays_are_graph_inputs_not_constants():
    global W_GLOBAL
    W_GLOBAL = np.eye(3)
    f = tj.trace(lambda x: x @ W_GLOBAL, fallback="raise")
    text = str(f.graph(np.ones(3)))
    assert "W_GLOBAL: f64[3,3]" in text.splitlines()[0], text


COUNTER = np.zeros(1)


def _counts_calls(x):
    COUNTER[0] += 1  # a write into captured state, made at every eager call
    return x * 2


def test_writing_into_captured_state_falls_back():
    COUNTER[0] = 0
    traced = tj.trace(_counts_calls)
    with pytest.warns(tj.FallbackWarning, match="writes into the captured array 'COUNTER'"):
        traced(np.ones(2))
    traced(np.ones(2))
    assert COUNTER[0] == 2  # one write per call, as eagerly: the trace's write was undone


# -- np.random draws at every call --------------------------------------------------------------


def _noise(x):
    return x + np.random.standard_normal(x.shape) * 0.1 + np.random.rand()


def _dropout(x, rng, p=0.25):
    keep = rng.random(x.shape) >= p
    return np.where(keep, x / (1 - p), 0.0) + rng.normal(0.0, 1.0, size=x.shape[-1])


RNG = np.random.default_rng(7)


def _global_generator(x):
    return x * RNG.uniform(-1, 1, size=x.shape) + RNG.integers(0, 10)


@pytest.mark.parametrize("n", [5, 2_000_000], ids=["small", "large"])
def test_np_random_draws_the_eager_stream_at_every_call(n):
    x = np.linspace(0, 1, n)
    traced = tj.trace(_noise, fallback="raise")
    np.random.seed(3)
    got = [traced(x) for _ in range(3)]
    np.random.seed(3)
    want = [_noise(x) for _ in range(3)]
    for g, w in zip(got, want):
        assert_same(g, w)
    assert not np.array_equal(got[0], got[1])


def test_generator_argument_and_global_generator_draw_the_eager_stream():
    global RNG
    x = np.ones((3, 4))
    traced = tj.trace(_dropout, fallback="raise")
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(3):
        assert_same(traced(x, a), _dropout(x, b))
    traced = tj.trace(_global_generator, fallback="raise")
    RNG = np.random.default_rng(9)
    got = [traced(x) for _ in range(2)]
    RNG = np.random.default_rng(9)
    want = [_global_generator(x) for _ in range(2)]
    for g, w in zip(got, want):
        assert_same(g, w)


def test_a_draw_tracing_cannot_see_falls_back_instead_of_freezing():
    class Noisy:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def __call__(self, x):
            return x + self.rng.random(x.shape)

    noisy = Noisy()
    traced = tj.trace(lambda x: noisy(x))
    with pytest.warns(tj.FallbackWarning, match="random numbers"):
        first = traced(np.zeros(3))
    second = traced(np.zeros(3))
    assert not np.array_equal(first, second)


def test_random_with_a_traced_argument_falls_back_naming_the_line():
    with pytest.warns(tj.FallbackWarning, match=rf"normal with a traced argument.*{HERE}"):
        tj.trace(lambda x: np.random.normal(x, 1.0))(np.zeros(3))


# -- Python scalars used as Python values become static -----------------------------------------


def test_scalar_used_as_a_python_value_is_traced_by_value(caplog):
    def euler(x, steps, dt):
        for _ in range(steps):
            x = x + dt * (-x)
        return x * float(steps)

    traced = tj.trace(euler, fallback="raise")
    for steps in (3, 5, 3):
        assert_same(traced(np.ones(4), steps, 0.1), euler(np.ones(4), steps, 0.1))
    info = traced.cache_info()
    assert info.traces == 3 and info.entries == 2, info  # 3 -> re-traced once by value; 5; hit
    # dt stays traced by type: a new dt reuses the entry
    assert_same(traced(np.ones(4), 5, 0.2), euler(np.ones(4), 5, 0.2))
    assert traced.cache_info().traces == 3


def test_value_scalars_are_logged(monkeypatch, caplog):
    monkeypatch.setenv("TRACEJIT_LOG", "recompiles")
    traced = tj.trace(lambda x, k: x * 2 if k > 0 else x * 3, fallback="raise")
    with caplog.at_level(logging.INFO, logger="tracejit"):
        assert_same(traced(np.ones(2), 1), np.full(2, 2.0))
        assert_same(traced(np.ones(2), -1), np.full(2, 3.0))
    text = caplog.text
    assert "uses k as a Python value" in text and "int -1 (static)" in text, text


def test_no_warning_escapes_for_everyday_code():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = tj.trace(lambda x: np.sum((x - x.mean()) ** 2))
        x = np.random.default_rng(0).random(1_000_000)
        np.testing.assert_allclose(f(x), np.sum((x - x.mean()) ** 2), rtol=1e-10)
