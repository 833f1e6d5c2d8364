"""Memory planning: liveness, buffer sharing, in-place kernels, the per-thread arena.

`check_plan` states what a legal plan is; it runs on hand-written and random graphs (plan only,
no compilation), and traced functions are compared with NumPy with their arena in use.
"""

import threading
import tracemalloc

import numpy as np
import pytest
from conftest import assert_no_new_aliasing, assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit.executor import RECYCLE_BYTES, build
from tracejit.graph import Graph, Node
from tracejit.ops import ELEMENTWISE, OPS, Op, resolve
from tracejit.passes.fusion import Kernel, schedule
from tracejit.passes.memory import plan_memory, stored_itemsize, stored_nbytes
from tracejit.passes.simplify import simplify


def graph_of(fn, *args):
    """The simplified graph of fn for these arguments, without compiling anything."""
    tf = tj.trace(fn)
    leaves, treedef, static = tf._flatten(args, {})
    return simplify(tf._trace(leaves, treedef, static))


def planned(fn, *args, fuse=True):
    graph = graph_of(fn, *args)
    steps = schedule(graph, fuse)
    plan = plan_memory(graph, steps)
    check_plan(graph, steps, plan)
    return graph, steps, plan


def check_plan(graph, steps, plan):
    """The plan's guarantees, checked from the schedule alone."""
    step_at = dict(enumerate(steps))
    over = dict(plan.in_place)
    for node in plan.assignment:
        assert node.op not in ("input", "const"), "a graph input or constant got a buffer"
    for buf in plan.storage:
        for v in buf.values:
            assert plan.assignment[v] == buf.index
            assert stored_nbytes(v) <= buf.nbytes
        # values in one buffer never live at the same time, except a kernel writing over an
        # input that dies at that kernel
        for a, b in zip(buf.values, buf.values[1:]):
            a_def, a_last = plan.live[a]
            b_def, _ = plan.live[b]
            if over.get(b) is a:
                assert a_last == b_def
            else:
                assert a_last < b_def, f"{a} and {b} share buffer {buf.index} while both live"
        if buf.returned is not None:
            assert buf.values[-1] is buf.returned, "a value written after the returned one"
            assert buf.nbytes == stored_nbytes(buf.returned)
            assert plan.live[buf.returned][1] == float("inf")
    for out, inp in plan.in_place:
        k = plan.live[out][0]
        step = step_at[k]
        assert isinstance(step, Kernel) and step.kind == ELEMENTWISE
        assert inp in step.inputs and out in step.outputs
        assert inp.shape == out.shape == step.shape
        assert stored_itemsize(inp) == stored_itemsize(out)
        assert plan.live[inp][1] == k, "overwrote an input that is read later"
        # nothing else this kernel reads views the overwritten memory
        for a in step.inputs:
            base = a
            while base not in plan.assignment and base.args and OPS[base.op].kind == "view":
                base = base.args[0]
            assert a is inp or base is not inp, "overwrote an input the kernel also reads as a view"
    assert plan.buffers == len(plan.storage)


def arena_views(fn, *args):
    return fn.explain(*args).executable.arena.views()


def assert_no_alias(result, arena, *inputs):
    outs = [r for r in (result if isinstance(result, tuple) else (result,))
            if isinstance(r, np.ndarray) and r.size]
    for i, r in enumerate(outs):
        for v in arena:
            assert not np.shares_memory(r, v), "a result aliases the arena"
        for x in inputs:
            assert not np.shares_memory(r, x), "a result aliases an input"
        for s in outs[i + 1:]:
            assert not np.shares_memory(r, s), "two results share memory"


# -- the examples the plan is judged on ----------------------------------------------------------

def b_times_a_plus_one(a, b):
    c = b * a
    d = c + 1
    return d


def test_unfused_d_is_written_over_c():
    x = np.arange(6.0)
    graph, _, plan = planned(b_times_a_plus_one, x, x, fuse=False)
    c, d = [n for n in graph.nodes if n.op in ("multiply", "add")]
    assert plan.buffers == 1
    assert plan.in_place == [(d, c)]
    assert plan.assignment[c] == plan.assignment[d]
    assert plan.naive_bytes == 2 * x.nbytes
    assert plan.planned_bytes == x.nbytes
    f = tj.trace(b_times_a_plus_one, fuse=False)
    assert_same(f(x, x + 1), b_times_a_plus_one(x, x + 1))
    text = str(f.explain(x, x))
    assert "1 buffer(s)" in text and "d: f64[6] steps 1-end over c" in text


def relu_chain(n):
    def chain(h, w):
        for _ in range(n):
            h = np.maximum(h * w, 0)
        return h
    return chain


@pytest.mark.parametrize("n", [4, 32])
@pytest.mark.parametrize("fuse", [False, True])
def test_elementwise_chain_needs_at_most_two_buffers(n, fuse):
    h = np.linspace(-1, 1, 12).reshape(3, 4)
    w = np.linspace(0.5, 1.5, 12).reshape(3, 4)
    fn = relu_chain(n)
    _, _, plan = planned(fn, h, w, fuse=fuse)
    assert plan.arena_bytes + plan.output_bytes <= 2 * h.nbytes
    assert plan.naive_bytes == 2 * n * h.nbytes  # eager: one array per multiply and maximum
    if n == 4:  # compile one size only: the plan is the same at n = 32
        f = tj.trace(fn, fuse=fuse)
        assert_same(f(h, w), fn(h, w))
        mem = f.explain(h, w).memory
        assert mem.arena_bytes + mem.output_bytes <= 2 * h.nbytes


def mlp_chain(n):
    def chain(h, w):
        for _ in range(n):
            h = np.maximum(h @ w, 0)
        return h
    return chain


@pytest.mark.skipif("matmul" not in OPS, reason="matmul is not traced on this branch yet")
@pytest.mark.parametrize("n", [4, 32])
def test_matmul_chain_needs_at_most_two_activation_buffers(n):
    h = np.linspace(-1, 1, 12).reshape(3, 4)
    w = np.linspace(-0.5, 0.5, 16).reshape(4, 4)
    f = tj.trace(mlp_chain(n))
    assert_same(f(h, w), mlp_chain(n)(h, w))
    mem = f.explain(h, w).memory
    assert mem.arena_bytes + mem.output_bytes <= 2 * h.nbytes
    assert mem.naive_bytes >= n * h.nbytes


def _fake_matmul():
    def infer(args, attrs):
        return (args[0].shape[0], args[1].shape[1]), resolve(np.matmul, args)[-1]
    return Op("matmul", "matmul", infer, np.matmul, ufunc=np.matmul)


def test_host_op_writes_into_its_planned_buffer(monkeypatch):
    """The matmul hook: a host op with `out=` writes into a planned buffer, and its epilogue
    runs in place over it. Built as a Graph so it runs before matmul is traced."""
    if "matmul" not in OPS:
        monkeypatch.setitem(OPS, "matmul", _fake_matmul())
    h0 = Node("input", (), {"name": "h", "index": 0, "scalar": False}, (3, 4), np.float64)
    w = Node("input", (), {"name": "w", "index": 1, "scalar": False}, (4, 4), np.float64)
    zero = Node("const", (), {"value": 0.0}, (), np.float64, weak=True)
    h = h0
    for _ in range(5):
        m = Node("matmul", (h, w), {}, (3, 4), np.float64)
        h = Node("maximum", (m, zero), {}, (3, 4), np.float64)
    graph = Graph("mlp", [h0, w], [h], meta={"out_alias": (0,), "num_leaves": 2})
    steps = schedule(graph, True)
    exe = build(graph, steps, ["C", "C"])
    plan = exe.memory
    check_plan(graph, steps, plan)
    assert plan.arena_bytes + plan.output_bytes <= 2 * 3 * 4 * 8
    assert len(plan.in_place) == 5  # every epilogue over its matmul result
    assert "out=" in exe.source
    hv = np.linspace(-1, 1, 12).reshape(3, 4)
    wv = np.linspace(-0.5, 0.5, 16).reshape(4, 4)
    expected = mlp_chain(5)(hv, wv)
    first = exe.run(hv, wv)
    assert_same(first, expected)
    assert_same(exe.run(hv, wv), expected)
    assert_same(first, expected)
    assert_no_alias(first, exe.arena.views(), hv, wv)


# -- in place only where legal -------------------------------------------------------------------

@pytest.mark.parametrize("fuse", [False, True])
def test_no_in_place_over_a_value_read_again_through_a_view(fuse):
    def f(a, b):
        c = a * b
        t = c.T
        d = c + 1  # c is still read through t below
        return t * d

    def g(a, b):
        c = a * b
        return c + c.T  # c dies here but is also read transposed

    x = np.arange(16.0).reshape(4, 4)
    for fn in (f, g):
        graph, _, plan = planned(fn, x, x + 1, fuse=fuse)
        c = next(n for n in graph.nodes if n.op == "multiply")
        assert all(inp is not c for _, inp in plan.in_place)
        traced = tj.trace(fn, fuse=fuse)
        assert_same(traced(x, x + 1), fn(x, x + 1))
        assert_same(traced(x + 2, x), fn(x + 2, x))


def test_no_in_place_over_inputs_constants_or_other_itemsize():
    def f(a):
        b = a + 1.0  # never over a
        c = b.astype(np.float32)  # other itemsize: not over b
        d = c * np.float32(2)  # may be over c
        return d, np.sin(np.arange(4.0)) + a  # a constant operand is never written

    x = np.arange(4.0)
    graph, _, plan = planned(f, x, fuse=False)
    overwritten = {inp for _, inp in plan.in_place}
    assert not any(n.op in ("input", "const") for n in overwritten)
    b = next(n for n in graph.nodes if n.op == "add" and n.args[0].op == "input")
    cast = next(n for n in graph.nodes if n.op == "astype")
    assert (cast, b) not in plan.in_place
    traced = tj.trace(f, fuse=False)
    assert_same(traced(x), f(x))
    assert_same(traced(x), f(x))


def test_broadcast_input_is_not_overwritten():
    def f(a, b):
        c = a * 2.0  # shape (4,)
        return (c + b) * 3.0  # (3, 4): c is read at every row

    a, b = np.arange(4.0), np.ones((3, 4))
    graph, _, plan = planned(f, a, b, fuse=False)
    c = next(n for n in graph.nodes if n.op == "multiply" and n.shape == (4,))
    assert all(inp is not c for _, inp in plan.in_place)
    assert_same(tj.trace(f, fuse=False)(a, b), f(a, b))


def test_outputs_never_alias_the_arena_or_each_other():
    def f(a, b):
        c = a * b
        d = np.exp(c)
        e = d - c
        return e, e * 2, c.T, e  # the same object twice stays one array

    x = np.linspace(0, 1, 16).reshape(4, 4)
    for fuse in (False, True):
        traced = tj.trace(f, fuse=fuse)
        r1 = traced(x, x + 1)
        r2 = traced(x, x + 1)
        assert r1[0] is r1[3]
        assert_no_alias(r1[:3], arena_views(traced, x, x + 1), x)
        for a, b in zip(r1[:3], r2[:3]):
            assert not np.shares_memory(a, b)
        assert_same(r1, f(x, x + 1))


def test_float16_results_are_converted_from_arena_storage():
    def f(a):
        return np.exp(a) + a * a

    x = np.linspace(0, 1, 8).astype(np.float16)
    traced = tj.trace(f, fuse=False)
    r1 = traced(x)
    assert_same(r1, f(x))
    plan = traced.explain(x).memory
    assert plan.output_bytes == 0  # the float32 values are converted into the returned array
    assert_same(traced(x), f(x))
    assert_no_alias(r1, arena_views(traced, x), x)


def test_empty_and_zero_dimensional_values():
    def f(a, b):
        c = a * b
        return c + 1, c - 1

    for x in (np.zeros((0, 3)), np.full((), 2.0)):
        traced = tj.trace(f, fuse=False)
        assert_same(traced(x, x), f(x, x))
        assert_same(traced(x, x), f(x, x))


# -- arena: steady state, threads ----------------------------------------------------------------

def ten_op_chain(a, b):
    c = a * b
    c = c + 1.0
    c = np.sin(c)
    c = c * a
    c = c - b
    c = np.abs(c)
    c = c + 2.0
    c = np.sqrt(c)
    c = c * 0.5
    return c - a


def data_allocations(fn, *args):
    """(number, bytes) of NumPy data blocks allocated by one call and still held by its result."""
    held = fn(*args)  # kept, so the measured call cannot write its results into this one's
    domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([domain])
        result = fn(*args)
        after = tracemalloc.take_snapshot().filter_traces([domain])
    finally:
        tracemalloc.stop()
    diff = [d for d in after.compare_to(before, "traceback") if d.count_diff > 0]
    del result, held
    return sum(d.count_diff for d in diff), sum(d.size_diff for d in diff)


@pytest.mark.parametrize("fuse", [False, True])
def test_steady_state_call_allocates_only_its_outputs(fuse):
    a = np.linspace(0, 1, 1000)
    b = np.linspace(1, 2, 1000)
    traced = tj.trace(ten_op_chain, fuse=fuse)
    assert_same(traced(a, b), ten_op_chain(a, b))
    count, size = data_allocations(traced, a, b)
    assert count == 1 and size == a.nbytes, (count, size)


def test_steady_state_with_intermediates_in_the_arena():
    def f(a, b):
        c = np.exp(a) * b
        return c.T + 1.0, c * 2.0

    a = np.linspace(0, 1, 64).reshape(8, 8)
    traced = tj.trace(f, fuse=False)
    assert_same(traced(a, a), f(a, a))
    count, size = data_allocations(traced, a, a)
    assert count == 2 and size == 2 * a.nbytes, (count, size)


# -- recycled results ------------------------------------------------------------------------------

BIG = RECYCLE_BYTES // 8 + 3  # float64 elements: just over the recycling threshold


def test_a_large_result_is_reused_once_the_caller_lets_go_of_it():
    traced = tj.trace(lambda a: a * 2.0 + 1.0)
    x = np.arange(BIG, dtype=np.float64)
    r = traced(x)
    address = r.ctypes.data
    del r
    r = traced(x + 1)
    assert r.ctypes.data == address  # the same memory, no page faults
    np.testing.assert_array_equal(r, (x + 1) * 2.0 + 1.0)


@pytest.mark.parametrize("hold", ["result", "view", "memoryview", "frombuffer", "list"])
def test_a_large_result_still_referenced_is_never_overwritten(hold):
    traced = tj.trace(lambda a: a * 2.0 + 1.0)
    x = np.arange(BIG, dtype=np.float64)
    r = traced(x)
    address = r.ctypes.data
    held = {"result": lambda r: r, "view": lambda r: r[::3], "memoryview": memoryview,
            "frombuffer": lambda r: np.frombuffer(r, np.uint8), "list": lambda r: [r]}[hold](r)
    expected = np.array(held, copy=True)
    del r
    again = traced(x + 5)
    assert again.ctypes.data != address
    np.testing.assert_array_equal(np.array(held), expected)
    np.testing.assert_array_equal(again, (x + 5) * 2.0 + 1.0)


def test_threads_recycle_their_own_results():
    traced = tj.trace(lambda a: a * 2.0 + 1.0)
    x = np.arange(BIG, dtype=np.float64)

    def worker(i, start):
        start.wait()
        for k in range(50):
            xs = x + (i * 100 + k)
            r = traced(xs)
            np.testing.assert_array_equal(r, xs * 2.0 + 1.0)
            del r  # the next call may reuse it: this thread's, never the other's

    in_two_threads(worker)


def test_small_results_are_recycled_and_never_handed_to_two_callers():
    """Results of at most RECYCLE_SMALL_BYTES are kept in one list for all threads: a result
    one thread holds, or is filling, is never another's."""
    traced = tj.trace(lambda a: a * 2.0 + 1.0)
    x = np.arange(100, dtype=np.float64)
    traced(x)
    address = traced(x).ctypes.data  # dropped at once: the next call reuses it
    assert traced(x + 1).ctypes.data == address

    def worker(i, start):
        start.wait()
        held = []
        for k in range(2000):
            xs = x + (i * 10000 + k)
            held = [*held[-3:], (traced(xs), xs * 2.0 + 1.0)]
            for got, want in held:
                np.testing.assert_array_equal(got, want)

    in_two_threads(worker)


def in_two_threads(worker):
    """Run worker(i, barrier) in threads 0 and 1; re-raise the first error in this thread."""
    errors, start = [], threading.Barrier(2)

    def run(i):
        try:
            worker(i, start)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_threads_do_not_share_an_arena():
    def f(a, b):
        c = np.exp(a) * b  # an arena intermediate read transposed by the next kernel
        return c.T + c

    traced = tj.trace(f, fuse=False)
    x = np.linspace(0, 1, 64).reshape(8, 8)
    traced(x, x)
    views = {}

    def worker(i, start):
        xs = x * (i + 1)
        start.wait()
        for _ in range(300):
            np.testing.assert_allclose(traced(xs, xs), f(xs, xs), rtol=1e-13)
        views[i] = traced.explain(xs, xs).executable.arena.views()

    in_two_threads(worker)
    assert views[0] and views[1]
    assert not any(np.shares_memory(u, v) for u in views[0] for v in views[1])


# -- random graphs -------------------------------------------------------------------------------

# Exactly rounded ops only: a kernel's float32 sin may differ from NumPy's by an ulp, which is
# not what these tests are about.
UNARY = (np.negative, np.abs, np.square, lambda x: x * 0.5, lambda x: x + 1.0, lambda x: x.T,
         lambda x: x.astype(np.float32), lambda x: x.astype(np.float64))
BINARY = (np.add, np.subtract, np.multiply, np.maximum)


@st.composite
def programs(draw):
    """A straight-line program over two 4x4 inputs: (ops, outputs) with ops as
    (kind, function index, operand indices). No op repeats another: simplification would merge
    the two, and eager NumPy would not (`-a, (-a).T` share memory once merged)."""
    ops = []
    for _ in range(draw(st.integers(1, 12))):
        avail = len(ops) + 2
        if draw(st.booleans()):
            op = ("u", draw(st.integers(0, len(UNARY) - 1)), (draw(st.integers(0, avail - 1)),))
        else:
            op = ("b", draw(st.integers(0, len(BINARY) - 1)),
                  (draw(st.integers(0, avail - 1)), draw(st.integers(0, avail - 1))))
        if op not in ops:
            ops.append(op)
    outs = draw(st.lists(st.integers(2, len(ops) + 1), min_size=1, max_size=3))
    return ops, tuple(outs)


def program_fn(program):
    ops, outs = program

    def fn(a, b):
        vals = [a, b]
        for kind, i, operands in ops:
            args = [vals[j] for j in operands]
            vals.append(UNARY[i](*args) if kind == "u" else BINARY[i](*args))
        return tuple(vals[j] for j in outs)

    return fn


X = np.linspace(-2, 2, 16).reshape(4, 4)
Y = np.linspace(0.5, 3, 16).reshape(4, 4).astype(np.float32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.booleans())
def test_random_graph_plans_are_legal(program, fuse):
    graph, steps, plan = planned(program_fn(program), X, Y, fuse=fuse)
    assert plan.arena_bytes + plan.output_bytes <= plan.naive_bytes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_graphs_compute_what_numpy_computes(program):
    fn = program_fn(program)
    traced = tj.trace(fn, fuse=False, fallback="raise")
    expected = fn(X, Y)
    first = traced(X, Y)
    assert_same(first, expected)
    again = traced(X + 1, Y)
    assert_same(again, fn(X + 1, Y))
    assert_same(first, expected)  # the second call did not write over the first's results
    assert_no_new_aliasing(first, expected, (X, Y), (X, Y))
    for r in first:
        assert not any(np.shares_memory(r, v) for v in arena_views(traced, X, Y))
