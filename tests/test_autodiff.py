"""Reverse-mode autodiff: every op's gradient rule against central finite differences (float64),
broadcasting and axis cases, second derivatives, structure of gradients, stop_gradient/no_grad,
and ordinary losses through the compiled path."""

import numpy as np
import pytest

import tracejit as tj
from tracejit.autodiff import vjp_graph
from tracejit.graph import verify
from tracejit.numpy_api import FUNCTIONS
from tracejit.ops import CONST, INPUT, OPS, emit, nondifferentiable
from tracejit.tracing import Proxy

RTOL, ATOL = 1e-6, 1e-8


def total(v):
    """Sum of all elements, for traced values and arrays alike."""
    if isinstance(v, Proxy):
        return emit("sum", [v], axis=tuple(range(v.ndim)), keepdims=False)
    return np.sum(v)


def op(name, x, **attrs):
    """An op with no NumPy spelling yet, on traced values and arrays alike."""
    return emit(name, [x], **attrs) if isinstance(x, Proxy) else OPS[name].ref(x, **attrs)


def scatter(x, index, shape):
    from tracejit.ops import Index
    return op("scatter", x, index=Index(index), shape=shape)


def take(x, idx, axis):
    return emit("take", [x, idx], axis=axis) if isinstance(x, Proxy) else np.take(x, idx, axis)


def scatter_add(x, idx, axis, shape):
    if isinstance(x, Proxy):
        return emit("scatter_add", [x, idx], axis=axis, shape=shape)
    return OPS["scatter_add"].ref(x, idx, axis=axis, shape=shape)


def numeric_grad(f, args, i, eps=1e-6):
    """Central differences of the scalar f(*args) with respect to the float array args[i]."""
    x = np.array(args[i], dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += eps
        lo[idx] -= eps
        fh = f(*args[:i], hi, *args[i + 1:])
        fl = f(*args[:i], lo, *args[i + 1:])
        g[idx] = (float(fh) - float(fl)) / (2 * eps)
    return g


def check_grads(f, *args, order=1, rtol=RTOL, atol=ATOL):
    """Check tj.grad(f) against central differences for every float argument, and to `order`
    by differentiating a random projection of the gradient again."""
    rng = np.random.default_rng(0)
    for i, x in enumerate(args):
        if np.asarray(x).dtype.kind != "f":
            continue
        analytic = tj.grad(f, argnums=i)(*args)
        assert np.shape(analytic) == np.shape(x)
        assert np.asarray(analytic).dtype == np.asarray(x).dtype
        np.testing.assert_allclose(analytic, numeric_grad(f, args, i), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {i}")
        if order > 1:
            v = rng.standard_normal(np.shape(x))
            check_grads(lambda *a, i=i, v=v: total(tj.grad(f, argnums=i)(*a) * v), *args,
                        order=order - 1, rtol=rtol * 100, atol=atol * 100)


def uniform(shape, lo, hi, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


# ---------------------------------------------------------------------------------------------
# one case per differentiable op: (function of arrays, argument ranges), each range a
# (shape, low, high); binary ops get broadcasting shapes

SAME, ROW, COL = (3, 4), (4,), (3, 1)
CASES = {
    "add": (np.add, [(SAME, -2, 2), (ROW, -2, 2)]),
    "subtract": (np.subtract, [(COL, -2, 2), (SAME, -2, 2)]),
    "multiply": (np.multiply, [(SAME, -2, 2), (COL, -2, 2)]),
    "divide": (np.divide, [(ROW, -2, 2), (SAME, 0.5, 2)]),
    "remainder": (np.remainder, [(SAME, 3.2, 3.8), (ROW, 1.0, 1.05)]),
    "power": (np.power, [(SAME, 0.5, 2), (ROW, -1.5, 2)]),
    "negative": (np.negative, [(SAME, -2, 2)]),
    "positive": (np.positive, [(SAME, -2, 2)]),
    "absolute": (np.absolute, [(SAME, -2, 2)]),
    "square": (np.square, [(SAME, -2, 2)]),
    "sqrt": (np.sqrt, [(SAME, 0.5, 2)]),
    "reciprocal": (np.reciprocal, [(SAME, 0.5, 2)]),
    "cbrt": (np.cbrt, [(SAME, 0.5, 2)]),
    "exp": (np.exp, [(SAME, -2, 2)]),
    "exp2": (np.exp2, [(SAME, -2, 2)]),
    "expm1": (np.expm1, [(SAME, -2, 2)]),
    "log": (np.log, [(SAME, 0.5, 2)]),
    "log2": (np.log2, [(SAME, 0.5, 2)]),
    "log10": (np.log10, [(SAME, 0.5, 2)]),
    "log1p": (np.log1p, [(SAME, -0.5, 2)]),
    "sin": (np.sin, [(SAME, -2, 2)]),
    "cos": (np.cos, [(SAME, -2, 2)]),
    "tan": (np.tan, [(SAME, -1, 1)]),
    "arcsin": (np.arcsin, [(SAME, -0.8, 0.8)]),
    "arccos": (np.arccos, [(SAME, -0.8, 0.8)]),
    "arctan": (np.arctan, [(SAME, -2, 2)]),
    "sinh": (np.sinh, [(SAME, -2, 2)]),
    "cosh": (np.cosh, [(SAME, -2, 2)]),
    "tanh": (np.tanh, [(SAME, -2, 2)]),
    "arcsinh": (np.arcsinh, [(SAME, -2, 2)]),
    "arccosh": (np.arccosh, [(SAME, 1.5, 3)]),
    "arctanh": (np.arctanh, [(SAME, -0.8, 0.8)]),
    "arctan2": (np.arctan2, [(SAME, -2, 2), (COL, 0.5, 2)]),
    "hypot": (np.hypot, [(ROW, 0.5, 2), (SAME, -2, 2)]),
    "logaddexp": (np.logaddexp, [(SAME, -2, 2), (COL, -2, 2)]),
    "logaddexp2": (np.logaddexp2, [(ROW, -2, 2), (SAME, -2, 2)]),
    "deg2rad": (np.deg2rad, [(SAME, -90, 90)]),
    "radians": (np.radians, [(SAME, -90, 90)]),
    "rad2deg": (np.rad2deg, [(SAME, -2, 2)]),
    "degrees": (np.degrees, [(SAME, -2, 2)]),
    "maximum": (np.maximum, [(SAME, -2, 2), (ROW, -2, 2)]),
    "minimum": (np.minimum, [(COL, -2, 2), (SAME, -2, 2)]),
    "fmax": (np.fmax, [(SAME, -2, 2), (ROW, -2, 2)]),
    "fmin": (np.fmin, [(SAME, -2, 2), (COL, -2, 2)]),
    "clip": (np.clip, [(SAME, -2, 2), (ROW, -1, -0.2), (COL, 0.2, 1)]),
    "where": (lambda x, y: np.where(np.arange(4) % 2 == 0, x, y), [(SAME, -2, 2), (COL, -2, 2)]),
    "astype": (lambda x: x.astype(np.float64) * x, [(SAME, -2, 2)]),
    "sum": (lambda x: op("sum", x, axis=(1,), keepdims=False) ** 2, [((2, 3, 4), -2, 2)]),
    "transpose": (lambda x: np.transpose(x, (1, 2, 0)) * np.arange(24.0).reshape(3, 4, 2),
                  [((2, 3, 4), -2, 2)]),
    "reshape": (lambda x: op("reshape", x, shape=(4, 3)) * np.arange(12.0).reshape(4, 3),
                [(SAME, -2, 2)]),
    "broadcast_to": (lambda x: op("broadcast_to", x, shape=(2, 3, 4)) ** 2, [(COL, -2, 2)]),
    # ops of the views, matmul and reductions sections (checked once they are in the table)
    "matmul": (np.matmul, [((2, 3, 4), -1, 1), ((4, 5), -1, 1)]),
    "getitem": (lambda x: x[1:, ::-2, None, 0] ** 2, [((3, 4, 2), -2, 2)]),
    "scatter": (lambda x: scatter(x, ((1, 3, 1), (0, 3, 1)), (4, 3)) ** 2, [((2, 3), -2, 2)]),
    "take": (lambda x: take(x, np.array([2, 0, 2, -1]), 1) ** 2, [(SAME, -2, 2)]),
    "scatter_add": (lambda x: scatter_add(x, np.array([1, 0, 1]), 0, (2, 4)) ** 2,
                    [((3, 4), -2, 2)]),
    "concatenate": (lambda x, y: np.concatenate([x, y * y, x], axis=1), [(SAME, -2, 2),
                                                                          ((3, 2), -2, 2)]),
    "roll": (lambda x: np.roll(x, (1, -2), axis=(0, 1)) * np.arange(12.0).reshape(3, 4),
             [(SAME, -2, 2)]),
    "tile": (lambda x: np.tile(x, (2, 1, 3)) ** 2, [(SAME, -2, 2)]),
    "repeat": (lambda x: np.repeat(x, 3, axis=1) ** 2, [(SAME, -2, 2)]),
    "prod": (lambda x: np.prod(x, axis=1), [(SAME, 0.5, 1.5)]),
    "max": (lambda x: np.max(x, axis=0, keepdims=True), [(SAME, -2, 2)]),
    "min": (lambda x: np.min(x, axis=(0, 1)), [((2, 3, 4), -2, 2)]),
    "cumsum": (lambda x: np.cumsum(x, axis=1), [(SAME, -2, 2)]),
    "accumulate": (lambda x: np.add.accumulate(x, axis=1), [(SAME, -2, 2)]),
    "fabs": (np.fabs, [(SAME, -2, 2)]),
    "sort": (lambda x: np.sort(x, axis=0), [(SAME, -2, 2)]),
    "interp": (lambda x, fp: np.interp(x, np.array([-1.0, 0.0, 0.5, 1.5]), fp),
               [((6,), -2, 2), ((4,), -1, 1)]),
    "solve": (lambda a, b: np.linalg.solve(a + 4 * np.eye(3), b), [((3, 3), -1, 1),
                                                                   ((3, 2), -1, 1)]),
    "inv": (lambda a: np.linalg.inv(a + 4 * np.eye(3)), [((3, 3), -1, 1)]),
    "det": (lambda a: np.linalg.det(a + 4 * np.eye(3)), [((3, 3), -1, 1)]),
    "cholesky": (lambda a: np.linalg.cholesky(a @ a.T + np.eye(3)), [((3, 3), -1, 1)]),
    "heaviside": (lambda x, h: np.heaviside(x, h) * x + np.heaviside(np.array([0.0, -1, 0, 2]), h),
                  [(SAME, -2, 2), (ROW, -2, 2)]),
    "setitem": (lambda x, v: _assigned(x, (slice(1, None), slice(None, None, 2)), v),
                [(SAME, -2, 2), ((2, 2), -2, 2)]),
    # a repeated index keeps the last write; np.add.at adds every occurrence
    "index_put": (lambda x, v: _added_at(_assigned(x, ([2, 0, 2], slice(1, None)), v),
                                         ([0, 0], [1, 1]), v[0, :2]),
                  [(SAME, -2, 2), ((3, 3), -2, 2)]),
}


def _assigned(x, key, v):
    y = x * 1.0
    y[key] = v * v
    return y


def _added_at(x, key, v):
    np.add.at(x, key, v * v)
    return x
# ops whose gradient is zero on purpose, tested by test_zero_gradient_ops
ZERO_GRADIENT = {"stop_gradient"}
# ops whose rule raises UnsupportedError, tested by test_unsupported_gradient
UNSUPPORTED_GRADIENT = {"cumprod"}


def weighted(fn):
    """total(fn(*args) * w) for a fixed random w of the result's shape: every output element
    counts, each with its own weight."""
    def loss(*args):
        y = fn(*args)
        return total(y * np.random.default_rng(1).standard_normal(y.shape))
    return loss


@pytest.mark.parametrize("name", sorted(n for n in CASES if n in OPS))
def test_op_gradient(name):
    fn, ranges = CASES[name]
    args = [uniform(shape, lo, hi, seed=k) for k, (shape, lo, hi) in enumerate(ranges)]
    with tj.disable():  # the reference interpreter runs the backward graph: no compilation
        check_grads(weighted(fn), *args)


def test_every_op_has_a_gradient_rule():
    missing = sorted(n for n, op in OPS.items() if op.kind not in (INPUT, CONST) and op.vjp is None)
    assert not missing, f"ops without a VJP rule (add `vjp=` next to the op): {missing}"


def test_every_differentiable_op_is_checked_numerically():
    untested = sorted(n for n, op in OPS.items()
                      if op.vjp not in (None, nondifferentiable) and n not in CASES
                      and n not in ZERO_GRADIENT and n not in UNSUPPORTED_GRADIENT)
    assert not untested, f"differentiable ops without a case in CASES: {untested}"


SECOND_ORDER = ["multiply", "divide", "power", "exp", "log", "tanh", "sqrt", "sin",
                "maximum", "where", "sum"]


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivative(name):
    fn, ranges = CASES[name]
    args = [uniform(shape, lo, hi, seed=k) for k, (shape, lo, hi) in enumerate(ranges)]
    with tj.disable():
        check_grads(weighted(fn), *args, order=2)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 0.5, -1.5, np.float32(2.0)])
def test_power_with_a_constant_exponent(k):
    x = uniform((5,), 0.5, 2)
    check_grads(lambda a: total(a ** k * np.arange(5.0)), x, order=2)


def test_grad_of_grad_scalar_compiled():
    f = lambda x: np.sin(x) * x ** 3
    d2 = tj.grad(tj.grad(f))
    d3 = tj.grad(tj.grad(tj.grad(f)))
    x = 0.7
    np.testing.assert_allclose(d2(x), -np.sin(x) * x**3 + 6 * np.cos(x) * x**2 + 6 * x * np.sin(x),
                               rtol=1e-12)
    np.testing.assert_allclose(d3(np.array(x)), numeric_grad(d2, [np.array(x)], 0), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# rules at special points (JAX's conventions)

def test_ties_split_the_gradient_evenly():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 0.0, 5.0])
    gx, gy = tj.grad(lambda a, b: total(np.maximum(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.5, 0.0, 1.0])
    g = tj.grad(lambda a: total(np.minimum(a, a)))(x)
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])


def test_abs_at_zero_and_sqrt_at_zero():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(tj.grad(lambda a: total(np.abs(a)))(x), [-1.0, 0.0, 1.0])
    with np.errstate(divide="ignore"):
        g = tj.grad(lambda a: total(np.sqrt(a)))(np.array([0.0, 4.0]))
    np.testing.assert_array_equal(g, [np.inf, 0.25])


@pytest.mark.parametrize("fn", [np.floor, np.ceil, np.trunc, np.rint, np.sign,
                                tj.stop_gradient,
                                lambda x: (x > 0) * 1.0, lambda x: np.isnan(x) + 0.0])
def test_zero_gradient_ops(fn):
    x = np.array([-1.3, 0.4, 2.6])
    g = tj.grad(lambda a: total(fn(a) * a))(x)
    np.testing.assert_array_equal(g, np.asarray(fn(x), dtype=np.float64))


@pytest.mark.parametrize("name", sorted(n for n in UNSUPPORTED_GRADIENT if n in OPS))
def test_unsupported_gradient(name):
    with pytest.raises(tj.UnsupportedError, match="gradient"):
        tj.grad(lambda a: total(getattr(np, name)(a)))(np.ones(3))


def test_prod_with_zeros():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 4.0, 2.0]])
    if "prod" not in OPS:
        pytest.skip("np.prod is not traceable on this branch")
    with tj.disable():
        check_grads(lambda a: total(np.prod(a, axis=1) * np.array([1.0, -2.0, 0.5])), x)


def test_max_ties_share_the_gradient():
    if "max" not in OPS:
        pytest.skip("np.max is not traceable on this branch")
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    g = tj.grad(lambda a: total(np.max(a, axis=1) * np.array([1.0, 4.0])))(x)
    np.testing.assert_array_equal(g, [[0.0, 0.5, 0.5], [2.0, 0.0, 2.0]])


def test_floor_divide_has_zero_gradient():
    x = np.array([-1.3, 0.4, 2.6])
    with tj.disable():  # the interpreter: compiled float floor_divide is a backend matter
        g = tj.grad(lambda a: total(np.floor_divide(a, 0.7) * a))(x)
    np.testing.assert_array_equal(g, np.floor_divide(x, 0.7))


def test_integer_and_bool_arguments_have_no_gradient():
    f = tj.grad(lambda a, n: total(a * n), argnums=1)
    with pytest.raises(tj.TraceError, match="'n' of dtype int64.*float arguments only"):
        f(np.ones(3), np.arange(3))
    with pytest.raises(tj.TraceError, match="dtype bool"):
        tj.grad(lambda a: total(a * 1.0))(np.ones(3, bool))
    # integer arguments that are not differentiated are fine
    np.testing.assert_array_equal(tj.grad(lambda a, n: total(a * n))(np.ones(3), np.arange(3)),
                                  [0.0, 1.0, 2.0])


def test_non_scalar_output_is_an_error():
    with pytest.raises(tj.TraceError, match="one float scalar"):
        tj.grad(lambda a: a * 2)(np.ones(3))


# ---------------------------------------------------------------------------------------------
# structure, dtypes, caching

def test_argnums_and_pytree_structure():
    def loss(params, x):
        ws, b = params["ws"], params["b"]
        h = x
        for w in ws:
            h = np.tanh(h * w)
        return total(h + b)

    params = {"ws": [uniform((3,), 0.5, 1, 1), uniform((3,), 0.5, 1, 2)], "b": np.float64(0.3)}
    x = uniform((2, 3), -1, 1, 3)
    value, (gp, gx) = tj.value_and_grad(loss, argnums=(0, 1))(params, x)
    np.testing.assert_allclose(value, loss(params, x), rtol=1e-12)
    assert set(gp) == {"ws", "b"} and isinstance(gp["ws"], list) and len(gp["ws"]) == 2
    for k in range(2):
        def f_w(w, k=k):
            ws = list(params["ws"])
            ws[k] = w
            return loss({**params, "ws": ws}, x)
        np.testing.assert_allclose(gp["ws"][k], numeric_grad(f_w, [params["ws"][k]], 0),
                                   rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gp["b"], x.size, rtol=1e-12)
    np.testing.assert_allclose(gx, numeric_grad(lambda a: loss(params, a), [x], 0), rtol=RTOL,
                               atol=ATOL)


def test_gradient_dtype_follows_the_argument():
    x = np.linspace(-1, 1, 6, dtype=np.float32)
    g = tj.grad(lambda a: total(np.exp(a) * 2.0))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * np.exp(x), rtol=1e-6)
    g64 = tj.grad(lambda a: total(a.astype(np.float32) * np.float32(3)))(x.astype(np.float64))
    assert g64.dtype == np.float64
    np.testing.assert_array_equal(g64, np.full(6, 3.0))


def test_grad_is_cached_per_signature():
    g = tj.value_and_grad(lambda a, b: total(np.sin(a) * b))
    x = uniform((5,), -1, 1)
    for _ in range(5):
        g(x, x)
    info = g.cache_info()
    assert (info.traces, info.misses, info.hits) == (1, 1, 4)


def test_grad_made_in_a_loop_traces_once():
    def loss(a):
        return total(np.tanh(a) * a)

    x = uniform((4,), -1, 1)
    for _ in range(5):
        tj.value_and_grad(loss)(x)
    assert tj.value_and_grad(loss).cache_info().traces == 1
    assert tj.grad(tj.grad(loss, 0)) is not tj.grad(loss)  # wrappers do not inherit the cache


def test_unused_argument_gets_zeros_and_compiled_matches_interpreter():
    f = lambda a, b: total(a * a + 1.0)
    x, y = uniform((2, 3), -1, 1), uniform((3,), -1, 1)
    ga, gb = tj.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gb, np.zeros(3))
    with tj.disable():
        ra, rb = tj.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(ga, ra, rtol=1e-15)
    np.testing.assert_array_equal(gb, rb)


def test_vjp_graph_verifies_and_prints():
    f = tj.trace(lambda a, b: total(np.exp(a) * b))
    x, y = uniform((4,), -1, 1), uniform((3, 4), -1, 1)
    graph = f.graph(x, y)
    full = verify(vjp_graph(graph, graph.inputs))
    assert len(full.outputs) == 3
    text = str(full)
    assert "exp" in text and "sum" in text
    assert all(n.loc is not None for n in full.nodes if n.op not in ("input", "const"))


# ---------------------------------------------------------------------------------------------
# stop_gradient and no_grad

def test_stop_gradient_and_no_grad():
    def loss(a):
        with tj.no_grad():
            scale = np.exp(a) * 2.0  # a constant for differentiation
        return total(scale * a + tj.stop_gradient(a * a) + a)

    x = uniform((4,), -1, 1)
    np.testing.assert_allclose(tj.grad(loss)(x), np.exp(x) * 2.0 + 1.0, rtol=1e-12)
    np.testing.assert_allclose(tj.trace(loss)(x), loss(x), rtol=1e-12)
    graph = tj.grad(loss).graph(x)
    assert "stop_gradient" not in str(graph)


def test_closure_over_outer_traced_value():
    @tj.trace
    def outer(a, b):
        return tj.grad(lambda w: total(np.sin(w * b)))(a)

    x, y = uniform((3,), -1, 1), uniform((3,), -1, 1)
    np.testing.assert_allclose(outer(x, y), np.cos(x * y) * y, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# ordinary losses (compiled): need reductions and matmul

needs_reductions = pytest.mark.skipif(np.mean not in FUNCTIONS or "matmul" not in OPS,
                                      reason="np.mean / matmul are not traceable on this branch")


@needs_reductions
def test_logistic_regression_loss():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 5)), (rng.random(20) > 0.5).astype(np.float64)

    def loss(w, b):
        z = X @ w + b
        return np.mean(np.log1p(np.exp(-z)) + (1 - y) * z)

    w, b = rng.standard_normal(5), np.array(0.1)
    for i in range(2):
        analytic = tj.grad(loss, argnums=i)(w, b)
        np.testing.assert_allclose(analytic, numeric_grad(loss, [w, b], i), rtol=RTOL)


def mlp(params, x):
    h = x
    for k, (w, b) in enumerate(params):
        h = h @ w + b
        if k < len(params) - 1:
            h = np.maximum(h, 0.0)
    return h


@needs_reductions
def test_mlp_with_a_list_of_weights():
    rng = np.random.default_rng(0)
    sizes = [4, 8, 8, 3]
    params = [(rng.standard_normal((m, n)) * 0.5, rng.standard_normal(n) * 0.1)
              for m, n in zip(sizes, sizes[1:])]
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    loss = lambda p, x, y: 0.5 * np.mean((mlp(p, x) - y) ** 2)
    value, grads = tj.value_and_grad(loss)(params, x, y)
    np.testing.assert_allclose(value, loss(params, x, y), rtol=1e-12)
    for k, (w, b) in enumerate(params):
        for j, arr in enumerate((w, b)):
            def f(a, k=k, j=j):
                p = [list(pair) for pair in params]
                p[k][j] = a
                return loss(p, x, y)
            np.testing.assert_allclose(grads[k][j], numeric_grad(f, [arr], 0), rtol=RTOL,
                                       atol=1e-9)


@needs_reductions
def test_softmax_cross_entropy():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((5, 4)), np.eye(4)[rng.integers(0, 4, 5)]

    def loss(z):
        z = z - np.max(z, axis=1, keepdims=True)
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.mean(np.sum(labels * logp, axis=1))

    np.testing.assert_allclose(tj.grad(loss)(logits), numeric_grad(loss, [logits], 0), rtol=RTOL,
                               atol=1e-9)


@needs_reductions
def test_training_loop_traces_once():
    rng = np.random.default_rng(0)
    sizes = [4, 8, 3]
    params = [[rng.standard_normal((m, n)) * 0.5, np.zeros(n)] for m, n in zip(sizes, sizes[1:])]
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    step = tj.value_and_grad(lambda p, x, y: 0.5 * np.mean((mlp(p, x) - y) ** 2))
    first = None
    for _ in range(100):
        value, grads = step(params, x, y)
        first = value if first is None else first
        params = [[w - 0.1 * gw, b - 0.1 * gb] for (w, b), (gw, gb) in zip(params, grads)]
    assert step.cache_info().traces == 1
    assert value < first


def _mlp_float32(batch=8, width=16, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    params = [(rng.standard_normal((width, width), dtype=f32) * f32(width ** -0.5),
               rng.standard_normal(width, dtype=f32) * f32(0.1)) for _ in range(layers)]
    return (params, rng.standard_normal((batch, width), dtype=f32),
            rng.standard_normal((batch, width), dtype=f32))


def _mlp_grad_by_hand(params, x, y):
    """The value and gradient a NumPy user writes: forward keeping activations, chain rule."""
    acts, pre, h = [x], [], x
    for k, (w, b) in enumerate(params):
        z = h @ w + b
        pre.append(z)
        h = np.maximum(z, 0) if k < len(params) - 1 else z
        acts.append(h)
    diff = h - y
    g = diff * (1.0 / diff.size)
    grads = [None] * len(params)
    for k in reversed(range(len(params))):
        if k < len(params) - 1:
            g = g * (pre[k] > 0)
        grads[k] = (acts[k].T @ g, g.sum(axis=0))
        g = g @ params[k][0].T
    return 0.5 * np.mean(diff ** 2), grads


@needs_reductions
def test_float32_mlp_gradient_matches_numpy_and_runs_no_broadcast_views():
    """The gradient of a mean is a scalar times the cotangent: the plan reads the scalar in a
    kernel, with no broadcast_to or reshape host steps for it."""
    params, x, y = _mlp_float32()
    loss = lambda p, x, y: 0.5 * np.mean((mlp(p, x) - y) ** 2)
    step = tj.value_and_grad(loss)
    value, grads = step(params, x, y)
    want_value, want = _mlp_grad_by_hand(params, x, y)
    assert isinstance(value, np.float32)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    for (gw, gb), (ww, wb) in zip(grads, want):
        for got, ref in ((gw, ww), (gb, wb)):
            assert got.dtype == np.float32 and got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-6)
    report = step.explain(params, x, y)
    hosted = [s.node.op for s in report.executable.steps if hasattr(s, "node")]
    assert "broadcast_to" not in hosted and "reshape" not in hosted, hosted


def test_broadcast_views_read_directly_only_where_the_shape_is_kept():
    """An elementwise op reads what a broadcast view shows when broadcasting gives its shape
    anyway; a view that makes the shape stays."""
    v, m = np.arange(4.0), np.ones((3, 4))

    def f(v, m):
        s = np.sum(v)
        return (np.broadcast_to(v, (3, 4)) * 2.0, m * np.broadcast_to(v, (3, 4)),
                m - np.broadcast_to(np.reshape(s, (1, 1)), (3, 4)))

    traced = tj.trace(f, fallback="raise")
    got = traced(v, m)
    for g, w in zip(got, f(v, m)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    graph = traced.graph(v, m)
    assert sum(n.op == "broadcast_to" for n in graph.nodes) == 1  # the first one makes (3, 4)
