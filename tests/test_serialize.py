"""Checkpoints: save/load round trips (symbols, traced functions, the whole corpus, parameter
pytrees), hostile files that must raise GraphFormatError naming the problem, and a fuzz of the
loader that mutates valid files."""

import collections
import io
import json
import os
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import test_corpus
from conftest import assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit import pytree, serialize
from tracejit.ops import OPS
from tracejit.symbolic import Symbol, program_graph

ONES = np.ones(10)


def _bits(result):
    """Leaves of a result as (type, dtype, shape, bytes): equal means bit-identical."""
    return [(type(x), np.asarray(x).dtype, np.shape(x), np.asarray(x).tobytes())
            for x in pytree.flatten(result)[0]]


# -- symbols and traced functions -----------------------------------------------------------------

def test_symbols_round_trip_to_the_same_kernels(tmp_path):
    A, B = tj.Variable("A"), tj.Variable("B", shape=(10,), dtype=np.float64)
    D = np.exp(B * A) + tj.Constant(np.arange(10.0)) - 0.1
    f = tj.compile(D)
    expected = f(A=ONES, B=ONES * 2)
    D.save(tmp_path / "g", A=ONES)  # an example for A: a typed graph
    assert sorted(os.listdir(tmp_path)) == ["g.json", "g.npz"]
    loaded = tj.compile(tj.load(tmp_path / "g"))
    assert loaded.variables == ("A", "B")
    assert _bits(loaded(A=ONES, B=ONES * 2)) == _bits(expected)
    assert loaded.cache_info().kernels_compiled == 0  # the same kernels as `f`: a cache hit
    with pytest.raises(tj.ShapeError, match="'A' has shape"):
        loaded(A=np.ones(3), B=ONES)  # a loaded program has the saved shapes


def test_design_example_saves_untyped_symbols(tmp_path):
    A, B = tj.Variable("A"), tj.Variable("B")
    D = B * A + tj.Constant(1)
    D.save(tmp_path / "g")
    assert json.loads((tmp_path / "g.json").read_text())["format"] == "tracejit.symbols"
    D2 = tj.load(tmp_path / "g")
    f, f2 = tj.compile(D), tj.compile(D2)
    assert f2.variables == ("A", "B")
    for a, b in [(ONES, ONES * 2), (np.arange(12, dtype=np.int32).reshape(3, 4), 3)]:
        expected = f(A=a, B=b)  # any shape and dtype, as for D
        assert _bits(f2(A=a, B=b)) == _bits(expected)
    assert f2.cache_info().kernels_compiled == 0  # the same kernels as D's: cache hits


def _untyped_program():
    """Untyped symbols through every kind of saved call, and their gradients."""
    A, B = tj.Variable("A"), tj.Variable("B", shape=(None,))
    C = tj.Variable("C", dtype=np.float32)
    x = np.concatenate([np.tanh(A * B)[::-1], A.T[1:3]], axis=0) + tj.Constant(np.arange(6.0))
    y = x[:4] * np.add.reduce(x) * C.astype(float).reshape(1)
    out = y + (A >= 0).astype(np.float64) + np.sum(B, dtype=np.float32) * tj.Constant(
        np.float32(2.5))
    gA, gC = out.grad(wrt=[A, C], head=tj.Constant(np.ones(4)))
    return {"out": out, "grads": [gA, gC]}


def test_untyped_symbols_round_trip_with_gradients(tmp_path):
    program = _untyped_program()
    values = dict(A=np.linspace(-1, 1, 4), B=np.linspace(0.5, 2, 4),
                  C=np.array([1.5], np.float32))
    serialize.save_symbols(tmp_path / "p", program)
    loaded = tj.load(tmp_path / "p")
    assert sorted(loaded) == ["grads", "out"] and len(loaded["grads"]) == 2
    # the same traced program op for op, so the same kernels (compiling them is the design
    # example's test); the interpreter gives bit-identical results
    assert str(program_graph(loaded, values)) == str(program_graph(program, values))
    f, g = tj.compile(program), tj.compile(loaded)
    assert g.variables == f.variables == ("A", "B", "C")
    assert _bits(g.eager(**values)) == _bits(f.eager(**values))
    program["grads"][0].save(tmp_path / "ga")  # a gradient alone
    alone = tj.compile(tj.load(tmp_path / "ga")).eager(**values)
    assert _bits(alone) == _bits(tj.compile(program["grads"][0]).eager(**values))
    with pytest.raises(tj.ShapeError, match="'B' has shape"):  # declarations survive
        g.eager(**{**values, "B": np.ones((2, 2))})


def test_loaded_untyped_symbols_differentiate_and_combine(tmp_path):
    A, B = tj.Variable("A"), tj.Variable("B")
    loss = np.sum(np.exp(A) * B)
    loss.save(tmp_path / "l")
    loaded = tj.load(tmp_path / "l")
    C = tj.Variable("C")
    a, b, c = np.linspace(0, 1, 5), np.linspace(1, 2, 5), np.float64(3.0)
    (ga,) = tj.gradients(loaded * C, wrt=["A"])
    assert_same(tj.compile(ga).eager(A=a, B=b, C=c), np.exp(a) * b * c)
    grad_of_grad = tj.gradients(np.sum(tj.gradients(loaded, "A") ** 2), "B")
    np.testing.assert_allclose(tj.compile(grad_of_grad).eager(A=a, B=b), 2 * np.exp(a) ** 2 * b,
                               rtol=1e-12)


def test_unsaveable_symbols_say_why(tmp_path):
    x = tj.Variable("x", shape=(3,), dtype=np.float64)
    tj.trace(lambda v: v * 2).save(tmp_path / "t", np.ones(3))
    mixed = tj.load(tmp_path / "t") + tj.Variable("y")  # a typed graph inside untyped symbols
    with pytest.raises(tj.UnsupportedError, match="cannot be saved; save with example"):
        mixed.save(tmp_path / "m")
    with pytest.raises(tj.UnsupportedError, match="'ndarray.fill' cannot be saved"):
        tj.Variable("z").fill(0.0).save(tmp_path / "f")  # writes in place: no traced form
    (x * 2).save(tmp_path / "typed")  # fully declared: the typed graph, as before
    assert json.loads((tmp_path / "typed.json").read_text())["format"] == "tracejit.graph"


def test_loaded_symbols_differentiate_and_keep_stop_gradient(tmp_path):
    def f(x, w):
        return np.sum(np.tanh(x * w) * tj.stop_gradient(w))
    x, w = np.linspace(-1, 1, 6), np.linspace(0.5, 1.5, 6)
    tj.trace(f).save(tmp_path / "f.json", x, w)  # the .json suffix is optional
    loss = tj.load(tmp_path / "f")
    (gw,) = tj.gradients(loss, wrt=["w"])
    expected = tj.grad(f, argnums=1)(x, w)
    np.testing.assert_allclose(tj.compile(gw)(x=x, w=w), expected, rtol=1e-12)


def test_python_scalars_and_result_structures_survive(tmp_path):
    def f(x, k):
        return {"a": (x * k, [x.sum(), np.float32(2.5) * x.astype(np.float32)]), "b": x[1:3]}
    f = tj.trace(f)
    f.save(tmp_path / "s", ONES, 3.0)
    loaded = tj.compile(tj.load(tmp_path / "s"))
    assert_same(loaded(x=ONES, k=2.0), f(ONES, 2.0))
    with pytest.raises(TypeError, match="traced as a Python scalar"):
        loaded(x=ONES, k=np.float64(2.0))


def test_unsaveable_programs_say_why(tmp_path):
    def draws(x):
        return x + np.random.standard_normal(x.shape)
    with pytest.raises(tj.UnsupportedError, match="random cannot be saved"):
        tj.trace(draws).save(tmp_path / "r", ONES)


# -- the corpus: every function saved and loaded --------------------------------------------------

ROUND_TRIP = [e for e in test_corpus.ENTRIES if e.fallback is None and not e.marks]
# compiled in every run (kernel-cache hit and bit-identical results); the rest with -m slow
COMPILED_IN_EVERY_RUN = {"box_blur", "heat_2d_in_place", "dataclass_argument",
                         "multiclass_hinge_setitem", "covariance"}


def _corpus_args(entry):
    rng = np.random.default_rng(zlib.crc32(entry.fn.__name__.encode()))
    return entry.make(rng, test_corpus.SMALL)


def _arguments(traced, args):
    """The loaded program's keyword arguments: the traced function's array leaves."""
    leaves, _, static = traced._flatten(args, {})
    return [leaf for leaf, s in zip(leaves, static) if not s]


@pytest.mark.parametrize("entry", ROUND_TRIP, ids=lambda e: e.fn.__name__)
def test_corpus_graph_round_trip(entry, tmp_path):
    """The loaded graph is the saved one, op for op (so the same kernels), and the reference
    interpreter gives bit-identical results on it."""
    traced = tj.trace(entry.fn, **entry.options)
    args = _corpus_args(entry)
    graph = traced._program(args, {})
    serialize.save_graph(tmp_path / "g", graph)
    loaded = serialize.load_graph(tmp_path / "g")
    assert str(loaded) == str(graph)
    values = _arguments(traced, args)
    with np.errstate(all="ignore"):
        assert _bits(tj.interpret(loaded, *values)) == _bits(tj.interpret(graph, *values))


SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                                              reason="compiles every corpus function: "
                                                     "TRACEJIT_SLOW=1"))


@pytest.mark.parametrize("entry", [
    pytest.param(e, id=e.fn.__name__, marks=() if e.fn.__name__ in COMPILED_IN_EVERY_RUN
                 else SLOW) for e in ROUND_TRIP])
def test_corpus_compiled_round_trip(entry, tmp_path):
    """Saved, loaded and compiled: the results are bit-identical and the kernels are those the
    traced function compiled (a cache hit); a function that writes into its arguments loads
    as a program returning (result, {argument: new value})."""
    traced = tj.trace(entry.fn, fallback="raise", **entry.options)
    args = _corpus_args(entry)
    copies = test_corpus._copied(args) if entry.mutates else args
    with np.errstate(all="ignore"):
        expected = traced(*copies)
        traced.save(tmp_path / "g", *args)
        loaded = tj.compile(tj.load(tmp_path / "g"))
        values = _arguments(traced, args)
        result = loaded(**dict(zip(loaded.variables, values)))
    if entry.mutates:  # the arguments' new values, by name, as the traced call left them
        result, written = result
        after = dict(zip(loaded.variables, _arguments(traced, copies)))
        assert written and _bits(written) == _bits({k: after[k] for k in written})
    assert _bits(result) == _bits(expected)
    if not entry.mutates:  # a traced write may be stored straight into the caller's array by
        # its kernel; the loaded program returns new arrays, so that kernel differs
        assert loaded.cache_info().kernels_compiled == 0, "the loaded graph compiled kernels"


# -- parameters -----------------------------------------------------------------------------------

def test_params_round_trip(tmp_path):
    params = {"layers": [{"w": np.ones((2, 3), np.float32), "b": np.zeros(3)},
                         {"w": np.arange(6).reshape(3, 2), "b": None}],
              "step": 7, "lr": 0.5, "flag": True, "scale": np.float32(2.0),
              "pair": (np.array([1 + 2j]), np.bool_(False))}
    tj.save_params(tmp_path / "p", params)
    loaded = tj.load_params(tmp_path / "p.npz")
    assert_same(loaded, params)
    assert type(loaded["step"]) is int and type(loaded["scale"]) is np.float32


def test_params_refuse_what_they_cannot_restore(tmp_path):
    with pytest.raises(tj.UnsupportedError, match="dict keys must be strings"):
        tj.save_params(tmp_path / "p", {1: ONES})
    with pytest.raises(tj.UnsupportedError, match="namedtuple"):
        tj.save_params(tmp_path / "p", collections.namedtuple("P", "a")(ONES))
    np.savez(tmp_path / "bad.npz", header=np.frombuffer(b'{"format": 1}', np.uint8))
    with pytest.raises(tj.GraphFormatError, match="missing"):
        tj.load_params(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", leaf0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(tj.GraphFormatError, match="Python objects"):
        tj.load_params(tmp_path / "obj.npz")


# -- hostile files --------------------------------------------------------------------------------

def _sample_document():
    """A small saved graph with an array constant, views, a reduction and a Python scalar."""
    def f(x, y, k):
        c = np.arange(6.0).reshape(2, 3)
        return {"z": np.sum(x.T[1:] * c + y, axis=1) * k, "m": np.maximum(x, 0)}
    document, arrays = serialize.graph_document(
        tj.trace(f)._program((np.ones((3, 2)), np.ones(3), 2.0), {}))
    return json.dumps(document), arrays


def _symbols_document():
    """A small symbolic program over untyped variables: constants, a property, a slice, a
    method, ufuncs, a NumPy function with keywords, and a gradient."""
    A, B = tj.Variable("A"), tj.Variable("B", shape=(None, 3), dtype=np.float64)
    x = np.sum(np.tanh(A.T[1:] * tj.Constant(np.arange(6.0).reshape(2, 3)) + B), axis=1)
    program = {"z": x * 2.0, "m": np.maximum(A, 0).astype(np.float32),
               "g": tj.gradients(x, "A")}
    document, arrays = serialize.symbols_document(program)
    return json.dumps(document), arrays


SAMPLE, SAMPLE_ARRAYS = _sample_document()
SYMBOLS, SYMBOLS_ARRAYS = _symbols_document()


def _sample(tmp_path, symbols=False):
    """The sample's document (the graph's or the symbolic program's), and its .npz written as
    tmp_path/g.npz."""
    np.savez(tmp_path / "g.npz", **(SYMBOLS_ARRAYS if symbols else SAMPLE_ARRAYS))
    return json.loads(SYMBOLS if symbols else SAMPLE)


def _write(tmp_path, document, arrays=None, name="h"):
    with open(tmp_path / f"{name}.json", "w") as fh:
        fh.write(document if isinstance(document, str) else json.dumps(document))
    if arrays is None:
        with open(tmp_path / "g.npz", "rb") as src, open(tmp_path / f"{name}.npz", "wb") as dst:
            dst.write(src.read())
    else:
        np.savez(tmp_path / f"{name}.npz", **arrays)
    return tmp_path / name


def _node_index(document, op):
    return next(i for i, n in enumerate(document["nodes"]) if n["op"] == op)


def _edit(op, change):
    def edit(doc):
        change(doc["nodes"][_node_index(doc, op)])
    return edit


HOSTILE = {
    "unknown version": (lambda d: d.update(version=2), "unsupported format version 2"),
    "not a graph": (lambda d: d.update(format="pickle"), "not a tracejit graph"),
    "unknown op": (_edit("multiply", lambda n: n.update(op="system")), "unknown op \"system\""),
    "op of another table": (_edit("multiply", lambda n: n.update(op="__import__")),
                            "unknown op"),
    "wrong arity": (_edit("multiply", lambda n: n["args"].append(n["args"][0])),
                    "takes 2 arguments, not 3"),
    "missing attribute": (_edit("sum", lambda n: n["attrs"].pop("axis")), r"missing \['axis'\]"),
    "unknown attribute": (_edit("sum", lambda n: n["attrs"].update(out=None)),
                          r"unexpected \['out'\]"),
    "string attribute": (_edit("sum", lambda n: n["attrs"].update(axis="os.system")),
                         "'os.system' is not allowed"),
    "code as attribute": (_edit("sum", lambda n: n["attrs"].update(keepdims={"eval": "1"})),
                          "is not an attribute value"),
    "axis out of range": (_edit("sum", lambda n: n["attrs"].update(axis={"tuple": [5]})),
                          "axis .* is not a set of axes"),
    "index out of range": (_edit("getitem", lambda n: n["attrs"].update(
        index={"index": [{"tuple": [1, 9, 1]}, {"tuple": [0, 3, 1]}]})), "out of range"),
    "bad permutation": (_edit("transpose", lambda n: n["attrs"].update(axes={"tuple": [0, 0]})),
                        "not a permutation"),
    "object dtype": (_edit("multiply", lambda n: n.update(dtype="|O")),
                     "not a supported dtype"),
    "string dtype": (_edit("input", lambda n: n.update(dtype="<U8")), "not a supported dtype"),
    "declared shape differs": (_edit("multiply", lambda n: n.update(shape=[2, 2])),
                               r"declared float64\[2, 2\], but its op gives float64\[2, 3\]"),
    "negative shape": (_edit("input", lambda n: n.update(shape=[-3, 2])), "is not a shape"),
    "huge shape": (_edit("input", lambda n: n.update(shape=[10**9, 10**9])), "too large"),
    "dangling reference": (_edit("multiply", lambda n: n["args"].__setitem__(0, 10**6)),
                           r"node 1000000, which does not exist \(a dangling reference\)"),
    "dangling output": (lambda d: d.update(outputs=[0, 999]), "not references to nodes"),
    "input out of order": (lambda d: d.update(inputs=list(reversed(d["inputs"]))),
                           "every input node once, in order"),
    "weak array": (_edit("multiply", lambda n: n.update(weak=True)), "weak must be true only"),
    "bad result structure": (lambda d: d.update(out_tree={"kind": "namedtuple"}),
                             "not a result structure"),
    "wrong leaf count": (lambda d: d.update(out_tree={"kind": "tuple", "children": [
        {"kind": "leaf"}]}), "1 leaves for 2 outputs"),
    "bad float": (lambda d: next(n for n in d["nodes"] if "value" in n).update(
        value={"float": "zz"}), "is not a float"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_documents(case, tmp_path):
    document = _sample(tmp_path)
    change, message = HOSTILE[case]
    change(document)
    with pytest.raises(tj.GraphFormatError, match=message):
        tj.load(_write(tmp_path, document))


def _call(name, change):
    def edit(doc):
        change(next(e for e in doc["symbols"] if e.get("call") == name))
    return edit


def _symbol(kind, change):
    def edit(doc):
        change(next(e for e in doc["symbols"] if kind in e))
    return edit


HOSTILE_SYMBOLS = {
    "unknown version": (lambda d: d.update(version=2), "unsupported format version 2"),
    "os.system": (_call("numpy.tanh", lambda e: e.update(call="os.system")),
                  "\"os.system\" is not a function a symbolic program may call"),
    "eval": (_call("numpy.tanh", lambda e: e.update(call="builtins.eval")), "may call"),
    "a method that writes a file": (_call("ndarray.astype", lambda e: e.update(
        call="ndarray.tofile")), "may call"),
    "a property known only when called": (_call("ndarray.T", lambda e: e.update(
        call="ndarray.shape")), "may call"),
    "operator arity": (_call("operator.mul", lambda e: e["args"].append(e["args"][0])),
                       "too many positional arguments"),
    "ufunc arity": (_call("numpy.tanh", lambda e: e["args"].append(1)), "takes 1 arguments"),
    "unknown keyword": (_call("numpy.sum", lambda e: e["kwargs"].update(bogus=1)),
                        "unexpected keyword argument 'bogus'"),
    "out=": (_call("numpy.sum", lambda e: e["kwargs"].update(out={"symbol": 0})),
             r"keyword arguments \['axis', 'out'\] are not allowed"),
    "forward reference": (_call("operator.mul", lambda e: e["args"].__setitem__(0, {
        "symbol": 10**6})), "does not refer to an earlier symbol"),
    "no symbol argument": (_call("numpy.tanh", lambda e: e.update(args=[2])),
                           "no argument is a symbol"),
    "code as a variable name": (_symbol("variable", lambda e: e.update(
        variable="__import__('os')")), "is not a variable name"),
    "two variables of one name": (lambda d: [e.update(variable="A") for e in d["symbols"]
                                             if "variable" in e], "two variables are named 'A'"),
    "bad variable shape": (_symbol("variable", lambda e: e.update(shape=[-1])), "not a shape"),
    "gradient of a call": (_symbol("grad", lambda e: e.update(wrt=[{"symbol": 3}])),
                           "with respect to a list of variables"),
    "gradient out of range": (lambda d: next(e for e in d["symbols"] if e.get("call") ==
                                             "operator.getitem" and e["args"][1] == 0)[
        "args"].__setitem__(1, 5), "gradients are read by index"),
    "string constant": (_symbol("constant", lambda e: e.update(constant="rm -rf")),
                        "a constant is a number or an array"),
    "constant of another dtype": (_symbol("constant", lambda e: e["constant"].update(
        dtype="<f4")), r"float64\[2, 3\], not float32\[2, 3\]"),
    "internal index value": (_call("numpy.sum", lambda e: e["kwargs"].update(axis={
        "index": [0]})), "is not an argument value"),
    "unhashable type name": (_call("numpy.sum", lambda e: e["kwargs"].update(dtype={
        "type": []})), "is not an attribute value"),
    "huge int": (_call("numpy.sum", lambda e: e["kwargs"].update(axis=2**70)),
                 "does not fit in 64 bits"),
    "dangling output": (lambda d: d.update(outputs=[0, 10**6, 1]),
                        "are not references to symbols"),
    "not a symbol": (lambda d: d["symbols"].append({"import": "os"}),
                     "not a variable, constant, call or grad"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SYMBOLS))
def test_hostile_symbol_documents(case, tmp_path):
    document = _sample(tmp_path, symbols=True)
    tj.load(_write(tmp_path, document))  # the sample itself loads
    change, message = HOSTILE_SYMBOLS[case]
    change(document)
    with pytest.raises(tj.GraphFormatError, match=message):
        tj.load(_write(tmp_path, document))


def test_hostile_files(tmp_path):
    document = _sample(tmp_path)
    text = json.dumps(document)
    with pytest.raises(tj.GraphFormatError, match="not a JSON graph"):
        tj.load(_write(tmp_path, text[: len(text) // 2]))  # truncated
    with pytest.raises(tj.GraphFormatError, match="not a JSON graph"):
        tj.load(_write(tmp_path, text.replace('"nodes"', '"nodes\x00\xff', 1)))  # corrupted
    with pytest.raises(tj.GraphFormatError, match="not a JSON graph"):
        tj.load(_write(tmp_path, "[" * 100_000))  # nested too deep for the parser
    arrays = dict(np.load(tmp_path / "g.npz"))
    (name,) = arrays
    with pytest.raises(tj.GraphFormatError, match="Python objects"):
        tj.load(_write(tmp_path, document, {name: np.array([print], dtype=object)}))
    with pytest.raises(tj.GraphFormatError, match=r"float32\[2, 3\], not float64\[2, 3\]"):
        tj.load(_write(tmp_path, document, {name: arrays[name].astype(np.float32)}))
    np.savez_compressed(tmp_path / "bomb.npz", **{name: np.zeros(10**6)})  # 8 MB in 8 KB
    (tmp_path / "g.npz").write_bytes((tmp_path / "bomb.npz").read_bytes())
    with pytest.raises(tj.GraphFormatError, match=r"holds 8000128 bytes, more than a "
                                                  r"float64\[2, 3\]"):
        tj.load(_write(tmp_path, document))  # refused before it is decompressed
    np.savez(tmp_path / "g.npz", **arrays)
    with pytest.raises(tj.GraphFormatError, match="arrays no node uses"):
        tj.load(_write(tmp_path, document, {**arrays, "extra": np.ones(2)}))
    with pytest.raises(tj.GraphFormatError, match="names no unused array"):
        tj.load(_write(tmp_path, document, {}))
    data = (tmp_path / "g.npz").read_bytes()
    _write(tmp_path, document)
    (tmp_path / "h.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(tj.GraphFormatError, match="not a readable .npz"):
        tj.load(tmp_path / "h")
    buffer = io.BytesIO()  # a .npy whose header declares a pickled object array
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(f"{name}.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': "
                   b"False, 'shape': (1,), }" + b" " * 60 + b"\n" + b"cos\nsystem\n.")
    (tmp_path / "h.npz").write_bytes(buffer.getvalue())
    with pytest.raises(tj.GraphFormatError, match="Python objects|not readable"):
        tj.load(tmp_path / "h")


def test_every_op_has_a_saved_form():
    """A new op needs its arity and attribute names in serialize._SIGNATURES (or is a ufunc):
    without them graphs using it could not be loaded."""
    missing = [name for name in OPS if name not in ("input", "const", "random")
               and serialize.signature(name) is None]
    assert not missing


# -- fuzz: mutated valid files load or raise GraphFormatError, nothing else ----------------------

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) |
    st.sampled_from(sorted(OPS) + ["input", "const", "float", "dtype", "index", "tuple",
                                   "array_key", "scalar", "ellipsis", "<f8", "|b1", "#0"]) |
    st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["float", "dtype", "tuple", "index", "array_key", "scalar", "kind",
                         "children", "keys", "op", "args", "attrs", "shape", "symbol", "list",
                         "slice", "type", "array", "call", "kwargs", "variable", "constant",
                         "grad", "wrt", "head"]), inner, max_size=3),
    max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


CALLABLES = serialize._callables()  # what a symbolic program may call, by saved name
_DTYPES = ["|b1", "|i1", "|u1", "<i4", "<i8", "<u8", "<f2", "<f4", "<f8"]


def _mutate(document, data):
    """A few edits: replace, delete or insert any value, or the plausible edits that reach the
    deeper checks: nudge an int, rename an op, change a dtype, swap two list items."""
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["replace", "delete", "insert", "nudge", "op",
                                            "dtype", "swap"]))
        wanted = {"nudge": lambda v: type(v) is int,
                  "op": lambda v: type(v) is str and (v in OPS or v in CALLABLES),
                  "dtype": lambda v: type(v) is str and v in _DTYPES,
                  "swap": lambda v: type(v) is list and len(v) > 1}.get(action, lambda v: True)
        paths = [p for p in _paths(document) if p and wanted(_get(document, p))]
        if not paths:
            continue
        path = data.draw(st.sampled_from(paths))
        parent = _get(document, path[:-1])
        if action == "delete":
            del parent[path[-1]]
        elif action == "insert" and isinstance(parent, list):
            parent.insert(path[-1], data.draw(_VALUES))
        elif action == "nudge":
            parent[path[-1]] += data.draw(st.sampled_from([-1, 1, -2, 2, 10**6, 2**63]))
        elif action == "op":
            names = OPS if parent[path[-1]] in OPS else CALLABLES
            parent[path[-1]] = data.draw(st.sampled_from(sorted(names)))
        elif action == "dtype":
            parent[path[-1]] = data.draw(st.sampled_from(_DTYPES))
        elif action == "swap":
            items = parent[path[-1]]
            i, j = data.draw(st.integers(0, len(items) - 1)), data.draw(st.integers(
                0, len(items) - 1))
            items[i], items[j] = items[j], items[i]
        else:
            parent[path[-1]] = data.draw(_VALUES)
    return document


def _get(document, path):
    for key in path:
        document = document[key]
    return document


FUZZ_EXAMPLES = int(os.environ.get("TRACEJIT_LOADER_FUZZ_EXAMPLES", "300"))


def _fuzz(tmp_path_factory, data):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    symbols = data.draw(st.integers(0, 2)) == 0  # a third of the files: a symbolic program
    document = _sample(tmp_path, symbols)
    if data.draw(st.integers(0, 9)) == 0:  # the .npz: overwrite a few bytes, or truncate it
        raw = bytearray((tmp_path / "g.npz").read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        (tmp_path / "g.npz").write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
        path = _write(tmp_path, json.dumps(document))
    elif data.draw(st.booleans()):
        document = _mutate(document, data)
        path = _write(tmp_path, document)
    else:  # bytes: truncate or overwrite a few
        raw = bytearray(json.dumps(document).encode())
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
        path = _write(tmp_path, raw.decode("latin-1"))
    if symbols:
        _check_loaded_symbols(path)
        return
    try:
        graph = serialize.load_graph(path)
    except tj.GraphFormatError:
        return
    tj.verify(graph)  # what loads is a well-formed graph, and it runs
    zeros = [np.zeros(n.shape, n.dtype) if not n.attrs["scalar"] else
             n.dtype.type(0).item() if n.weak else n.dtype.type(0) for n in graph.inputs]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tj.interpret(graph, *zeros)


def _check_loaded_symbols(path):
    """A symbolic program loads as symbols or raises GraphFormatError; what loads saves again
    as a document that loads to the same program (its calls run when it is compiled and
    called, with the shapes of that call, as a program the user wrote)."""
    try:
        loaded = tj.load(path)
    except tj.GraphFormatError:
        return
    assert all(isinstance(s, Symbol) for s in pytree.flatten(loaded)[0])
    document, arrays = serialize.symbols_document(loaded)
    np.savez(f"{path}2.npz", **arrays)
    with open(f"{path}2.json", "w") as fh:
        json.dump(document, fh)
    assert serialize.symbols_document(tj.load(f"{path}2"))[0] == document


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_loader(tmp_path_factory, data):
    _fuzz(tmp_path_factory, data)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"), reason="long fuzz: TRACEJIT_SLOW=1")
@settings(max_examples=5000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_loader_long(tmp_path_factory, data):
    _fuzz(tmp_path_factory, data)
