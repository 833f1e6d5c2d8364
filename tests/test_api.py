"""The public API of ``tracejit.trace``: caching, static arguments, fallback policies,
disable switches, mutation of arguments, graph/explain introspection and wrapping.

Source lines that the library must report (fallback warnings, graph locations) are found
with ``inspect`` from marker comments, never hard-coded.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same, graph_body_lines, node_locations

import tracejit as tj

THIS_FILE = Path(__file__).name
REPO_ROOT = Path(__file__).resolve().parents[1]

CACHE_FIELDS = ("hits", "misses", "traces", "kernels_compiled", "entries", "fallbacks")


def line_of(func, marker: str) -> int:
    """Absolute line number in this file of the single line of ``func`` containing marker."""
    lines, start = inspect.getsourcelines(func)
    hits = [start + i for i, text in enumerate(lines) if marker in text]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def fallback_warnings(records):
    return [w for w in records if issubclass(w.category, tj.FallbackWarning)]


def call_recording(fn, *args):
    """Call fn, returning (result, list of warnings raised during the call)."""
    with warnings.catch_warnings(record=True) as records, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        result = fn(*args)
    return result, list(records)


# --------------------------------------------------------------------------------------------
# Exceptions and warning classes
# --------------------------------------------------------------------------------------------


def test_exception_hierarchy():
    assert issubclass(tj.TracejitError, Exception)
    for exc in (tj.TraceError, tj.ShapeError, tj.UnsupportedError, tj.GraphFormatError):
        assert issubclass(exc, tj.TracejitError), exc
    assert issubclass(tj.FallbackWarning, UserWarning)


# --------------------------------------------------------------------------------------------
# Wrapping, eager, decorator forms
# --------------------------------------------------------------------------------------------


def documented(a, b):
    """Scale a by b and shift."""
    return a * b + 1.0


@pytest.mark.parametrize(
    "decorate",
    [tj.trace, tj.trace(), tj.trace(fuse=False), tj.trace(fallback="raise", backend="cpu")],
    ids=["bare", "empty-call", "fuse-false", "options"],
)
def test_functools_wraps_preserved(decorate):
    traced = decorate(documented)
    assert traced.__name__ == "documented"
    assert traced.__qualname__ == documented.__qualname__
    assert traced.__doc__ == "Scale a by b and shift."
    assert traced.__module__ == documented.__module__
    assert traced.__wrapped__ is documented
    x, y = np.arange(4.0), np.full(4, 0.5)
    assert_same(traced(x, y), documented(x, y))


def test_decorator_syntax_bare_and_with_options():
    @tj.trace
    def f(a):
        return np.sqrt(a) + a

    @tj.trace(fuse=True, fallback="raise", parallel=None)
    def g(a):
        return np.sqrt(a) + a

    x = np.linspace(0, 4, 9)
    assert_same(f(x), np.sqrt(x) + x)
    assert_same(g(x), np.sqrt(x) + x)


def test_eager_runs_the_plain_function_without_caching():
    calls = []

    def body(a):
        calls.append(a.shape)
        return np.cos(a) * 3.0

    traced = tj.trace(body)
    x = np.linspace(-1, 1, 5)
    assert_same(traced.eager(x), body(x))
    assert_same(traced.eager(x), np.cos(x) * 3.0)
    assert len(calls) == 3  # one plain call above, two eager calls: every call runs Python
    assert tuple(traced.cache_info()) == (0, 0, 0, 0, 0, 0)


def test_keyword_arguments():
    def f(a, b):
        return a - 2.0 * b

    traced = tj.trace(fallback="raise")(f)
    x, y = np.arange(5.0), np.linspace(0, 1, 5)
    assert_same(traced(x, b=y), f(x, y))
    assert_same(traced(a=x, b=y), f(x, y))


def test_user_exception_propagates():
    def broken(a):
        raise KeyError("boom")

    for policy in ("warn", "raise", "eager"):
        traced = tj.trace(fallback=policy)(broken)
        with pytest.raises(KeyError, match="boom"):
            traced(np.ones(3))


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _cache_probe(a, b):
    return np.hypot(a, b) * np.arctan(a) - 3.0


def test_cache_info_fields_and_initial_state():
    traced = tj.trace(_cache_probe)
    info = traced.cache_info()
    assert info._fields == CACHE_FIELDS
    assert tuple(info) == (0, 0, 0, 0, 0, 0)


def test_cache_hits_misses_traces_and_kernels():
    traced = tj.trace(fallback="raise")(_cache_probe)
    x, y = np.linspace(-2, 2, 10), np.linspace(1, 3, 10)

    assert_same(traced(x, y), _cache_probe(x, y))
    first = traced.cache_info()
    assert (first.hits, first.misses, first.traces, first.entries, first.fallbacks) == (
        0, 1, 1, 1, 0)
    assert first.kernels_compiled >= 1

    # same signature, new values: hit, nothing traced or compiled
    x2, y2 = x * 3.0, y + 1.0
    assert_same(traced(x2, y2), _cache_probe(x2, y2))
    second = traced.cache_info()
    assert (second.hits, second.misses, second.traces, second.entries) == (1, 1, 1, 1)
    assert second.kernels_compiled == first.kernels_compiled

    # new shape, same rank and dtypes: re-trace, but every kernel is reused
    x3, y3 = np.linspace(-1, 1, 17), np.linspace(0, 5, 17)
    assert_same(traced(x3, y3), _cache_probe(x3, y3))
    third = traced.cache_info()
    assert (third.hits, third.misses, third.traces, third.entries) == (1, 2, 2, 2)
    assert third.kernels_compiled == first.kernels_compiled

    # the older entry is still there
    assert_same(traced(x, y), _cache_probe(x, y))
    assert traced.cache_info().hits == 2
    assert traced.cache_info().traces == 2


def test_new_dtype_compiles_new_kernel():
    def probe(a, b):
        return np.arcsinh(a) * b + np.cosh(b)

    traced = tj.trace(fallback="raise")(probe)
    x, y = np.linspace(-2, 2, 6), np.linspace(0, 1, 6)
    traced(x, y)
    before = traced.cache_info()
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    assert_same(traced(x32, y32), probe(x32, y32))
    after = traced.cache_info()
    assert after.misses == before.misses + 1
    assert after.traces == before.traces + 1
    assert after.entries == before.entries + 1
    assert after.kernels_compiled > before.kernels_compiled


def test_layout_is_part_of_the_signature():
    def probe(a):
        return np.expm1(a) * 0.25 + a

    traced = tj.trace(fallback="raise")(probe)
    base = np.linspace(-1, 1, 24).reshape(4, 6)
    assert_same(traced(base[:, :3].copy()), probe(base[:, :3].copy()))
    entries = traced.cache_info().entries
    view = base[:, ::2]  # same shape and dtype, not contiguous
    assert_same(traced(view), probe(view))
    assert traced.cache_info().entries == entries + 1
    fortran = np.asfortranarray(base)
    assert_same(traced(fortran), probe(fortran))
    assert_same(traced(base), probe(base))
    info = traced.cache_info()
    assert info.fallbacks == 0


def test_python_scalar_type_is_part_of_the_signature():
    def scale(a, s):
        return a * s + 1.0

    traced = tj.trace(fallback="raise")(scale)
    x = np.arange(5, dtype=np.float32)
    assert_same(traced(x, 2.0), scale(x, 2.0))
    assert_same(traced(x, -0.5), scale(x, -0.5))
    info = traced.cache_info()
    assert (info.hits, info.misses, info.traces, info.entries) == (1, 1, 1, 1)
    assert_same(traced(x, 3), scale(x, 3))  # int instead of float: new signature
    info = traced.cache_info()
    assert (info.misses, info.traces, info.entries) == (2, 2, 2)


def test_results_are_fresh_arrays_each_call():
    def probe(a):
        return np.tanh(a) * 2.0 - a

    traced = tj.trace(fallback="raise")(probe)
    x1, x2 = np.linspace(-1, 1, 8), np.linspace(3, 5, 8)
    r1 = traced(x1)
    r2 = traced(x2)
    assert_same(r1, probe(x1))  # not overwritten by the second call
    assert_same(r2, probe(x2))
    assert not np.shares_memory(r1, r2)
    assert r1.flags.writeable
    r1[:] = 0.0  # the caller owns the result: writing to it must not affect later calls
    assert_same(traced(x1), probe(x1))


def test_cache_clear():
    def probe(a):
        return np.log1p(a * a) + a

    traced = tj.trace(fallback="raise")(probe)
    x = np.linspace(0, 1, 6)
    traced(x)
    traced(x)
    assert traced.cache_info().entries == 1
    traced.cache_clear()
    cleared = traced.cache_info()
    assert cleared.entries == 0
    assert_same(traced(x), probe(x))
    info = traced.cache_info()
    assert info.entries == 1
    assert info.traces == cleared.traces + 1  # the signature was traced again
    assert info.misses == cleared.misses + 1


def test_body_runs_once_per_trace():
    calls = []

    def body(a):
        calls.append(1)
        return a * 2.0 + 1.0

    traced = tj.trace(fallback="raise")(body)
    x = np.arange(6.0)
    for _ in range(4):
        assert_same(traced(x), x * 2.0 + 1.0)
    assert traced.cache_info().traces == 1
    assert len(calls) == 1  # Python ran only while tracing
    traced(np.arange(9.0))
    assert len(calls) == 2 == traced.cache_info().traces


# --------------------------------------------------------------------------------------------
# Static arguments
# --------------------------------------------------------------------------------------------


def _poly(a, n):
    out = a
    for _ in range(n):
        out = out * a + 1.0
    if n > 2:
        out = -out
    return out


def test_static_argnames_control_flow():
    traced = tj.trace(static_argnames=("n",), fallback="raise")(_poly)
    x = np.linspace(-1, 1, 7)
    assert_same(traced(x, 1), _poly(x, 1))
    assert_same(traced(x, 3), _poly(x, 3))
    info = traced.cache_info()
    assert (info.misses, info.traces, info.entries, info.fallbacks) == (2, 2, 2, 0)
    assert_same(traced(x, 1), _poly(x, 1))
    assert_same(traced(x * 2, 3), _poly(x * 2, 3))
    info = traced.cache_info()
    assert (info.hits, info.traces, info.entries) == (2, 2, 2)

    # the static value shapes the graph: one multiply per loop iteration
    g1 = "\n".join(graph_body_lines(traced.graph(x, 1)))
    g3 = "\n".join(graph_body_lines(traced.graph(x, 3)))
    assert g1.count("multiply") == 1, g1
    assert g3.count("multiply") == 3, g3
    assert "negative" in g3 and "negative" not in g1


def test_static_argument_by_keyword():
    traced = tj.trace(static_argnames=("n",), fallback="raise")(_poly)
    x = np.linspace(-1, 1, 7)
    assert_same(traced(x, n=2), _poly(x, 2))
    assert_same(traced(x, n=4), _poly(x, 4))
    assert traced.cache_info().entries == 2


# --------------------------------------------------------------------------------------------
# Fallback policies
# --------------------------------------------------------------------------------------------


def _branch_on_value(a):
    if a > 0:  # <site>
        return a * 2.0
    return a - 1.0


def _float_of_array(a, s):
    k = float(s)  # <site>
    return a * k


def _bool_of_array(a, s):
    if bool(s > 0):  # <site>
        return a + 1.0
    return a


def _truth_of_array(a, s):
    if s:  # <site>
        return a * 3.0
    return a


def _int_of_array(a, s):
    n = int(s)  # <site>
    return a + n


TRACE_BREAKERS = {
    "if-array": (_branch_on_value, lambda: (np.array(1.5),), lambda: (np.array(-2.0),)),
    "float()": (_float_of_array, lambda: (np.arange(3.0), np.array(2.0)),
                lambda: (np.arange(3.0), np.array(-4.0))),
    "bool()": (_bool_of_array, lambda: (np.arange(3.0), np.array([2.0])),
               lambda: (np.arange(3.0), np.array([-2.0]))),
    "truth": (_truth_of_array, lambda: (np.arange(3.0), np.array([1.0])),
              lambda: (np.arange(3.0), np.array([0.0]))),
    "int()": (_int_of_array, lambda: (np.arange(3.0), np.array(7.0)),
              lambda: (np.arange(3.0), np.array(-1.0))),
}


@pytest.mark.parametrize("name", list(TRACE_BREAKERS))
def test_fallback_warn_runs_eagerly_and_remembers(name):
    fn, make_args, make_other_args = TRACE_BREAKERS[name]
    site = f"{THIS_FILE}:{line_of(fn, '# <site>')}"
    traced = tj.trace(fn)  # default policy: warn

    result, records = call_recording(traced, *make_args())
    assert_same(result, fn(*make_args()))
    found = fallback_warnings(records)
    assert len(found) == 1, [str(w.message) for w in records]
    assert site in str(found[0].message), str(found[0].message)
    info = traced.cache_info()
    assert info.fallbacks >= 1
    traces = info.traces

    # same signature: the decision is remembered, no re-trace and no second warning,
    # and the eager path really runs on the new values (here: the other branch)
    result, records = call_recording(traced, *make_other_args())
    assert_same(result, fn(*make_other_args()))
    assert fallback_warnings(records) == []
    info = traced.cache_info()
    assert info.traces == traces
    assert info.fallbacks >= 1


@pytest.mark.parametrize("name", list(TRACE_BREAKERS))
def test_fallback_raise(name):
    fn, make_args, _ = TRACE_BREAKERS[name]
    site = f"{THIS_FILE}:{line_of(fn, '# <site>')}"
    traced = tj.trace(fallback="raise")(fn)
    with pytest.raises(tj.TraceError) as excinfo:
        traced(*make_args())
    assert site in str(excinfo.value)
    assert isinstance(excinfo.value, tj.TracejitError)
    with pytest.raises(tj.TraceError):  # still raises on the next call
        traced(*make_args())


@pytest.mark.parametrize("name", list(TRACE_BREAKERS))
def test_fallback_eager_is_silent(name):
    fn, make_args, make_other_args = TRACE_BREAKERS[name]
    traced = tj.trace(fallback="eager")(fn)
    result, records = call_recording(traced, *make_args())
    assert_same(result, fn(*make_args()))
    assert fallback_warnings(records) == []
    result, records = call_recording(traced, *make_other_args())
    assert_same(result, fn(*make_other_args()))
    assert fallback_warnings(records) == []
    assert traced.cache_info().fallbacks >= 1


def _uses_fft(a):
    spectrum = np.fft.fft(a)  # <site>
    return spectrum * 2.0


def test_unsupported_function_raises_unsupported_error():
    site = f"{THIS_FILE}:{line_of(_uses_fft, '# <site>')}"
    traced = tj.trace(fallback="raise")(_uses_fft)
    with pytest.raises(tj.UnsupportedError) as excinfo:
        traced(np.arange(8.0))
    assert isinstance(excinfo.value, tj.TracejitError)
    assert site in str(excinfo.value)


def test_unsupported_function_falls_back_with_warning():
    site = f"{THIS_FILE}:{line_of(_uses_fft, '# <site>')}"
    traced = tj.trace(_uses_fft)
    x = np.arange(8.0)
    result, records = call_recording(traced, x)
    assert_same(result, _uses_fft(x))
    assert result.dtype == np.complex128
    found = fallback_warnings(records)
    assert len(found) == 1
    assert site in str(found[0].message)


def _bad_shapes(a, b):
    return a * b  # <site>


def test_shape_error_names_the_line():
    site = f"{THIS_FILE}:{line_of(_bad_shapes, '# <site>')}"
    traced = tj.trace(fallback="raise")(_bad_shapes)
    with pytest.raises(tj.ShapeError) as excinfo:
        traced(np.ones(3), np.ones(4))
    assert site in str(excinfo.value)
    # whatever the policy, a call NumPy cannot do is an error
    with pytest.raises((tj.ShapeError, ValueError)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tj.trace(_bad_shapes)(np.ones(3), np.ones(4))


# --------------------------------------------------------------------------------------------
# Mutation of arguments
# --------------------------------------------------------------------------------------------


def _inplace_add(x, y):
    x += y  # <site>
    return x * 2.0


def _inplace_setitem(x, v):
    x[1:3] = v  # <site>
    return x + 1.0


def _inplace_then_more(x):
    x *= 3.0
    x -= 1.0
    return np.exp(x) - x


MUTATORS = {
    "iadd": (_inplace_add, lambda: (np.arange(5.0), np.linspace(0, 1, 5))),
    "setitem": (_inplace_setitem, lambda: (np.arange(5.0), 9.5)),
    "chain": (_inplace_then_more, lambda: (np.linspace(-1, 1, 6),)),
}


@pytest.mark.parametrize("name", list(MUTATORS))
def test_inplace_on_argument_mutates_like_numpy(name):
    fn, make_args = MUTATORS[name]
    eager_args = make_args()
    expected = fn(*eager_args)
    traced = tj.trace(fn)  # default policy

    args = make_args()
    result, records = call_recording(traced, *args)
    assert_same(result, expected)
    np.testing.assert_array_equal(args[0], eager_args[0])  # caller's array mutated as NumPy
    info = traced.cache_info()
    # Either the mutation is traced (no fallback, no warning) or the call fell back to eager
    # NumPy with exactly one FallbackWarning; in both cases the caller sees NumPy's result.
    assert len(fallback_warnings(records)) == (1 if info.fallbacks else 0), (info, records)

    # second call, fresh arrays: mutated again
    args2 = make_args()
    eager_args2 = make_args()
    expected2 = fn(*eager_args2)
    result2, _ = call_recording(traced, *args2)
    assert_same(result2, expected2)
    np.testing.assert_array_equal(args2[0], eager_args2[0])


@pytest.mark.parametrize("name", list(MUTATORS))
def test_inplace_on_argument_with_fallback_raise(name):
    fn, make_args = MUTATORS[name]
    eager_args = make_args()
    expected = fn(*eager_args)
    args = make_args()
    pristine = make_args()
    traced = tj.trace(fallback="raise")(fn)
    try:
        result = traced(*args)
    except tj.TraceError:
        # refused while tracing: the caller's array must not be half-modified
        np.testing.assert_array_equal(args[0], pristine[0])
    else:
        assert_same(result, expected)
        np.testing.assert_array_equal(args[0], eager_args[0])


def test_inplace_warning_names_the_line():
    site = f"{THIS_FILE}:{line_of(_inplace_add, '# <site>')}"
    traced = tj.trace(_inplace_add)
    x = np.arange(4.0)
    _, records = call_recording(traced, x, np.ones(4))
    np.testing.assert_array_equal(x, np.arange(4.0) + 1.0)
    for w in fallback_warnings(records):
        assert site in str(w.message), str(w.message)


def test_inplace_on_local_value_is_traced():
    def fn(x):
        y = x * 2.0
        y += 1.0
        y *= x
        return y

    traced = tj.trace(fallback="raise")(fn)
    x = np.linspace(-1, 1, 5)
    keep = x.copy()
    assert_same(traced(x), fn(keep.copy()))
    np.testing.assert_array_equal(x, keep)
    assert traced.cache_info().fallbacks == 0


# --------------------------------------------------------------------------------------------
# Disabling
# --------------------------------------------------------------------------------------------


def test_disable_context_manager():
    calls = []

    def body(a):
        calls.append(1)
        return np.sin(a) * 2.0 + a

    traced = tj.trace(fallback="raise")(body)
    x = np.linspace(-1, 1, 7)
    with tj.disable():
        assert_same(traced(x), np.sin(x) * 2.0 + x)
        assert_same(traced(x), np.sin(x) * 2.0 + x)
    assert len(calls) == 2  # ran eagerly each time
    assert tuple(traced.cache_info()) == (0, 0, 0, 0, 0, 0)

    # enabled again after the block
    traced(x)
    traced(x)
    info = traced.cache_info()
    assert (info.hits, info.misses, info.traces) == (1, 1, 1)
    assert len(calls) == 3


def test_disable_restores_state_after_exception():
    traced = tj.trace(fallback="raise")(lambda a: a + 1.0)
    with pytest.raises(RuntimeError), tj.disable():
        raise RuntimeError("inside")
    traced(np.ones(3))
    assert traced.cache_info().traces == 1


_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tracejit as tj

    calls = []

    @tj.trace
    def f(a):
        calls.append(1)
        return a * 2.0 + 1.0

    x = np.arange(4.0)
    r1 = f(x)
    r2 = f(x)
    assert np.array_equal(r1, x * 2.0 + 1.0) and np.array_equal(r2, r1)
    info = f.cache_info()
    print(len(calls), info.traces, info.kernels_compiled)
    """
)


def _run_script(tmp_path, extra_env):
    script = tmp_path / "disable_probe.py"
    script.write_text(_SUBPROCESS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRACEJIT_DISABLE"}
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return [int(v) for v in proc.stdout.split()]


def test_env_var_disables(tmp_path):
    calls, traces, compiled = _run_script(tmp_path, {"TRACEJIT_DISABLE": "1"})
    assert (calls, traces, compiled) == (2, 0, 0)


def test_without_env_var_traces(tmp_path):
    calls, traces, compiled = _run_script(tmp_path, {})
    assert (calls, traces) == (1, 1)
    assert compiled >= 1


# --------------------------------------------------------------------------------------------
# Graph text and explain
# --------------------------------------------------------------------------------------------


def tiny(a, b):
    c = b * a  # <mul>
    d = np.exp(c) + 1.0  # <exp-add>
    return d


def test_graph_text():
    traced = tj.trace(tiny)
    x, y = np.linspace(0, 1, 10), np.linspace(1, 2, 10)
    graph = traced.graph(x, y)
    text = str(graph)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].strip() == "graph tiny(a: f64[10], b: f64[10]) {", text
    assert lines[-1].strip() == "}"
    body = graph_body_lines(graph)
    assert body[-1].strip().startswith("return"), text
    assert sum(line.strip().startswith("return") for line in body) == 1

    mul_line = line_of(tiny, "# <mul>")
    exp_add_line = line_of(tiny, "# <exp-add>")
    located = node_locations(graph)
    assert located, text
    for line, file, lineno in located:
        assert Path(file).name == THIS_FILE, line
        assert lineno in (mul_line, exp_add_line), line
    expected_ops = {"multiply": mul_line, "exp": exp_add_line, "add": exp_add_line}
    for op, lineno in expected_ops.items():
        pattern = re.compile(rf"(?<![\w.]){op}(?![\w.])")
        op_lines = [(line, n) for line, _, n in located if pattern.search(line.split("#")[0])]
        assert op_lines, f"no {op} node in\n{text}"
        assert all(n == lineno for _, n in op_lines), (op, op_lines)


def test_graph_of_float32_2d_mentions_types():
    traced = tj.trace(tiny)
    x = np.ones((2, 3), dtype=np.float32)
    header = str(traced.graph(x, x)).splitlines()[0]
    assert header.startswith("graph tiny(")
    assert re.search(r"a: f32\[2,\s*3\], b: f32\[2,\s*3\]", header), header


def _explained(a, b):
    return np.exp(a * b) + 1.0


def test_explain_fused():
    traced = tj.trace(_explained)
    x, y = np.linspace(0, 1, 10), np.linspace(1, 2, 10)
    report = traced.explain(x, y)
    assert len(report.kernels) == 1
    kernel = report.kernels[0]
    assert sorted(kernel.ops) == ["add", "exp", "multiply"]
    assert isinstance(kernel.source, str) and "def " in kernel.source
    text = str(report)
    assert text.count("\n") >= 2
    for op in ("add", "exp", "multiply"):
        assert op in text
    # explaining does not change what the function computes
    assert_same(traced(x, y), _explained(x, y))


def test_explain_unfused():
    traced = tj.trace(fuse=False)(_explained)
    x, y = np.linspace(0, 1, 10), np.linspace(1, 2, 10)
    report = traced.explain(x, y)
    assert len(report.kernels) == 3
    assert [len(k.ops) for k in report.kernels] == [1, 1, 1]
    assert sorted(k.ops[0] for k in report.kernels) == ["add", "exp", "multiply"]
    for kernel in report.kernels:
        assert isinstance(kernel.source, str) and kernel.source.strip()
    assert_same(traced(x, y), _explained(x, y))


def test_graph_of_untraceable_function_raises():
    traced = tj.trace(_branch_on_value)  # the policy is about calls, not about graph()
    with pytest.raises(tj.TraceError), warnings.catch_warnings():
        warnings.simplefilter("ignore", tj.FallbackWarning)
        traced.graph(np.array(1.5))


def test_nested_traced_functions():
    inner = tj.trace(lambda a: np.exp(a) * 2.0)

    def outer(a, b):
        return inner(a) + inner(b) * a

    traced = tj.trace(fallback="raise")(outer)
    x, y = np.linspace(-1, 1, 6), np.linspace(0, 2, 6)
    expected = np.exp(x) * 2.0 + np.exp(y) * 2.0 * x
    assert_same(traced(x, y), expected)
    assert traced.cache_info().fallbacks == 0
    assert_same(inner(x), np.exp(x) * 2.0)  # still usable on its own


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [None, True, False], ids=["auto", "on", "off"])
def test_parallel_option_large_array(parallel):
    def fn(a, b):
        return np.sqrt(a * a + b * b) - 0.5 * a

    traced = tj.trace(parallel=parallel, fallback="raise")(fn)
    rng = np.random.default_rng(3)
    a = rng.standard_normal(200_003)
    b = rng.standard_normal(200_003)
    assert_same(traced(a, b), fn(a, b))
    assert traced.cache_info().fallbacks == 0


@pytest.mark.parametrize(
    "options", [{"fallback": "sometimes"}, {"backend": "tpu"}], ids=["fallback", "backend"]
)
def test_invalid_options_are_rejected(options):
    x = np.ones(3)
    with pytest.raises((ValueError, TypeError, tj.TracejitError)):
        tj.trace(**options)(_explained)(x, x)


@pytest.mark.parametrize("parallel", [None, True], ids=["auto", "on"])
def test_parallel_option_large_views(parallel):
    def fn(a, b):
        return np.exp(-a * a) + b * 0.5

    traced = tj.trace(parallel=parallel, fallback="raise")(fn)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((600, 800))[::2, ::-1]  # (300, 800), strided and reversed
    b = rng.standard_normal((800, 300)).T  # (300, 800), transposed
    assert_same(traced(a, b), fn(a, b))
    assert_same(traced(a, b[:1]), fn(a, b[:1]))  # broadcast a row over a large view


def test_backend_cpu_explicit():
    traced = tj.trace(backend="cpu", fallback="raise")(_explained)
    x = np.linspace(0, 1, 5)
    assert_same(traced(x, x), _explained(x, x))


def test_cached_calls_with_scalars_take_the_fast_path(monkeypatch):
    """Python and NumPy scalar arguments are part of the fast path's key: a signature seen
    before runs without flattening the arguments again."""
    f = tj.trace(lambda a, s: a * s + 1.0)
    a = np.arange(4.0)
    scalars = (2.5, np.float32(2.5), 3)
    for s in scalars:
        f(a, s)
    monkeypatch.setattr(f, "_flatten", None)  # the slow path would fail now
    for s in scalars:
        got, want = f(a, s), a * s + 1.0
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert f.cache_info().hits == len(scalars)
