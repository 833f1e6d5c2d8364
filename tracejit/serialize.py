"""Checkpoints: graphs saved as versioned JSON plus an .npz of array constants, symbolic programs
over variables without a declared shape or dtype (the recorded calls, in the same way), and
parameter pytrees as .npz files.

Saving writes plain data only: op names, argument references, attributes from a whitelist of
plain types (None, bool, int, float, str, tuples, dtypes, static indices), shapes and dtypes.
Loading trusts nothing in the files: it checks the format version, every op name against the op
table, its arity and attribute names, every attribute value's type, every shape and dtype against
the op's own rules (and NumPy's, for views), that references point to earlier nodes (no cycles),
and it reads arrays with allow_pickle=False. Nothing from a file is evaluated or imported; a bad
file raises GraphFormatError saying what is wrong and where. A symbolic program names each
call's function (a ufunc, a NumPy function or ndarray method the tracer supports, an operator),
resolved on load from an explicit table of those functions.
"""

import functools
import inspect
import json
import keyword
import math
import operator
import os

import numpy as np

from . import pytree
from .errors import GraphFormatError, UnsupportedError
from .graph import Graph, Node
from .ops import OPS, SUPPORTED_KINDS, ArrayKey, Index

FORMAT = "tracejit.graph"
VERSION = 1
SYMBOLS_FORMAT = "tracejit.symbols"  # a symbolic program: its calls, compiled when called
PARAMS_FORMAT = "tracejit.params"

# A value larger than this (bytes) is refused: no real graph needs it, and a hostile file could
# otherwise ask a call to allocate it.
MAX_VALUE_BYTES = 2**40
_MAX_JSON_BYTES = 2**30

# Per op: (number of arguments, or None for any number >= minimum), attribute names it must
# have, attribute names it may have. Ufunc ops take ufunc.nin arguments and no attributes.
_VARIADIC = {"concatenate": 1, "index_put": 2, "histogram": 1}
_SIGNATURES = {
    "where": (3, (), ()), "astype": (1, ("dtype",), ()), "stop_gradient": (1, (), ()),
    **{op: (1, ("axis", "keepdims"), ("dtype",)) for op in ("sum", "prod")},
    **{op: (1, ("axis", "keepdims"), ()) for op in ("max", "min", "any", "all", "argmax",
                                                       "argmin")},
    "cumsum": (1, ("axis", "dtype"), ()), "cumprod": (1, ("axis", "dtype"), ()),
    "accumulate": (1, ("ufunc", "axis", "dtype"), ()),
    "full": (0, ("shape", "dtype", "value"), ()),
    "transpose": (1, ("axes",), ()), "getitem": (1, ("index",), ()),
    "reshape": (1, ("shape",), ()), "broadcast_to": (1, ("shape",), ()),
    "setitem": (2, ("index",), ()), "scatter": (1, ("index", "shape"), ()),
    "scatter_add": (2, ("axis", "shape"), ()),
    "index_put": (None, ("key", "ufunc"), ()), "concatenate": (None, ("axis",), ()),
    "take": (2, ("axis",), ()), "roll": (1, ("shift", "axis"), ()), "tile": (1, ("reps",), ()),
    "repeat": (1, ("repeats", "axis"), ()),
    "sort": (1, ("axis", "kind"), ()), "argsort": (1, ("axis", "kind"), ()),
    "solve": (2, (), ()), "inv": (1, (), ()), "det": (1, (), ()), "cholesky": (1, (), ()),
    "searchsorted": (2, ("side",), ()), "interp": (3, (), ()),
    "histogram": (None, ("bins", "range", "part"), ()),
}
# the strings an attribute may hold: names NumPy looks up itself
_SORT_KINDS = {"quicksort", "mergesort", "heapsort", "stable"}


def signature(op_name):
    """(arity or None, required attribute names, optional ones) of a saveable op, or None."""
    op = OPS.get(op_name)
    if op is None:
        return None
    if op.ufunc is not None:
        return (op.ufunc.nin, (), ())
    return _SIGNATURES.get(op_name)


def _paths(path):
    base = os.fspath(path)
    base = base[:-5] if base.endswith(".json") else base
    return base + ".json", base + ".npz"


# ---------------------------------------------------------------------------------------------
# attribute values <-> JSON (a whitelist of plain types; tagged objects for the rest)

def _encode(value, where):
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value
    if type(value) is float:
        return {"float": value.hex()}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"dtype": np.dtype(value).str}
    if isinstance(value, np.generic):
        return {"scalar": _encode(value.item(), where), "dtype": value.dtype.str}
    if value is Ellipsis:
        return {"ellipsis": True}
    for kind, cls in (("index", Index), ("array_key", ArrayKey), ("tuple", tuple)):
        if type(value) is cls:
            return {kind: [_encode(v, where) for v in value]}
    raise UnsupportedError(f"{where}: a value of type {type(value).__name__} cannot be saved")


def _decode(value, where):
    if value is None or type(value) in (bool, str, int):
        return value
    if type(value) is not dict or len(value) not in (1, 2):
        raise GraphFormatError(f"{where}: {_short(value)} is not an attribute value")
    if len(value) == 2:
        _keys(value, {"scalar", "dtype"}, where)
        dtype = _dtype(value["dtype"], where)
        item = _decode(value["scalar"], where)
        if type(item) not in (bool, int, float) or type(item) is not type(dtype.type(0).item()):
            raise GraphFormatError(f"{where}: {_short(value)} is not a {dtype} scalar")
        _check_int_range(item, dtype, where)
        return dtype.type(item)
    (kind, inner), = value.items()
    if kind == "float":
        try:
            return float.fromhex(inner)
        except (TypeError, ValueError, OverflowError):
            raise GraphFormatError(f"{where}: {_short(inner)} is not a float") from None
    if kind == "dtype":
        return _dtype(inner, where)
    if kind == "ellipsis" and inner is True:
        return Ellipsis
    if kind in ("index", "array_key", "tuple") and type(inner) is list:
        items = tuple(_decode(v, where) for v in inner)
        return {"index": Index, "array_key": ArrayKey, "tuple": tuple}[kind](items)
    raise GraphFormatError(f"{where}: {_short(value)} is not an attribute value")


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys(obj, expected, where, optional=()):
    if type(obj) is not dict:
        raise GraphFormatError(f"{where}: expected an object, found {_short(obj)}")
    missing = set(expected) - set(obj)
    extra = set(obj) - set(expected) - set(optional)
    if missing or extra:
        what = f"missing {sorted(missing)}" if missing else f"unexpected {sorted(extra)}"
        raise GraphFormatError(f"{where}: {what}")


def _dtype(text, where):
    try:
        dtype = np.dtype(text) if type(text) is str and len(text) <= 8 else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in SUPPORTED_KINDS or dtype.fields is not None \
            or dtype.shape or not dtype.isnative:
        raise GraphFormatError(f"{where}: {_short(text)} is not a supported dtype")
    return dtype


def _check_int_range(item, dtype, where):
    if dtype.kind in "iu" and not np.iinfo(dtype).min <= item <= np.iinfo(dtype).max:
        raise GraphFormatError(f"{where}: {item} does not fit in {dtype}")


def _shape(value, dtype, where):
    if type(value) is not list or len(value) > 32 or not all(
            type(d) is int and d >= 0 for d in value):
        raise GraphFormatError(f"{where}: {_short(value)} is not a shape")
    size = math.prod(value)
    if size * dtype.itemsize > MAX_VALUE_BYTES:
        raise GraphFormatError(f"{where}: shape {tuple(value)} of {dtype} is too large "
                               f"(over {MAX_VALUE_BYTES} bytes)")
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# save

def _encode_tree(td):
    if td.kind in ("leaf", "none"):
        return {"kind": td.kind}
    if td.kind in ("tuple", "list"):
        return {"kind": td.kind, "children": [_encode_tree(c) for c in td.children]}
    if td.kind == "dict" and all(type(k) in (str, int) for k in td.meta):
        return {"kind": "dict", "keys": list(td.meta),
                "children": [_encode_tree(c) for c in td.children]}
    raise UnsupportedError(f"results of kind {td.kind} cannot be saved; return arrays, or "
                           "tuples, lists and dicts (with str or int keys) of them")


def _loc(loc):
    return [os.path.basename(str(loc[0])), int(loc[1])] if loc else None


def graph_document(graph):
    """(the JSON document of a standalone graph, its array constants by name)."""
    ids, nodes, arrays = {}, [], {}
    for n in graph.nodes:
        where = f"node {len(nodes)} ({n.op})"
        entry = {"op": n.op, "shape": list(n.shape), "dtype": n.dtype.str, "weak": n.weak,
                 "loc": _loc(n.loc)}
        if n.op == "input":
            entry.update(name=n.attrs["name"], scalar=bool(n.attrs["scalar"]))
        elif n.op == "const":
            value = n.attrs["value"]
            if isinstance(value, np.ndarray):
                entry["array"] = name = f"c{len(arrays)}"
                arrays[name] = value
            else:
                entry["value"] = _encode(value, where)
        else:
            if signature(n.op) is None:
                raise UnsupportedError(f"{where}: the op {n.op} cannot be saved")
            entry["args"] = [ids[a] for a in n.args]
            entry["attrs"] = {k: _encode(v, f"{where} attribute {k}") for k, v in n.attrs.items()}
        ids[n] = len(nodes)
        nodes.append(entry)
    document = {"format": FORMAT, "version": VERSION, "name": str(graph.name),
                "inputs": [ids[n] for n in graph.inputs], "nodes": nodes,
                "outputs": [ids[o] for o in graph.outputs],
                "out_tree": _encode_tree(graph.out_tree)}
    return document, arrays


def save_graph(path, graph):
    """Write a standalone graph (symbolic.standalone) as `path`.json and `path`.npz."""
    _write(path, *graph_document(graph))


def _write(path, document, arrays):
    json_path, npz_path = _paths(path)
    with open(json_path, "w") as f:
        json.dump(document, f, indent=1)
    np.savez(npz_path, **arrays)


# ---------------------------------------------------------------------------------------------
# load

def load_graph(path):
    """The Graph saved at `path` (.json and .npz), validated; GraphFormatError if it is not a
    graph this version of tracejit wrote."""
    return _read(path, graph_from_document)


def _read(path, build):
    """build(the JSON document at `path`, its .npz constants, the file's name)."""
    json_path, npz_path = _paths(path)
    document = _read_json(json_path)
    arrays = _Constants(npz_path)
    try:
        return build(document, arrays, os.path.basename(json_path))
    except RecursionError:  # attribute values or result structures nested absurdly deep
        raise GraphFormatError(f"{json_path}: values nested too deep") from None
    finally:
        arrays.close()


def _read_json(json_path):
    with open(json_path, "rb") as f:
        data = f.read(_MAX_JSON_BYTES + 1)
    if len(data) > _MAX_JSON_BYTES:
        raise GraphFormatError(f"{json_path}: larger than {_MAX_JSON_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # truncated, corrupted, not UTF-8, too deep
        raise GraphFormatError(f"{json_path}: not a JSON graph ({e})") from None


class _Constants:
    """The array constants of a graph's .npz, read on demand without pickle: only the arrays
    nodes name, each checked against its declared size before it is decompressed."""

    def __init__(self, path):
        self.path = path
        try:
            npz = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except Exception as e:  # not a zip, a damaged one, or a pickle refused
            raise GraphFormatError(f"{path}: not a readable .npz ({type(e).__name__}: "
                                   f"{e})") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise GraphFormatError(f"{path}: not an .npz archive")
        self._npz, self.names = npz, set(npz.files)

    def read(self, name, shape, dtype, where):
        nbytes = math.prod(shape) * dtype.itemsize
        try:
            stored = self._npz.zip.getinfo(f"{name}.npy").file_size
            if stored > nbytes + 4096:  # a header is well under 4 KiB
                raise GraphFormatError(f"{where}: the .npz array {name!r} holds {stored} bytes, "
                                       f"more than a {dtype}{list(shape)}")
            return self._npz[name]
        except GraphFormatError:
            raise
        except ValueError as e:
            if "allow_pickle" in str(e):
                raise GraphFormatError(f"{self.path}: array {name!r} holds Python objects (a "
                                       "pickle); refused") from None
            raise GraphFormatError(f"{self.path}: array {name!r} is not readable ({e})") from None
        except Exception as e:  # zipfile, zlib and NumPy's header errors
            raise GraphFormatError(f"{self.path}: array {name!r} is not readable "
                                   f"({type(e).__name__}: {e})") from None

    def close(self):
        self._npz.close()


def _read_npz(npz_path):
    """The arrays of the .npz, read without pickle; plain numeric arrays only."""
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {}
            for name in npz.files:
                try:
                    arrays[name] = npz[name]
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        raise GraphFormatError(f"{npz_path}: array {name!r} holds Python objects "
                                               "(a pickle); refused") from None
                    raise
            return arrays
    except (GraphFormatError, FileNotFoundError):
        raise
    except Exception as e:  # a damaged zip or .npy header: zipfile, zlib and NumPy's errors
        raise GraphFormatError(f"{npz_path}: not a readable .npz ({type(e).__name__}: "
                               f"{e})") from None


def graph_from_document(document, arrays, source="graph"):
    """Build and validate the Graph a JSON document and its constants (_Constants) describe."""
    _keys(document, {"format", "version", "name", "inputs", "nodes", "outputs", "out_tree"},
          source)
    if document["format"] != FORMAT:
        raise GraphFormatError(f"{source}: not a tracejit graph (format "
                               f"{_short(document['format'])})")
    if document["version"] != VERSION or type(document["version"]) is not int:
        raise GraphFormatError(f"{source}: unsupported format version "
                               f"{_short(document['version'])}; this tracejit reads version "
                               f"{VERSION}")
    if type(document["name"]) is not str:
        raise GraphFormatError(f"{source}: the name is not a string")
    entries = document["nodes"]
    if type(entries) is not list:
        raise GraphFormatError(f"{source}: nodes is not a list")
    nodes, used_arrays, names = [], set(), set()
    for i, entry in enumerate(entries):
        node = _node(entry, i, len(entries), len(names), nodes, arrays, used_arrays,
                     f"{source}: node {i}")
        if node.op == "input":
            if node.attrs["name"] in names:
                raise GraphFormatError(f"{source}: node {i}: two inputs are named "
                                       f"{node.attrs['name']!r}")
            names.add(node.attrs["name"])
        nodes.append(node)
    if arrays.names - used_arrays:
        raise GraphFormatError(f"{source}: the .npz holds arrays no node uses: "
                               f"{sorted(arrays.names - used_arrays)[:3]}")
    inputs = _references(document["inputs"], nodes, f"{source}: inputs")
    if [n for n in nodes if n.op == "input"] != inputs:
        raise GraphFormatError(f"{source}: inputs must list every input node once, in order")
    outputs = _references(document["outputs"], nodes, f"{source}: outputs")
    tree = _tree(document["out_tree"], f"{source}: out_tree", [0])
    if pytree.num_leaves(tree) != len(outputs):
        raise GraphFormatError(f"{source}: out_tree has {pytree.num_leaves(tree)} leaves for "
                               f"{len(outputs)} outputs")
    return Graph(document["name"], inputs, outputs, tree)


def _references(refs, nodes, where):
    if type(refs) is not list or not all(type(r) is int and 0 <= r < len(nodes) for r in refs):
        raise GraphFormatError(f"{where}: {_short(refs)} are not references to nodes "
                               f"0..{len(nodes) - 1}")
    return [nodes[r] for r in refs]


def _tree(obj, where, depth):
    depth[0] += 1
    if depth[0] > 10_000:
        raise GraphFormatError(f"{where}: nested too deep")
    kind = obj.get("kind") if type(obj) is dict else None
    if kind in ("leaf", "none"):
        _keys(obj, {"kind"}, where)
        return pytree.LEAF if kind == "leaf" else pytree.TreeDef("none", None, ())
    if kind in ("tuple", "list"):
        _keys(obj, {"kind", "children"}, where)
        children = obj["children"]
        if type(children) is not list:
            raise GraphFormatError(f"{where}: children is not a list")
        return pytree.TreeDef(kind, len(children), tuple(_tree(c, where, depth)
                                                         for c in children))
    if kind == "dict":
        _keys(obj, {"kind", "keys", "children"}, where)
        keys, children = obj["keys"], obj["children"]
        if type(keys) is not list or type(children) is not list or len(keys) != len(children) \
                or not all(type(k) in (str, int) for k in keys) or len(set(keys)) != len(keys):
            raise GraphFormatError(f"{where}: a dict needs distinct str or int keys, one per "
                                   "child")
        return pytree.TreeDef("dict", tuple(keys), tuple(_tree(c, where, depth)
                                                         for c in children))
    raise GraphFormatError(f"{where}: {_short(obj)} is not a result structure")


def _node(entry, i, total, n_inputs, nodes, arrays, used_arrays, where):
    op = entry.get("op") if type(entry) is dict else None
    if type(op) is not str:
        raise GraphFormatError(f"{where}: not a node (no op name)")
    common = {"op", "shape", "dtype", "weak", "loc"}
    if op == "input":
        _keys(entry, common | {"name", "scalar"}, where)
    elif op == "const":
        _keys(entry, common, where, optional=("value", "array"))
        if ("value" in entry) == ("array" in entry):
            raise GraphFormatError(f"{where}: a constant needs one of value and array")
    elif signature(op) is None:
        raise GraphFormatError(f"{where}: unknown op {_short(op)}")
    else:
        _keys(entry, common | {"args", "attrs"}, where)
    where = f"{where} ({op})"
    dtype = _dtype(entry["dtype"], f"{where} dtype")
    shape = _shape(entry["shape"], dtype, f"{where} shape")
    weak, loc = entry["weak"], entry["loc"]
    if type(weak) is not bool or (weak and (shape != () or dtype.str not in ("|b1", "<i8", "<f8"))):
        raise GraphFormatError(f"{where}: weak must be true only for a bool, int64 or float64 "
                               "scalar")
    if loc is not None and not (type(loc) is list and len(loc) == 2 and type(loc[0]) is str
                                and type(loc[1]) is int):
        raise GraphFormatError(f"{where}: loc is not [file, line]")
    loc = tuple(loc) if loc else None
    if op == "input":
        name, scalar = entry["name"], entry["scalar"]
        if type(name) is not str or not name.isidentifier() or type(scalar) is not bool:
            raise GraphFormatError(f"{where}: an input needs an identifier name and a bool "
                                   "scalar")
        if (weak and not scalar) or (scalar and shape != ()):
            raise GraphFormatError(f"{where}: a scalar input has shape () (and a weak one is "
                                   "a scalar)")
        return Node("input", (), {"name": name, "index": n_inputs, "scalar": scalar}, shape,
                    dtype, weak, loc)
    if op == "const":
        return Node("const", (), {"value": _const_value(entry, shape, dtype, weak, arrays,
                                                        used_arrays, where)},
                    shape, dtype, weak, loc)
    refs = entry["args"]
    if type(refs) is list:
        for r in refs:
            if type(r) is int and i <= r < total:
                raise GraphFormatError(f"{where}: refers to node {r}, which does not come "
                                       "before it (a cycle)")
            if type(r) is int and not 0 <= r < total:
                raise GraphFormatError(f"{where}: refers to node {r}, which does not exist "
                                       "(a dangling reference)")
    args = _references(refs, nodes, f"{where} args")
    attrs = _attrs(op, entry["attrs"], len(args), where)
    _check_static(op, args, attrs, where)
    try:
        inferred_shape, inferred_dtype = OPS[op].infer(args, attrs)
        inferred_shape, inferred_dtype = tuple(inferred_shape), np.dtype(inferred_dtype)
    except Exception as e:  # the op's own rules reject these arguments or attributes
        raise GraphFormatError(f"{where}: invalid arguments or attributes "
                               f"({type(e).__name__}: {e})") from None
    if inferred_shape != shape or inferred_dtype != dtype:
        raise GraphFormatError(f"{where}: declared {dtype}{list(shape)}, but its op gives "
                               f"{inferred_dtype}{list(inferred_shape)}")
    if weak and not all(a.weak for a in args):
        raise GraphFormatError(f"{where}: weak only when every argument is weak")
    return Node(op, args, attrs, shape, dtype, weak, loc)


def _const_value(entry, shape, dtype, weak, arrays, used_arrays, where):
    if "array" in entry:
        name = entry["array"]
        if type(name) is not str or name not in arrays.names or name in used_arrays:
            raise GraphFormatError(f"{where}: {_short(name)} names no unused array in the .npz")
        used_arrays.add(name)
        value = arrays.read(name, shape, dtype, where)
        if value.shape != shape or value.dtype != dtype:
            raise GraphFormatError(f"{where}: the .npz array {name!r} is {value.dtype}"
                                   f"{list(value.shape)}, not {dtype}{list(shape)}")
        if weak:
            raise GraphFormatError(f"{where}: an array constant is never weak")
        return value
    value = _decode(entry["value"], f"{where} value")
    if shape != ():
        raise GraphFormatError(f"{where}: an inline constant is a scalar")
    if weak:
        expected = {"b": bool, "i": int, "f": float}[dtype.kind]
        if type(value) is not expected:
            raise GraphFormatError(f"{where}: value is not a Python {expected.__name__}")
        if expected is int:
            _check_int_range(value, dtype, where)
        return value
    if not isinstance(value, np.generic) or value.dtype != dtype:
        raise GraphFormatError(f"{where}: value is not a {dtype} scalar")
    return value


def _attrs(op, attrs, nargs, where):
    arity, required, optional = signature(op)
    if arity is None:
        if nargs < _VARIADIC[op]:
            raise GraphFormatError(f"{where}: takes at least {_VARIADIC[op]} arguments, "
                                   f"not {nargs}")
    elif nargs != arity:
        raise GraphFormatError(f"{where}: takes {arity} arguments, not {nargs}")
    _keys(attrs, required, f"{where} attributes", optional)
    decoded = {k: _decode(v, f"{where} attribute {k}") for k, v in attrs.items()}
    for k, v in decoded.items():
        _check_value(op, k, v, f"{where} attribute {k}")
    return decoded


def _check_value(op, key, value, where):
    """Strings only where an op expects a name NumPy looks up (a ufunc, a sort kind) or an
    index argument; every nested value plain."""
    if type(value) is str:
        if key == "ufunc" and op in ("accumulate", "index_put") and \
                isinstance(getattr(np, value, None), np.ufunc) and value.isidentifier():
            return
        if key == "kind" and op in ("sort", "argsort") and value in _SORT_KINDS:
            return
        if key == "side" and op == "searchsorted" and value in ("left", "right"):
            return
        raise GraphFormatError(f"{where}: {value!r} is not allowed here")
    if value is None and key == "ufunc" and op == "index_put":
        return
    if key == "ufunc":
        raise GraphFormatError(f"{where}: not a NumPy ufunc name")
    if key == "value" and (type(value) not in (bool, int, float) and
                           not isinstance(value, np.generic)):
        raise GraphFormatError(f"{where}: not a number")
    if key == "value" and type(value) is int and not -2**63 <= value < 2**64:
        raise GraphFormatError(f"{where}: {value} does not fit in 64 bits")
    if key != "value" and type(value) is int and not -2**62 <= value < 2**62:
        raise GraphFormatError(f"{where}: {value} is out of range for a count, axis or index")
    if isinstance(value, tuple):
        for item in value:
            if type(value) is ArrayKey and type(item) is str:
                if not (item[:1] == "#" and item[1:].isdigit() and len(item) < 8):
                    raise GraphFormatError(f"{where}: {item!r} is not an index argument")
                continue
            _check_value(op, None, item, where)


def _check_static(op, args, attrs, where):
    """Facts the op's shape rule takes for granted from the tracer: axes in range, indices
    within their dimensions (checked by NumPy on an array of zero strides), index arguments
    that exist."""
    def fail(what):
        raise GraphFormatError(f"{where}: {what}")

    ndim = args[0].ndim if args else 0
    axis = attrs.get("axis")
    axes = axis if isinstance(axis, tuple) else () if axis is None else (axis,)
    if not all(type(a) is int and 0 <= a < ndim for a in axes) or \
            len(set(axes)) != len(axes):
        fail(f"axis {axis!r} is not a set of axes of a {ndim}-d value")
    if op == "transpose" and not (type(attrs["axes"]) is tuple and all(
            type(a) is int for a in attrs["axes"]) and sorted(attrs["axes"]) == list(range(ndim))):
        fail(f"axes {attrs['axes']!r} are not a permutation of {ndim} axes")
    for key in ("shape", "reps"):
        value = attrs.get(key)
        if key in attrs and not (type(value) is tuple and len(value) <= 32 and all(
                type(d) is int and d >= 0 for d in value) and math.prod(value) <= MAX_VALUE_BYTES):
            fail(f"{key} {value!r} is not a tuple of lengths (of at most {MAX_VALUE_BYTES} "
                 "elements)")
    if "repeats" in attrs and not (type(attrs["repeats"]) is int and attrs["repeats"] >= 0):
        fail("repeats is not a count")
    if op == "histogram" and not (len(args) <= 2 and attrs["part"] in (0, 1) and type(
            attrs["bins"]) is int and attrs["bins"] >= 1):
        fail("a histogram has one or two arguments, a number of bins and part 0 or 1")
    index = attrs.get("index")
    if index is not None:
        if type(index) is not Index:
            fail("index is not a static index")
        source = attrs["shape"] if op == "scatter" else args[0].shape
        if not all(e is None or type(e) is int or (type(e) is tuple and len(e) == 3 and all(
                type(x) is int or (x is None and k == 1) for k, x in enumerate(e)) and e[2] != 0)
                   for e in index):
            fail(f"index {tuple(index)} has entries that are not int, None or (start, stop, step)")
        if sum(e is not None for e in index) > len(source):
            fail(f"index {tuple(index)} has more entries than dimensions")
        region = OPS["getitem"].infer([Node("input", (), {}, source, args[0].dtype)],
                                      {"index": index})[0]
        dummy = np.broadcast_to(np.zeros((), np.int8), source)
        try:
            numpy_region = dummy[index.key].shape
        except IndexError as e:
            fail(f"index {index} is out of range for shape {source} ({e})")
        if numpy_region != region:
            fail(f"index {index} is out of range for shape {source}")
    key = attrs.get("key")
    if key is not None:
        if type(key) is not ArrayKey:
            fail("key is not an index key")
        refs = sorted(int(e[1:]) for e in key if type(e) is str)
        if refs != list(range(len(args) - 2)):
            fail(f"key {tuple(key)} does not refer to each index argument once")
        for e in key:
            if type(e) is tuple and not (len(e) == 3 and all(x is None or type(x) is int
                                                             for x in e) and e[2] != 0):
                fail(f"key {tuple(key)} has a slice that is not (start, stop, step)")
            if type(e) is not tuple and type(e) is not str and e is not None and \
                    e is not Ellipsis and type(e) is not int:
                fail(f"key {tuple(key)} has an entry of type {type(e).__name__}")


# ---------------------------------------------------------------------------------------------
# symbolic programs: the calls symbols recorded, for variables without a shape or dtype
#
# {"format": "tracejit.symbols", "version": 1, "symbols": [...], "outputs": [...], "out_tree"}
# where each symbol is one of (references are {"symbol": i} to an earlier one):
#   {"variable": name, "shape": null or [length or null, ...], "dtype": null or "<f8", "loc"}
#   {"constant": a value, "loc"}
#   {"call": "numpy.exp" / "numpy.add.reduce" / "numpy.linalg.solve" / "operator.add" /
#            "ndarray.sum" (a method) / "ndarray.T" (a property), "args": [...], "kwargs", "loc"}
#   {"grad": reference, "wrt": [variable references], "head": a value, "loc"}: the gradients,
#       read by index (operator.getitem)
# A value is plain data (as attributes), {"list"/"tuple": [...]}, {"slice": [start, stop,
# step]}, {"type": "float"} (bool, int, float, complex), a reference, or {"array": name in the
# .npz, "shape", "dtype"}.

_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and_", "or_", "xor",
              "lshift", "rshift", "matmul", "eq", "ne", "lt", "le", "gt", "ge", "neg", "pos",
              "abs", "invert", "getitem")
_UFUNC_METHODS = ("reduce", "accumulate", "reduceat", "outer")
# ndarray methods that need values or write in place: never recorded by a working program
_VALUE_METHODS = {"fill", "put", "partition", "resize", "setfield", "item", "tolist"}
_UFUNC_KEYWORDS = {"where", "casting", "order", "dtype", "subok"}
_SCALAR_TYPES = {"bool": bool, "int": int, "float": float, "complex": complex}


def _function_name(fn):
    module = getattr(fn, "__module__", None) or "numpy"
    return module.replace("numpy._core.", "numpy.").replace("numpy.core.", "numpy.") + \
        "." + fn.__name__


@functools.cache
def _callables():
    """{saved name: function} of everything a symbolic program may call; a method or property
    of ndarray maps to its name."""
    from .numpy_api import FUNCTIONS
    from .symbolic import _UNKNOWN_UNTIL_CALLED
    from .tracing import Proxy
    table = {f"operator.{name}": getattr(operator, name) for name in _OPERATORS}
    for name in dir(np):
        ufunc = getattr(np, name)
        if isinstance(ufunc, np.ufunc) and ufunc.__name__ == name:
            table[f"numpy.{name}"] = ufunc
            table.update({f"numpy.{name}.{m}": getattr(ufunc, m) for m in _UFUNC_METHODS})
    for fn in FUNCTIONS:
        table.setdefault(_function_name(fn), fn)
    for name in dir(np.ndarray):
        if not name.startswith("_") and hasattr(Proxy, name) and \
                name not in _VALUE_METHODS | _UNKNOWN_UNTIL_CALLED:
            table[f"ndarray.{name}"] = name
    return table


@functools.cache
def _names():
    return {fn: name for name, fn in _callables().items() if type(fn) is not str}


def save_symbols(path, outputs):
    """Write symbols (or a pytree of them) as `path`.json and `path`.npz."""
    _write(path, *symbols_document(outputs))


def symbols_document(outputs):
    """(the JSON document of a symbolic program, its array constants by name)."""
    from .symbolic import Variable, _postorder, variables_of
    leaves, tree = pytree.flatten(outputs)
    # variables first, in creation order: the loaded program takes them in the same order
    order = variables_of(leaves)
    order += [s for s in _postorder(leaves) if not isinstance(s, Variable)]
    ids, entries, arrays = {}, [], {}
    for sym in order:
        entry = _symbol_entry(sym, ids, arrays, f"symbol {len(entries)} ({sym._label})")
        entry["loc"] = _loc(sym._loc)
        ids[id(sym)] = len(entries)
        entries.append(entry)
    document = {"format": SYMBOLS_FORMAT, "version": VERSION, "symbols": entries,
                "outputs": [ids[id(s)] for s in leaves], "out_tree": _encode_tree(tree)}
    return document, arrays


def _symbol_entry(sym, ids, arrays, where):
    from .symbolic import Variable, _call_method, _constant, _Gradients

    def value(x):
        return _encode_value(x, ids, arrays, where)
    if isinstance(sym, Variable):
        return {"variable": sym.name, "shape": None if sym.shape is None else list(sym.shape),
                "dtype": None if sym.dtype is None else sym.dtype.str}
    if isinstance(sym, _Gradients):
        return {"grad": value(sym._of), "wrt": [value(v) for v in sym._wrt],
                "head": value(sym._args[1])}
    fn, args = sym._fn, sym._args
    if fn is _constant:
        return {"constant": value(args[0])}
    if fn is _call_method or fn is getattr:
        name, args = f"ndarray.{args[1]}", (args[0], *args[2:])
    else:
        try:
            name = _names().get(fn)
        except TypeError:  # not hashable: not a function of the table
            name = None
    if name not in _callables():
        what = name or getattr(fn, "__name__", repr(fn))
        raise UnsupportedError(f"{where}: a call of {what!r} cannot be saved; save with "
                               "example arrays for the variables")
    return {"call": name, "args": [value(a) for a in args],
            "kwargs": {k: value(v) for k, v in sym._kwargs.items()}}


def _encode_value(x, ids, arrays, where):
    from .symbolic import Symbol
    if isinstance(x, Symbol):
        return {"symbol": ids[id(x)]}
    if type(x) in (list, tuple):
        return {type(x).__name__: [_encode_value(v, ids, arrays, where) for v in x]}
    if type(x) is slice:
        return {"slice": [_encode_value(v, ids, arrays, where)
                          for v in (x.start, x.stop, x.step)]}
    if type(x) is type and x in _SCALAR_TYPES.values():  # x.astype(float): a dtype's alias
        return {"type": x.__name__}
    if type(x) is np.ndarray:
        name = f"c{len(arrays)}"
        arrays[name] = x
        return {"array": name, "shape": list(x.shape), "dtype": x.dtype.str}
    return _encode(x, where)


def symbols_from_document(document, arrays, source="symbols"):
    """The symbols a JSON document of a symbolic program describes, validated."""
    from .symbolic import Symbol, _constant, _Gradients
    _keys(document, {"format", "version", "symbols", "outputs", "out_tree"}, source)
    if document["version"] != VERSION or type(document["version"]) is not int:
        raise GraphFormatError(f"{source}: unsupported format version "
                               f"{_short(document['version'])}; this tracejit reads version "
                               f"{VERSION}")
    entries = document["symbols"]
    if type(entries) is not list:
        raise GraphFormatError(f"{source}: symbols is not a list")
    symbols, used_arrays, names = [], set(), set()
    for i, entry in enumerate(entries):
        where = f"{source}: symbol {i}"
        kind = next((k for k in ("variable", "constant", "call", "grad")
                     if type(entry) is dict and k in entry), None)
        if kind is None:
            raise GraphFormatError(f"{where}: not a variable, constant, call or grad")
        fields = {"variable": {"shape", "dtype"}, "constant": set(), "call": {"args", "kwargs"},
                  "grad": {"wrt", "head"}}[kind]
        _keys(entry, {kind, "loc", *fields}, where)
        loc = entry["loc"]
        if loc is not None and not (type(loc) is list and len(loc) == 2 and
                                    type(loc[0]) is str and type(loc[1]) is int):
            raise GraphFormatError(f"{where}: loc is not [file, line]")
        loc = tuple(loc) if loc else None

        def value(x, what, where=where):
            return _decode_value(x, symbols, arrays, used_arrays, f"{where} {what}")
        if kind == "variable":
            sym = _variable(entry, names, loc, where)
        elif kind == "constant":
            constant = value(entry["constant"], "value")
            if type(constant) not in (bool, int, float, np.ndarray) and \
                    not isinstance(constant, np.generic):
                raise GraphFormatError(f"{where}: a constant is a number or an array")
            sym = Symbol(_constant, (constant,), label="const", loc=loc)
        elif kind == "grad":
            sym = _gradients(entry, value, loc, where)
        else:
            sym = _call(entry, value, loc, where)
        symbols.append(sym)
    if arrays.names - used_arrays:
        raise GraphFormatError(f"{source}: the .npz holds arrays no symbol uses: "
                               f"{sorted(arrays.names - used_arrays)[:3]}")
    refs = document["outputs"]
    if type(refs) is not list or not all(type(r) is int and 0 <= r < len(symbols) and
                                         not isinstance(symbols[r], _Gradients) for r in refs):
        raise GraphFormatError(f"{source}: outputs {_short(refs)} are not references to "
                               "symbols")
    tree = _tree(document["out_tree"], f"{source}: out_tree", [0])
    if pytree.num_leaves(tree) != len(refs):
        raise GraphFormatError(f"{source}: out_tree has {pytree.num_leaves(tree)} leaves for "
                               f"{len(refs)} outputs")
    return pytree.unflatten(tree, [symbols[r] for r in refs])


def _gradients(entry, value, loc, where):
    from .symbolic import Symbol, Variable, _Gradients
    of, head = value(entry["grad"], "grad"), value(entry["head"], "head")
    wrt = [value(v, "wrt") for v in entry["wrt"]] if type(entry["wrt"]) is list else None
    if not isinstance(of, Symbol) or isinstance(of, _Gradients) or wrt is None or \
            not all(isinstance(v, Variable) for v in wrt):
        raise GraphFormatError(f"{where}: a gradient is of a symbol with respect to a list of "
                               "variables")
    if not (head is None or isinstance(head, (Symbol, np.ndarray, np.generic)) or
            type(head) in (bool, int, float)) or isinstance(head, _Gradients):
        raise GraphFormatError(f"{where}: head is not a value")
    return _Gradients(of, wrt, head, loc)


def _variable(entry, names, loc, where):
    from .symbolic import Variable
    name, shape, dtype = entry["variable"], entry["shape"], entry["dtype"]
    if type(name) is not str or not name.isidentifier() or keyword.iskeyword(name):
        raise GraphFormatError(f"{where}: {_short(name)} is not a variable name")
    if name in names:
        raise GraphFormatError(f"{where}: two variables are named {name!r}")
    names.add(name)
    if shape is not None and not (type(shape) is list and len(shape) <= 32 and all(
            d is None or (type(d) is int and 0 <= d < 2**62) for d in shape)):
        raise GraphFormatError(f"{where}: {_short(shape)} is not a shape")
    variable = Variable(name, shape, None if dtype is None else _dtype(dtype, f"{where} dtype"))
    variable._loc = loc
    return variable


def _call(entry, value, loc, where):
    from .symbolic import Symbol, _call_method, _Gradients
    name, args, kwargs = entry["call"], entry["args"], entry["kwargs"]
    fn = _callables().get(name) if type(name) is str else None
    if fn is None:
        raise GraphFormatError(f"{where}: {_short(name)} is not a function a symbolic program "
                               "may call")
    where = f"{where} ({name})"
    if type(args) is not list or type(kwargs) is not dict:
        raise GraphFormatError(f"{where}: args is not a list or kwargs not an object")
    if not all(k.isidentifier() and k != "out" for k in kwargs):
        raise GraphFormatError(f"{where}: keyword arguments {sorted(kwargs)} are not allowed")
    args = [value(a, f"argument {i}") for i, a in enumerate(args)]
    kwargs = {k: value(v, f"argument {k}") for k, v in kwargs.items()}
    leaves = pytree.flatten((args, kwargs))[0]
    groups = [x for x in leaves if isinstance(x, _Gradients)]
    if not any(isinstance(x, Symbol) for x in leaves):
        raise GraphFormatError(f"{where}: no argument is a symbol")
    if groups and not (name == "operator.getitem" and args[0] is groups[0] and len(groups) == 1
                       and type(args[1]) is int and 0 <= args[1] < len(groups[0]._wrt)):
        raise GraphFormatError(f"{where}: gradients are read by index, one at a time")
    method = isinstance(fn, str)
    if (method or name == "operator.getitem") and not (args and isinstance(args[0], Symbol)):
        raise GraphFormatError(f"{where}: the first argument is not a symbol")
    if method and not callable(getattr(np.ndarray, fn)):  # a property
        if len(args) != 1 or kwargs:
            raise GraphFormatError(f"{where}: a property takes the symbol only")
        return Symbol(getattr, (args[0], fn), label=fn, loc=loc)
    _check_arity(fn, args, kwargs, where)
    if method:
        return Symbol(_call_method, (args[0], fn, *args[1:]), kwargs, label=fn, loc=loc)
    return Symbol(fn, args, kwargs, label=name.rsplit(".", 1)[-1].rstrip("_"), loc=loc)


def _check_arity(fn, args, kwargs, where):
    from .tracing import Proxy
    if isinstance(fn, np.ufunc):
        if len(args) != fn.nin or not set(kwargs) <= _UFUNC_KEYWORDS:
            raise GraphFormatError(f"{where}: takes {fn.nin} arguments and keywords from "
                                   f"{sorted(_UFUNC_KEYWORDS)}")
        return
    signature = _signature(getattr(Proxy, fn) if isinstance(fn, str) else fn)
    try:
        if signature is not None:  # without one, the call checks its arguments
            signature.bind(*args, **kwargs)
    except TypeError as e:
        raise GraphFormatError(f"{where}: {e}") from None


@functools.cache
def _signature(fn):
    try:
        return inspect.signature(fn)
    except ValueError:
        return None


def _decode_value(x, symbols, arrays, used_arrays, where):
    def inner(v):
        return _decode_value(v, symbols, arrays, used_arrays, where)
    if type(x) is dict and len(x) == 1:
        (tag, items), = x.items()
        if tag == "symbol":
            if type(items) is not int or not 0 <= items < len(symbols):
                raise GraphFormatError(f"{where}: {_short(x)} does not refer to an earlier "
                                       "symbol")
            return symbols[items]
        if tag in ("list", "tuple") and type(items) is list:
            return (list if tag == "list" else tuple)(inner(v) for v in items)
        if tag == "type" and type(items) is str and items in _SCALAR_TYPES:
            return _SCALAR_TYPES[items]
        if tag == "slice" and type(items) is list and len(items) == 3:
            parts = [inner(v) for v in items]
            if not all(p is None or type(p) is int for p in parts):
                raise GraphFormatError(f"{where}: a slice holds ints or None")
            return slice(*parts)
    if type(x) is dict and set(x) == {"array", "shape", "dtype"}:
        name, dtype = x["array"], _dtype(x["dtype"], where)
        shape = _shape(x["shape"], dtype, where)
        if type(name) is not str or name not in arrays.names or name in used_arrays:
            raise GraphFormatError(f"{where}: {_short(name)} names no unused array in the .npz")
        used_arrays.add(name)
        array = arrays.read(name, shape, dtype, where)
        if array.shape != shape or array.dtype != dtype:
            raise GraphFormatError(f"{where}: the .npz array {name!r} is {array.dtype}"
                                   f"{list(array.shape)}, not {dtype}{list(shape)}")
        array.flags.writeable = False
        return array
    decoded = _decode(x, where)  # a number, string, dtype, None or Ellipsis
    if type(decoded) in (Index, ArrayKey, tuple):
        raise GraphFormatError(f"{where}: {_short(x)} is not an argument value")
    if type(decoded) is int and not -2**63 <= decoded < 2**64:
        raise GraphFormatError(f"{where}: {decoded} does not fit in 64 bits")
    return decoded


# ---------------------------------------------------------------------------------------------
# public entry points

def load(path):
    """Load a saved program (`D.save(path)`, `f.save(path, *args)`): symbols with the saved
    structure, one Variable per input; `tj.compile(tj.load(path))(x=...)` runs it."""
    from .symbolic import symbols_of

    def build(document, arrays, source):
        if type(document) is dict and document.get("format") == SYMBOLS_FORMAT:
            return symbols_from_document(document, arrays, source)
        return symbols_of(graph_from_document(document, arrays, source))
    return _read(path, build)


def save_params(path, params):
    """Save a pytree of arrays (dicts with str keys, lists, tuples, None; arrays, NumPy and
    Python scalars as leaves) as one .npz, without pickle."""
    leaves, tree = pytree.flatten(params)
    arrays = {}
    kinds = []
    for i, leaf in enumerate(leaves):
        if type(leaf) in (bool, int, float):
            kinds.append(type(leaf).__name__)
        elif isinstance(leaf, np.generic):
            kinds.append("scalar")
        elif type(leaf) is np.ndarray:
            kinds.append("array")
        else:
            raise UnsupportedError(f"save_params: a leaf of type {type(leaf).__name__}; "
                                   "parameters are arrays and scalars")
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "biufc":
            raise UnsupportedError(f"save_params: a leaf of dtype {arr.dtype}")
        arrays[f"leaf{i}"] = arr
    header = {"format": PARAMS_FORMAT, "version": VERSION, "tree": _encode_params_tree(tree),
              "kinds": kinds}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    path = os.fspath(path)
    np.savez(path if path.endswith(".npz") else path + ".npz", **arrays)


def _encode_params_tree(td):
    if td.kind == "dict" and not all(type(k) is str for k in td.meta):
        raise UnsupportedError("save_params: dict keys must be strings")
    if td.kind not in ("leaf", "none", "tuple", "list", "dict"):
        raise UnsupportedError(f"save_params: containers of kind {td.kind} cannot be saved; "
                               "use dicts, lists and tuples")
    return _encode_tree(td)


def load_params(path):
    """The pytree saved by save_params, read with allow_pickle=False and validated."""
    path = os.fspath(path)
    path = path if path.endswith(".npz") else path + ".npz"
    arrays = _read_npz(path)
    header = arrays.pop("header", None)
    if header is None or header.dtype != np.uint8 or header.ndim != 1:
        raise GraphFormatError(f"{path}: no parameter header")
    try:
        header = json.loads(header.tobytes())
    except (ValueError, RecursionError) as e:
        raise GraphFormatError(f"{path}: the header is not JSON ({e})") from None
    _keys(header, {"format", "version", "tree", "kinds"}, path)
    if header["format"] != PARAMS_FORMAT or header["version"] != VERSION:
        raise GraphFormatError(f"{path}: not tracejit parameters of version {VERSION}")
    try:
        tree = _tree(header["tree"], f"{path}: tree", [0])
    except RecursionError:
        raise GraphFormatError(f"{path}: the tree is nested too deep") from None
    kinds = header["kinds"]
    n = pytree.num_leaves(tree) if tree.kind != "none" else 0
    if type(kinds) is not list or len(kinds) != n or set(arrays) != {f"leaf{i}" for i in range(n)}:
        raise GraphFormatError(f"{path}: the tree has {n} leaves; the file does not hold them")
    leaves = []
    for i, kind in enumerate(kinds):
        arr = arrays[f"leaf{i}"]
        if arr.dtype.kind not in "biufc" or arr.dtype.fields is not None:
            raise GraphFormatError(f"{path}: leaf {i} has dtype {arr.dtype}")
        if kind == "array":
            leaves.append(arr)
        elif kind in ("scalar", "bool", "int", "float") and arr.shape == ():
            leaves.append(arr[()] if kind == "scalar" else
                          {"bool": bool, "int": int, "float": float}[kind](arr.item()))
        else:
            raise GraphFormatError(f"{path}: leaf {i}: {_short(kind)} does not describe "
                                   f"an array of shape {arr.shape}")
    return pytree.unflatten(tree, leaves)
