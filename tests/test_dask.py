"""Traced functions on Dask arrays: lazy Dask results whose chunks run fused kernels, equal to
NumPy on the whole array and to Dask's own NumPy path, with ragged chunks and reductions over
split axes; per-chunk steps that pickle as plain data and run on a distributed cluster."""

import gc
import os
import pickle
import threading
import time
import tracemalloc

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="Dask is optional: pip install 'tracejit[dask]'")
import dask  # noqa: E402
from conftest import assert_same  # noqa: E402

import tracejit as tj  # noqa: E402
from tracejit import dask as tjdask  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def _chunked(x, chunks):
    return da.from_array(x, chunks=chunks)


def _check(traced, *args, rtol=None, own=True):
    """traced(*dask args) is lazy, and computes what NumPy and Dask's own path give."""
    result = traced(*args)
    arrays = [a.compute() if isinstance(a, da.Array) else a for a in args]
    expected = traced.eager(*arrays)
    lazy = result if isinstance(result, tuple) else (result,)
    assert all(isinstance(r, da.Array) for r in lazy)
    computed = dask.compute(*lazy)
    computed = computed if isinstance(result, tuple) else computed[0]
    assert_same(computed, expected, rtol=rtol)
    if not own:
        return result
    theirs = dask.compute(*(traced.eager(*args) if isinstance(result, tuple)
                            else (traced.eager(*args),)))
    assert_same(computed, theirs if isinstance(result, tuple) else theirs[0], rtol=rtol)
    return result


rng = np.random.default_rng(16)
A, B, C = (rng.standard_normal(1000) for _ in range(3))
RAGGED = ((300, 200, 17, 483),)
M = rng.standard_normal((60, 50))
M_SPLIT = ((20, 25, 15), (30, 7, 13))  # rows and columns split, unevenly


@tj.trace
def chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


@tj.trace
def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_elementwise_chain_on_ragged_chunks():
    out = _check(chain, *(_chunked(v, RAGGED) for v in (A, B, C)))
    assert out.chunks == RAGGED
    # one blockwise layer: the whole chain is one task per chunk
    assert len(out.dask.layers) == 4  # three inputs and the kernel


def test_mixed_numpy_dask_and_scalar_arguments():
    @tj.trace
    def f(x, bias, k):
        return np.tanh(x * k) + bias

    _check(f, _chunked(M, M_SPLIT), rng.standard_normal(50), 0.5)
    _check(f, _chunked(M.astype(np.float32), M_SPLIT), np.float32(1.5), 2)


@pytest.mark.parametrize("chunks", [((20, 25, 15), 50), M_SPLIT], ids=["rows-whole",
                                                                        "rows-split"])
def test_row_softmax(chunks):
    out = _check(softmax, _chunked(M, chunks))
    assert out.chunks == _chunked(M, chunks).chunks


def test_row_softmax_with_whole_rows_is_one_task_per_chunk():
    x = _chunked(M, ((20, 25, 15), 50))
    graph = softmax(x).__dask_graph__()
    assert len(graph) == 3 + 3  # the input's chunks and one kernel task per chunk


REDUCTIONS = {
    "sum": lambda x, axis, k: np.sum(x * x, axis=axis, keepdims=k),
    "mean": lambda x, axis, k: np.mean(np.abs(x), axis=axis, keepdims=k),
    "var": lambda x, axis, k: np.var(x + 1.0, axis=axis, keepdims=k),
    "std": lambda x, axis, k: np.std(x, axis=axis, keepdims=k, ddof=1),
    "max": lambda x, axis, k: np.max(np.sin(x), axis=axis, keepdims=k),
    "min": lambda x, axis, k: np.min(x - 1.0, axis=axis, keepdims=k),
    "prod": lambda x, axis, k: np.prod(1.0 + x * 1e-3, axis=axis, keepdims=k),
    "any": lambda x, axis, k: np.any(x > 2.5, axis=axis, keepdims=k),
    "all": lambda x, axis, k: np.all(x > -3.5, axis=axis, keepdims=k),
    "count": lambda x, axis, k: np.count_nonzero(x > 0, axis=axis, keepdims=k),
    "argmax": lambda x, axis, k: np.argmax(x * 2.0, axis=axis, keepdims=k),
    "argmin": lambda x, axis, k: np.argmin(np.cos(x), axis=axis, keepdims=k),
}


SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"), reason=(
    "every reduction, axis and keepdims: TRACEJIT_SLOW=1")))
# every op kind once in the every-run set (each case compiles its own kernels)
EVERY_RUN = {("sum", None, False), ("mean", None, False), ("var", 0, True), ("max", -1, True),
             ("min", None, True), ("any", 1, False), ("count", 0, False), ("argmax", 0, False),
             ("argmin", 1, True)}
CASES = [pytest.param(name, axis, keepdims, id=f"{name}-axis={axis}-keepdims={keepdims}",
                      marks=() if (name, axis, keepdims) in EVERY_RUN else SLOW)
         for name in sorted(REDUCTIONS) for axis in (None, 0, 1, -1)
         for keepdims in (False, True) if not (name.startswith("arg") and axis is None)]


@pytest.mark.parametrize("name, axis, keepdims", CASES)
def test_reduction_over_split_axes(name, axis, keepdims):
    rule = REDUCTIONS[name]

    @tj.trace
    def f(x):
        return rule(x, axis, keepdims)

    # Dask's count_nonzero takes no keepdims: compared with NumPy only
    _check(f, _chunked(M, M_SPLIT), rtol=1e-12, own=name != "count")


def test_argmax_over_a_flattened_array_is_dasks_own():
    @tj.trace
    def f(x):
        return np.argmax(x * 2.0)

    with pytest.warns(tj.FallbackWarning, match="argmax"):
        _check(f, _chunked(M, M_SPLIT))


def test_integer_and_float32_sums_keep_numpy_dtypes():
    @tj.trace
    def f(x, y):
        return np.sum(x * 3), np.sum(y * y, axis=0), np.mean(x, axis=1)

    xi = rng.integers(-100, 100, (60, 50)).astype(np.int8)
    _check(f, _chunked(xi, M_SPLIT), _chunked(M.astype(np.float32), M_SPLIT), rtol=1e-5)


def test_reduction_then_elementwise_then_reduction():
    @tj.trace
    def standardise(x):
        z = (x - x.mean(axis=0)) / x.std(axis=0)
        return z, np.sum(z * z)

    _check(standardise, _chunked(M, M_SPLIT))


def test_ragged_chunks_compile_nothing_new():
    @tj.trace
    def f(a, b):
        return np.log1p(np.abs(a * 3.25)) - b * 0.75  # constants no other test compiles

    x = _chunked(A, RAGGED)
    np.testing.assert_allclose(f(x, x).compute(), f.eager(A, A), rtol=1e-12)
    built = _built_for(f, x)
    assert len(built) == 4  # four chunk shapes, four plans...
    assert sorted(exe.kernels_compiled for exe in built) == [0, 0, 0, 1]  # ...one compile


def test_chunks_of_many_shapes_keep_bounded_memory(monkeypatch):
    @tj.trace
    def f(a):
        return np.sqrt(np.abs(a)) * 1.625  # results of over 1 MiB are kept for reuse

    sizes = tuple(150_000 + 8 * i for i in range(12))  # twelve shapes of 1.1 MiB results
    x = _chunked(rng.standard_normal(sum(sizes)), (sizes,))
    monkeypatch.setattr(tjdask, "_KEPT_MAX_BYTES", 3 << 20)
    f(x[:10]).compute()
    tracemalloc.start()
    try:
        got = f(x).compute()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - got.nbytes
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(got, f.eager(x.compute()), rtol=1e-15)
    assert held < 8 << 20  # a few plans' results per thread, not twelve (13+ MiB)


def _built_for(f, x):
    """The executables the chunks of f(x, x) built (found by the steps' tokens)."""
    tokens = {v.token for v in _walk(f(x, x).__dask_graph__())}
    return [exe for (token, _), exe in tjdask._BUILT.items() if token in tokens]


def _walk(graph):
    for task in graph.values():
        for part in _task_parts(task):
            if isinstance(part, tjdask.ChunkStep):
                yield part


def _task_parts(task):
    stack = [task]
    while stack:
        t = stack.pop()
        yield t
        for name in ("func", "args"):
            inner = getattr(t, name, None)
            if inner is not None:
                stack.extend(inner if isinstance(inner, tuple) else (inner,))
        if isinstance(t, tuple | list):
            stack.extend(t)


def test_same_call_gives_the_same_dask_keys_named_after_the_function():
    x = _chunked(M, M_SPLIT)
    first, again = _sumsq(x), _sumsq(x)
    assert first.name == again.name  # Dask computes dask.compute(f(x), f(x)) once
    assert _sumsq(x + 1).name != first.name and softmax(x).name != chain(x, x, x).name
    ours = [name for name in first.dask.layers if name not in x.dask.layers]
    assert ours and all(name.startswith("tracejit-_sumsq-") for name in ours)
    merged = dask.optimize(first, again, _sumsq(_chunked(M, M_SPLIT)))
    assert len({c.name for c in merged}) == 1


def test_reduction_fuses_with_the_task_making_its_input():
    def make(block_info=None):
        return np.ones(block_info[None]["chunk-shape"])

    x = da.map_blocks(make, chunks=((300, 200, 17, 483),), dtype=np.float64)
    (opt,) = dask.optimize(_sumsq(x))
    # one task per chunk (make, kernel and Dask's chunk step fused) and one merging the four
    (plain,) = dask.optimize(da.sum(x * x))
    assert len(opt.__dask_graph__()) == len(plain.__dask_graph__()) == 4 + 1


def test_views_and_matmul_are_dasks_own():
    @tj.trace
    def f(x, w):
        return np.maximum(x.T @ w + 1.0, 0.0)

    _check(f, _chunked(M, M_SPLIT), _chunked(rng.standard_normal((60, 8)), (20, 8)))


def test_untraceable_function_runs_as_dasks_own_path():
    @tj.trace
    def f(x):
        if x.sum() > 0:  # a Python if on an array value
            return x + 1
        return x - 1

    x = _chunked(M, M_SPLIT)
    with pytest.warns(tj.FallbackWarning, match="Dask's own NumPy path"):
        out = f(x)
    assert isinstance(out, da.Array)
    assert_same(out.compute(), f.eager(M))


def test_unmapped_step_warns_and_is_computed_by_dask():
    @tj.trace
    def f(x):
        return np.cumsum(x * 2.0, axis=0)

    x = _chunked(M, M_SPLIT)
    with pytest.warns(tj.FallbackWarning, match="cumsum"):
        out = f(x)
    assert_same(out.compute(), f.eager(M))


def test_shape_error_is_raised_as_for_numpy():
    @tj.trace
    def f(x, y):
        return x + y

    with pytest.raises(ValueError):
        f(_chunked(M, M_SPLIT), _chunked(A[:7], 7))


def test_chunk_step_pickles_as_plain_data():
    x = _chunked(M, ((20, 25, 15), 50))
    steps = list(_walk(softmax(x).__dask_graph__()))
    assert steps
    for step in steps:
        clone = pickle.loads(pickle.dumps(step))
        block = M[:20]
        np.testing.assert_allclose(clone(block), step(block))


def test_kernels_release_the_gil():
    @tj.trace
    def heavy(a):
        return np.sum(np.sin(a) * np.cos(a) + np.exp(-a * a))

    x = rng.standard_normal(4_000_000)
    step = next(_walk(heavy(_chunked(x, x.size)).__dask_graph__()))
    step(x[:10])  # compiled outside the measurement
    counts, done = [0], threading.Event()

    def spin():
        while not done.is_set():
            counts[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    time.sleep(0.05)
    start, before = time.perf_counter(), counts[0]
    while time.perf_counter() - start < 0.3:
        step(x)
    during = counts[0] - before
    done.set()
    thread.join()
    assert during > 1000  # the other thread ran Python while the kernels ran


def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        a, b, c = (_chunked(v, RAGGED) for v in (A, B, C))
        got_chain, got_sumsq = client.compute([chain(a, b, c), _sumsq(a)], sync=True)
        np.testing.assert_allclose(got_chain, chain.eager(A, B, C), rtol=1e-12)
        np.testing.assert_allclose(got_sumsq, np.sum(A * A), rtol=1e-12)
        built = client.run(lambda: len(tjdask._BUILT))
        assert len(built) == 2 and sum(built.values()) > 0  # the workers built the kernels


@tj.trace
def _sumsq(a):
    return np.sum(a * a)


# --- traced steps composed: a traced producer's chunks computed inside the consumer's kernel

def _layer_names(x):
    return set(x.__dask_graph__().layers)


def test_traced_producer_composes_into_the_consumers_kernel():
    a, b, c = (_chunked(v, RAGGED) for v in (A, B, C))
    y = chain(a, b, c)
    s = _sumsq(y)
    assert y.name not in _layer_names(s)  # no chunk of y is made for s
    got_s, got_y = dask.compute(s, y)  # the user asks for y too: Dask makes it separately
    assert_same(got_y, chain.eager(A, B, C))
    assert_same(got_s, np.sum(chain.eager(A, B, C) ** 2), rtol=1e-12)
    assert_same(got_s, _sumsq.eager(chain.eager(a, b, c)).compute(), rtol=1e-12)
    kept = y.persist()  # a persisted intermediate is read, not recomputed
    assert kept.name in _layer_names(_sumsq(kept))
    assert_same(_sumsq(kept).compute(), got_s)


@tj.trace
def _field(x, y, c):
    return (x[:, None] - c) ** 2 + (y[None, :] + c) ** 2


def test_field_on_a_mesh_composes_with_a_row_softmax_into_one_task_per_chunk():
    x, y = da.linspace(-1.0, 1.0, 60, chunks=(20, 25, 15)), da.linspace(-1.0, 1.0, 50, chunks=50)
    out = _check(softmax, _field(x, y, 0.25))
    # the linspaces' chunks, then one task per chunk: the views, field and softmax
    assert len(out.__dask_graph__()) == 3 + 1 + 3
    X, Y = np.linspace(-1.0, 1.0, 60), np.linspace(-1.0, 1.0, 50)
    assert_same(out.compute(), softmax.eager(_field.eager(X, Y, 0.25)), rtol=1e-12)


def test_row_reduction_is_not_split_by_another_inputs_chunks():
    @tj.trace
    def centre(x):
        return x - x.max(axis=-1, keepdims=True)

    @tj.trace
    def plus(p, q):
        return p + q * 0.5

    whole_rows, split_rows = _chunked(M, ((20, 25, 15), 50)), _chunked(M[::-1], M_SPLIT)
    composed = plus(centre(whole_rows), split_rows)  # the max's rows would be split
    assert_same(composed.compute(), centre.eager(M) + M[::-1] * 0.5, rtol=1e-12)


def test_composed_sum_on_a_mesh_is_one_task_per_chunk_and_one_merge():
    x, y = da.linspace(-1.0, 1.0, 60, chunks=(20, 25, 15)), da.linspace(-1.0, 1.0, 50, chunks=50)
    s = _sumsq(_field(x, y, 0.25))
    (opt,) = dask.optimize(s)
    # the linspaces' chunks, a task per chunk (views, field, square, partial sum), one merge
    assert len(opt.__dask_graph__()) == 3 + 1 + 3 + 1
    (plain,) = dask.optimize(_sumsq.eager(_field.eager(x, y, 0.25)))
    assert len(opt.__dask_graph__()) < len(plain.__dask_graph__())
    X, Y = np.linspace(-1.0, 1.0, 60), np.linspace(-1.0, 1.0, 50)
    assert_same(s.compute(), np.sum(_field.eager(X, Y, 0.25) ** 2), rtol=1e-12)


def test_many_partial_sums_merge_in_few_tasks():
    x = _chunked(np.arange(1000.0), 10)  # 100 chunks, a partial sum each
    (opt,) = dask.optimize(_sumsq(x))
    merges = [k for k in dict(opt.__dask_graph__()) if "-sum-partial-" in k[0]
              or "-sum-aggregate-" in k[0]]
    assert len(merges) == 3  # 64 partial sums at once (Dask's default: 4, in 34 tasks)
    assert_same(_sumsq(x).compute(), np.sum(np.arange(1000.0) ** 2))


def test_distributed_composed_producer_and_reduction():
    distributed = pytest.importorskip("distributed")
    x = da.linspace(-1.0, 1.0, 60, chunks=(20, 25, 15))
    y = da.linspace(-1.0, 1.0, 50, chunks=(30, 20))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        field = _field(x, y, 0.25)
        got_sum, got_max = client.compute([_sumsq(field), softmax(field).max(axis=0)],
                                          sync=True)
    F = _field.eager(np.linspace(-1.0, 1.0, 60), np.linspace(-1.0, 1.0, 50), 0.25)
    assert got_sum.dtype == np.float64 and got_sum.shape == ()
    np.testing.assert_allclose(got_sum, np.sum(F * F), rtol=1e-12)
    assert got_max.shape == (50,)
    np.testing.assert_allclose(got_max, softmax.eager(F).max(axis=0), rtol=1e-12)
