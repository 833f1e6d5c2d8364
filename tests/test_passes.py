"""Graph passes: simplification keeps results, CSE shares, folding folds, DCE drops; the
fusion schedule is convex and ordered; compiled results equal the reference interpreter."""

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj
from tracejit.graph import Graph, Node, verify
from tracejit.interpret import interpret
from tracejit.passes.fusion import Kernel, schedule
from tracejit.passes.simplify import simplify
from tracejit.passes.views import fuse_unit_views


def _graph(fn, *args):
    """The raw traced graph (before simplification) for fn on args."""
    traced = tj.trace(fn, fallback="raise")
    leaves, treedef, static = traced._flatten(args, {})
    return traced._trace(leaves, treedef, static)


def _ops(graph):
    return [n.op for n in graph.nodes if n.op not in ("input", "const")]


def test_cse_shares_identical_subexpressions():
    x = np.arange(5.0)
    raw = _graph(lambda a: np.exp(a) + np.exp(a), x)
    assert _ops(raw).count("exp") == 2
    simple = verify(simplify(raw))
    assert _ops(simple).count("exp") == 1
    assert_same(interpret(simple, x), np.exp(x) + np.exp(x))


def test_cse_keeps_distinct_constants_apart():
    x = np.arange(5.0)
    simple = simplify(_graph(lambda a: (a + 0.0, a + -0.0, a + 1), x))
    assert _ops(simple).count("add") == 3
    assert_same(interpret(simple, x), (x + 0.0, x + -0.0, x + 1))


def test_constant_folding_of_scalar_subexpressions():
    # NumPy computes scalar-only expressions in user code before tracing sees them, so build
    # the graph directly, as a rewrite (autodiff) would: a * (f32(2) * sqrt(f32(9)))
    a = Node("input", (), {"name": "a", "index": 0}, (4,), np.float32)
    two = Node("const", (), {"value": np.asarray(np.float32(2))}, (), np.float32)
    nine = Node("const", (), {"value": np.asarray(np.float32(9))}, (), np.float32)
    root = Node("sqrt", (nine,), {}, (), np.float32)
    scale = Node("multiply", (two, root), {}, (), np.float32)
    out = Node("multiply", (a, scale), {}, (4,), np.float32)
    raw = verify(Graph("f", [a], [out], meta={"out_alias": (0,)}))
    simple = verify(simplify(raw))
    assert _ops(simple) == ["multiply"]
    (folded,) = [n for n in simple.nodes if n.op == "const"]
    assert folded.dtype == np.float32 and folded.attrs["value"] == np.float32(6)
    x = np.arange(4, dtype=np.float32)
    assert_same(interpret(simple, x), x * (np.float32(2) * np.sqrt(np.float32(9))))


def test_dead_code_is_dropped():
    def f(a):
        np.sin(a) * 3  # computed and thrown away
        return a + 1

    x = np.ones(3)
    graph = _graph(f, x)
    assert _ops(graph) == ["add"]


def test_simplify_keeps_results_on_a_mixed_graph():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4).astype(np.float32)

    def f(a, b):
        c = a * b + np.float64(2.0) * np.float64(0.5)
        d = np.where(c > 0, c, -c) + np.where(c > 0, c, -c)
        return d, c.T, (a > b) & (b < 1)

    raw = _graph(f, a, b)
    simple = verify(simplify(raw))
    assert len(simple.nodes) < len(raw.nodes)
    assert_same(interpret(simple, a, b), interpret(raw, a, b))
    assert_same(interpret(simple, a, b), f(a, b))


def test_interpreter_keeps_python_scalars_weak():
    x = np.arange(3, dtype=np.float32)
    graph = _graph(lambda a, s: a * (s * 2.0), x, 0.5)
    result = interpret(graph, x, 0.5)
    assert result.dtype == np.float32
    assert_same(result, x * (0.5 * 2.0))


def _reachable_without(start, stop_set, users):
    """Nodes reachable from start's users without passing through stop_set."""
    seen, stack = set(), [u for u in users[start] if u not in stop_set]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(u for u in users[n] if u not in stop_set)
    return seen


def _check_schedule(graph, steps):
    """Every node computed once, before its users; every kernel convex."""
    users = graph.users()
    done = {n for n in graph.nodes if n.op in ("input", "const")}
    for step in steps:
        nodes = step.nodes if isinstance(step, Kernel) else [step.node]
        for n in nodes:
            for a in n.args:
                assert a in done or a in nodes, f"{n.op} runs before its input {a.op}"
        done.update(nodes)
        if isinstance(step, Kernel):
            members = set(step.nodes)
            for m in step.nodes:
                outside = _reachable_without(m, members, users)
                assert not any(a in outside for x in step.nodes for a in x.args), \
                    "a path leaves the kernel and comes back"
    assert done >= set(graph.nodes)


@pytest.mark.parametrize("fuse", [True, False])
def test_schedule_is_ordered_and_convex(fuse):
    x = np.ones((3, 4))

    def f(a):
        b = np.exp(a)
        c = b.T          # a host step between two elementwise regions
        d = c * 2.0
        return b + d.T, d

    graph = simplify(_graph(f, x))
    steps = schedule(graph, fuse)
    _check_schedule(graph, steps)
    kernels = [s for s in steps if isinstance(s, Kernel)]
    if fuse:
        # exp | mul (after the transpose) | add: the add cannot join exp's kernel through the view
        assert len(kernels) == 3
    else:
        assert all(len(k.nodes) == 1 for k in kernels)


def test_fusion_does_not_merge_through_an_outside_path():
    x = np.ones(4)

    def f(a):
        b = a + 1.0
        c = b.T  # a view: a host step, outside every kernel (on 1-d it is the identity)
        return b * 2.0 + c

    graph = simplify(_graph(f, x))
    steps = schedule(graph, True)
    _check_schedule(graph, steps)
    traced = tj.trace(f, fallback="raise")
    assert_same(traced(x), f(x))


@pytest.mark.parametrize("fuse", [True, False])
def test_compiled_matches_interpreter(fuse):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal(5)
    n = rng.integers(-5, 5, size=(4, 1)).astype(np.int32)

    def f(a, b, n):
        return np.tanh(a) * b + n, (n // 2) % 3, np.maximum(a, n) > b

    traced = tj.trace(f, fuse=fuse, fallback="raise")
    graph = traced.graph(a, b, n)
    verify(graph)
    # tanh runs in float32 (1-ulp differences between libm and NumPy's SIMD loops) and
    # feeds a float64 result: compare at float32 precision
    assert_same(traced(a, b, n), interpret(graph, a, b, n), rtol=1e-6, atol=1e-6)
    assert_same(traced(a, b, n), f(a, b, n), rtol=1e-6, atol=1e-6)


def test_cse_does_not_make_distinct_results_share_memory():
    a = np.arange(6.0).reshape(2, 3)
    separate = tj.trace(lambda a: (-a, (-a).T), fallback="raise")
    r1, r2 = separate(a)
    assert not np.shares_memory(r1, r2)  # eager NumPy computes -a twice
    assert_same((r1, r2), (-a, (-a).T))

    def shared(a):
        y = -a
        return y, y.T  # eager NumPy returns a view of the first result

    r1, r2 = tj.trace(shared, fallback="raise")(a)
    assert np.shares_memory(r1, r2)
    assert_same((r1, r2), shared(a))


def _minmax_scale(x):
    return (x - x.min()) / (x.max() - x.min())


def _row_stats(x):
    return x.mean(-1), x.std(-1), x.max(-1)


def _column_range(x):
    return x.min(0), x.max(0)


def _sum_and_double(x):
    return x.sum(), x * 2


@pytest.mark.parametrize("fn, kernels", [(_minmax_scale, 2), (_row_stats, 1), (_column_range, 1),
                                         (_sum_and_double, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_reductions_of_one_input_share_a_kernel(fn, kernels, dtype):
    # independent reductions (and elementwise results) that read the same array in the same
    # domain are one kernel, so the array is read once
    x = (np.arange(35, dtype=np.float64).reshape(5, 7) * 1.7 % 11 - 4).astype(dtype)
    check_against_numpy(fn, x, rtol=1e-6 if dtype == np.float32 else None)
    check_against_numpy(fn, x[::-1, ::2], rtol=1e-6 if dtype == np.float32 else None)
    assert len(tj.trace(fn).explain(x).kernels) == kernels


def _views(graph):
    return [n.op for n in graph.nodes if n.op in ("getitem", "reshape", "transpose")]


def test_unit_axis_views_of_reductions_become_keepdims():
    x = np.random.default_rng(3).standard_normal((4, 6))

    def f(a):
        e = np.exp(a - a.max(1)[:, None])
        return e / np.expand_dims(e.sum(-1), -1) + (a.mean(1) * 2).reshape(-1, 1)

    raw = simplify(_graph(f, x))
    assert _views(raw) == ["getitem", "reshape", "reshape"]
    rewritten = verify(fuse_unit_views(raw))
    assert _views(rewritten) == []
    assert all(n.attrs["keepdims"] for n in rewritten.nodes if n.op in ("max", "sum"))
    assert_same(interpret(rewritten, x), f(x))
    assert _views(tj.trace(f, fuse=False).graph(x)) == _views(raw)  # the unfused baseline


@pytest.mark.parametrize("f", [
    lambda a: a.sum(1)[:, None],                # returned: the view is the result
    lambda a: a - a.sum(1)[None, :].T,          # a transpose moves axes, even unit ones
    lambda a: a - a.sum(1)[::-1, None],         # a reversing slice moves elements
    lambda a: a - a.sum(0).reshape(-1, 1),      # keepdims would be a row, the view is a column
    lambda a: (a * 2)[:, 0][:, None] + a,       # no reduction: nothing to fuse with
], ids=["returned", "transpose", "reversed", "column", "elementwise"])
def test_other_views_are_left_alone(f):
    x = np.random.default_rng(4).standard_normal((5, 5))  # square: wrong axes still broadcast
    raw = simplify(_graph(f, x))
    rewritten = verify(fuse_unit_views(raw))
    assert _views(rewritten) == _views(raw)
    assert_same(interpret(rewritten, x), f(x))


def test_leading_unit_axes_are_dropped_not_made_keepdims():
    x = np.random.default_rng(4).standard_normal((5, 5))
    f = lambda a: a.sum(1)[None, :] + a  # noqa: E731 (a row: broadcasting adds the axis anyway)
    rewritten = verify(fuse_unit_views(simplify(_graph(f, x))))
    assert _views(rewritten) == []
    assert [n.attrs["keepdims"] for n in rewritten.nodes if n.op == "sum"] == [False]
    assert_same(interpret(rewritten, x), f(x))


def test_rewrite_keeps_returned_values_and_their_memory():
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)

    def f(a):
        s = a.sum(-1)
        return s, s[:, None], a - s[:, None], s * 2

    rewritten = verify(fuse_unit_views(simplify(_graph(f, x))))
    sums = [n for n in rewritten.nodes if n.op == "sum"]
    assert len(sums) == 1 and sums[0].attrs["keepdims"]  # computed once, read through views
    assert_same(interpret(rewritten, x), f(x), rtol=1e-6)
    r = tj.trace(f, fallback="raise")(x)
    assert_same(r, f(x), rtol=1e-6)
    assert np.shares_memory(r[0], r[1]) and not np.shares_memory(r[0], r[3])


def test_gradients_through_unit_axis_views_match_keepdims():
    x = np.round(np.random.default_rng(6).standard_normal((4, 7)) * 2)  # ties in the max

    def with_views(a):
        e = np.exp(a - a.max(1)[:, None])
        return np.sum(e / e.sum(1).reshape(-1, 1) * a) + np.sum(a.max(-1) ** 2)

    def with_keepdims(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return np.sum(e / e.sum(1, keepdims=True) * a) + np.sum(a.max(-1) ** 2)

    fused = tj.grad(with_views)
    unfused = tj.trace(fused.fn, fuse=False, fallback="raise")  # the graph autodiff gave
    assert _views(fused.graph(x)).count("getitem") < _views(unfused.graph(x)).count("getitem")
    assert_same(fused(x), unfused(x), rtol=1e-12)
    assert_same(fused(x), tj.grad(with_keepdims)(x), rtol=1e-12)
