"""The symbolic API: Variable, Constant, compile and gradients on the traced IR, the bridges to
traced functions, and forward-only memory plans. Results are compared with NumPy."""

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit import Constant, Variable, compile

ONES = np.ones(10)
TWOS = np.ones(10) * 2


# -- the seed's three blocks ----------------------------------------------------------------------

def test_seed_block_1_forward():
    A = Variable('A'); B = Variable('B'); C = B * A; D = C + Constant(1)  # noqa: E702
    f = compile(D); d = f(A=np.ones(10), B=np.ones(10)*2)  # noqa: E702, E226
    assert_same(d, np.ones(10) * 2 * np.ones(10) + 1)


def test_seed_block_2_gradients_with_implicit_head():
    A = Variable('A'); B = Variable('B'); C = B * A; D = C + Constant(1)  # noqa: E702
    gA, gB = D.grad(wrt=[A, B]); f = compile([gA, gB])  # noqa: E702
    grad_a, grad_b = f(A=np.ones(10), B=np.ones(10)*2)  # noqa: E226
    assert_same(grad_a, TWOS)  # d(sum(B * A + 1))/dA = B
    assert_same(grad_b, ONES)


def test_seed_block_3_wrong_names_are_a_clear_error():
    A = Variable('A'); B = Variable('B'); D = B * A + Constant(1)  # noqa: E702
    f = compile(D)
    with pytest.raises(TypeError, match=r"no variable 'a'; did you mean 'A'\? "
                                         r"\(at test_symbolic.py:\d+\)"):
        f(a=np.ones(10), b=np.ones(10)*2)  # noqa: E226
    with pytest.raises(TypeError, match=r"no variable 'Bx'; did you mean 'B'\?"):
        f(A=ONES, Bx=ONES)
    with pytest.raises(TypeError, match=r"no variable 'zzz'; the variables are A, B"):
        f(A=ONES, B=ONES, zzz=ONES)
    with pytest.raises(TypeError, match=r"no value for variable 'B'"):
        f(A=ONES)
    with pytest.raises(TypeError, match=r"keyword arguments .*f\(A=\.\.\., B=\.\.\.\)"):
        f(ONES, TWOS)
    assert f.cache_info().misses == 0  # nothing was traced for the bad calls


# -- operations on symbols go through the tracer's dispatch -------------------------------------

X = np.linspace(-1.0, 1.5, 12).reshape(3, 4)
Y = np.linspace(0.5, 2.0, 12).reshape(4, 3)


@pytest.mark.parametrize("build, expected", [
    (lambda A, B: np.exp(A), lambda x, y: np.exp(x)),
    (lambda A, B: A @ B, lambda x, y: x @ y),
    (lambda A, B: A.sum(axis=1), lambda x, y: x.sum(axis=1)),
    (lambda A, B: A.T * 2 - B, lambda x, y: x.T * 2 - y),
    (lambda A, B: 1 - abs(-A[1:, ::2]) ** 2, lambda x, y: 1 - abs(-x[1:, ::2]) ** 2),
    (lambda A, B: np.where(A > 0, A, 0.0), lambda x, y: np.where(x > 0, x, 0.0)),
    (lambda A, B: np.concatenate([A, B.T]).max(axis=0), lambda x, y: np.concatenate([x, y.T])
     .max(axis=0)),
    (lambda A, B: (A.reshape(-1) / 3, np.maximum(A, B.T).astype(np.float32)),
     lambda x, y: (x.reshape(-1) / 3, np.maximum(x, y.T).astype(np.float32))),
    (lambda A, B: {"m": np.mean(A), "s": np.add.reduce(B, axis=0)},
     lambda x, y: {"m": np.mean(x), "s": np.add.reduce(y, axis=0)}),
])
def test_operations_follow_numpy(build, expected):
    A, B = Variable("A"), Variable("B")
    f = compile(build(A, B))
    assert_same(f(**{name: {"A": X, "B": Y}[name] for name in f.variables}), expected(X, Y))


def test_constants_and_dtypes():
    A = Variable("A")
    k = np.array([1.0, 2.0, 3.0], np.float32)
    f = compile([A * Constant(k), A + Constant(0.5), Constant(k)])
    a = np.arange(3, dtype=np.float32)
    assert_same(f(A=a), [a * k, a + 0.5, k])  # a Python scalar constant is weak, as in NumPy
    k[0] = 100.0  # the constant is a copy
    assert_same(f(A=a)[0], a * np.array([1.0, 2.0, 3.0], np.float32))


def test_cached_per_signature_and_inspectable():
    A, B = Variable("A"), Variable("B")
    D = np.exp(B * A) + 1  # the IR names this line
    f = compile(D)
    assert_same(f(A=ONES, B=TWOS), np.exp(TWOS * ONES) + 1)
    f(A=TWOS, B=ONES)
    assert f.cache_info().hits == 1 and f.cache_info().misses == 1
    x32 = np.ones((2, 3), np.float32)
    assert_same(f(A=x32, B=x32), np.exp(x32 * x32) + 1)
    assert f.cache_info().entries == 2
    text = str(f.graph(A=ONES, B=ONES))
    assert "exp" in text and f"test_symbolic.py:{_line_of('D = np.exp(B * A) + 1')}" in text
    report = f.explain(A=ONES, B=ONES)
    assert len(report.kernels) == 1 and report.memory is not None
    assert f.cache_info().misses == 2  # graph and explain found the compiled entry


def _line_of(text):
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def test_lists_are_arrays_and_python_scalars_stay_weak():
    x, k = Variable("x"), Variable("k")
    f = compile(x * k)
    x32 = np.ones(3, np.float32)
    assert_same(f(x=[1.5, 2.5], k=2), np.asarray([1.5, 2.5]) * 2)
    assert_same(f(x=x32, k=2.0), x32 * 2.0)  # float32: a Python float is weak
    assert_same(f(x=x32, k=np.float64(2.0)), x32 * np.float64(2.0))


def test_declared_shape_and_dtype_are_checked():
    A = Variable("A", shape=(None, 4), dtype=np.float64)
    f = compile(A * 2)
    assert_same(f(A=X), X * 2)
    with pytest.raises(tj.ShapeError, match=r"'A' has shape \(\*, 4\).*\(4, 3\).*test_symbolic"):
        f(A=Y)
    with pytest.raises(TypeError, match=r"'A' has dtype float64.*float32"):
        f(A=X.astype(np.float32))
    with pytest.raises(ValueError, match="identifier"):
        Variable("not a name")
    with pytest.raises(ValueError, match="two different variables"):
        compile(Variable("Z") + Variable("Z"))


def test_symbols_have_no_values():
    A = Variable("A")
    with pytest.raises(tj.TraceError, match=r"bool\(\) of a symbol.*test_symbolic.py"):
        if A > 0:
            pass
    with pytest.raises(tj.TraceError, match="shape of a symbol is known only"):
        (A + 1).shape  # noqa: B018
    with pytest.raises(tj.TraceError, match="np.asarray"):
        np.asarray(A)
    with pytest.raises(TypeError, match="immutable"):
        A[0] = 1.0
    with pytest.raises(TypeError, match="immutable"):
        np.add(A, 1, out=np.zeros(3))


def test_errors_name_the_line_that_built_the_symbol():
    A, B = Variable("A"), Variable("B")
    bad = A + B  # operands that do not broadcast
    f = compile(bad * 2)
    with pytest.raises(tj.ShapeError, match=rf"test_symbolic.py:{_line_of('bad = A + B')}"):
        f(A=np.ones(3), B=np.ones(4))


# -- gradients ------------------------------------------------------------------------------------

def test_gradients_of_a_scalar_and_second_order():
    x, w = Variable("x"), Variable("w")
    loss = np.sum(np.tanh(x @ w) ** 2)
    gw = tj.gradients(loss, wrt=w)
    xv, wv = X, Y
    t = np.tanh(xv @ wv)
    expected = xv.T @ (2 * t * (1 - t ** 2))
    f = compile([loss, gw])
    value, grad = f(x=xv, w=wv)
    assert_same(value, np.sum(t ** 2))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    # the gradient of a gradient: d/dv sum(v ** 3) = 3 v ** 2, then its sum's gradient 6 v
    v = Variable("v")
    (g1,) = np.sum(v ** 3).grad(wrt=[v])
    g2 = tj.gradients(np.sum(g1), wrt=[v])[0]
    assert_same(compile(g2)(v=ONES * 1.5), 6 * ONES * 1.5)


def test_gradient_with_a_head_and_of_unused_variables():
    A, B, Z = Variable("A"), Variable("B"), Variable("Z")
    gA, gZ = (A * B).grad(wrt=[A, Z], head=Constant(np.arange(10.0)))
    grad_a, grad_z = compile([gA, gZ])(A=ONES, B=TWOS, Z=np.ones(3))
    assert_same(grad_a, TWOS * np.arange(10.0))
    assert_same(grad_z, np.zeros(3))


def test_partial_derivatives_when_variables_share_an_array():
    A, B = Variable("A"), Variable("B")
    gA, gB = (A * A * B).grad(wrt=[A, B])
    x = np.linspace(1, 2, 10)
    grad_a, grad_b = compile([gA, gB])(A=x, B=x)
    assert_same(grad_a, 2 * x * x)
    assert_same(grad_b, x * x)


def test_gradient_of_an_integer_variable_is_refused():
    n = Variable("n")
    (g,) = (n * 2.0).grad(wrt=[n])
    with pytest.raises(tj.TraceError, match="float values only"):
        compile(g)(n=np.arange(3))


# -- bridges --------------------------------------------------------------------------------------

def mlp(x, w, b):
    h = np.maximum(x @ w + b, 0)
    return {"out": h.sum(axis=1), "h": tj.stop_gradient(h)}


def test_traced_function_as_symbols():
    f = tj.trace(mlp)
    b = np.linspace(-0.2, 0.2, 3)
    symbols = f.symbolic(X, Y, b)
    assert sorted(symbols) == ["h", "out"]
    g = compile(symbols)
    assert g.variables == ("x", "w", "b")
    assert_same(g(x=X, w=Y, b=b), mlp(X, Y, b))
    # differentiate the symbols; stop_gradient is kept
    gw, gb = tj.gradients(symbols["out"], wrt=["w", "b"])  # variables by name
    grad_w, grad_b = compile([gw, gb])(x=X, w=Y, b=b)
    expected_w, expected_b = tj.grad(lambda w, b: mlp(X, w, b)["out"].sum(), (0, 1))(Y, b)
    np.testing.assert_allclose(grad_w, expected_w, rtol=1e-12)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-12)
    (gh,) = tj.gradients(np.sum(symbols["h"]), wrt=["w"])
    assert_same(compile(gh)(x=X, w=Y, b=b), np.zeros_like(Y))
    with pytest.raises(TypeError, match="no variable 'ww'; did you mean 'w'"):
        tj.gradients(symbols["out"], wrt=["ww"])


def test_compiled_symbols_inside_traced_code_and_differentiated():
    A, B = Variable("A"), Variable("B")
    inner = compile(np.sum(np.sin(A) * B))

    @tj.trace
    def outer(x, y):
        return inner(A=x * 2, B=y) + 1

    assert_same(outer(ONES, TWOS), np.sum(np.sin(ONES * 2) * TWOS) + 1)
    assert outer.cache_info().fallbacks == 0
    grad = tj.grad(lambda x, y: inner(A=x * 2, B=y))(ONES, TWOS)
    np.testing.assert_allclose(grad, 2 * np.cos(ONES * 2) * TWOS, rtol=1e-12)


def test_disable_runs_the_program_with_the_interpreter():
    A = Variable("A")
    (g,) = np.sum(A ** 2).grad(wrt=[A])
    f = compile([A * 3, g])
    with tj.disable():
        assert_same(f(A=ONES), [ONES * 3, ONES * 2])
    assert f.cache_info().misses == 0


# -- memory: forward-only plans -------------------------------------------------------------------

def _network(n):
    h, w = Variable("h"), Variable("w")
    out = h
    for _ in range(n):
        out = np.maximum(out @ w, 0)
    return h, w, out


@pytest.mark.parametrize("n", [8])
@pytest.mark.filterwarnings("ignore::tracejit.CompileTimeWarning")  # unrolled on purpose
def test_forward_only_network_in_two_buffers(n):
    h, w, out = _network(n)
    hv = np.linspace(-1, 1, 12).reshape(3, 4)
    wv = np.linspace(-0.5, 0.8, 16).reshape(4, 4)
    expected = hv
    for _ in range(n):
        expected = np.maximum(expected @ wv, 0)
    forward = compile(out)
    assert_same(forward(h=hv, w=wv), expected)
    mem = forward.explain(h=hv, w=wv).memory
    assert mem.arena_bytes + mem.output_bytes <= 2 * hv.nbytes
    assert mem.naive_bytes >= n * hv.nbytes
    # with the gradient, the backward pass keeps what it needs: more than two buffers
    gw = tj.gradients(np.sum(out), wrt=w)
    both = compile([out, gw])
    value, _ = both(h=hv, w=wv)
    assert_same(value, expected)
    kept = both.explain(h=hv, w=wv).memory
    assert kept.arena_bytes + kept.output_bytes > 2 * hv.nbytes + wv.nbytes
