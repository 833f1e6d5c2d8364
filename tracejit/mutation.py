"""Mutation, recorded functionally.

Every traced array belongs to a Buffer: the memory it lives in. A view (a slice, a transpose, a
reshape) is its buffer seen through a path of view ops. A write (`x[key] = v`, `x += y`,
`np.add(a, b, out=x)`, `np.copyto(x, v)`) makes a new version of the buffer: a `setitem` node
rebuilds the whole base with the region replaced, the right-hand side evaluated before the write.
A write through integer index arrays (`x[idx] = v`, `np.add.at(x, idx, v)`) is an `index_put`
node that rebuilds the written view, placed back into the base the same way.
A proxy re-derives its value from the current version of its buffer whenever the buffer changed,
so every alias sees every write, as in NumPy. Arguments written by the function are written back
into the caller's arrays at the end of the call.
"""

import numpy as np

from .errors import TraceError, UnsupportedError, with_location
from .graph import Node
from .ops import OPS


class Buffer:
    """The memory behind one or more proxies: `node` is its current value, `version` counts the
    writes, `input` is the argument leaf it came from (written back at the end), `ambiguous` says
    a reshape of it may have copied or not (NumPy decides by strides), so writes are refused."""

    __slots__ = ("node", "version", "input", "contiguous", "ambiguous")

    def __init__(self, node, input=None, contiguous=True):
        self.node = node
        self.version = 0
        self.input = input
        self.contiguous = contiguous
        self.ambiguous = False


def view_node(node, op_name, attrs):
    shape, dtype = OPS[op_name].infer([node], attrs)
    return Node(op_name, (node,), attrs, shape, dtype, False, node.loc)


def share(result, source, op_name, attrs):
    """Make `result`, recorded as `op_name(source, **attrs)`, a view of source's buffer."""
    from .tracing import Proxy
    if not isinstance(source, Proxy) or not isinstance(result, Proxy):
        return result
    buffer = source._buffer()
    if op_name == "reshape":
        copies = _reshape_copies(buffer, source._path, attrs["shape"])
        if copies:
            return result  # NumPy copies: the result is an array of its own
        if copies is None:
            buffer.ambiguous = True  # NumPy copies or not by strides, unknown while tracing
    result._base, result._path = buffer, source._path + ((op_name, attrs),)
    result._version = buffer.version
    return result


def _standin(buffer, path):
    """The view `path` of `buffer` as NumPy would lay it out, on a stand-in with the buffer's
    C-order strides and no memory of its own (nothing is ever read or copied); None when the
    buffer's strides are not known while tracing (an argument that is not C-contiguous)."""
    if not buffer.contiguous or any(op not in ("getitem", "transpose", "reshape")
                                    for op, _ in path):
        return None
    node = buffer.node
    strides = [node.dtype.itemsize] * node.ndim
    for i in range(node.ndim - 2, -1, -1):
        strides[i] = strides[i + 1] * max(node.shape[i + 1], 1)
    view = np.lib.stride_tricks.as_strided(np.zeros(1, node.dtype), node.shape, strides,
                                           writeable=False)
    try:
        for op_name, attrs in path:
            view = np.reshape(view, attrs["shape"], copy=False) if op_name == "reshape" \
                else OPS[op_name].ref(view, **attrs)
    except ValueError:
        return None
    return view


def _reshape_copies(buffer, path, shape):
    """Whether NumPy's reshape of the view `path` of `buffer` copies (True) or is a view
    (False), as NumPy decides on the stand-in; None when that is not known while tracing."""
    view = _standin(buffer, path)
    if view is None:
        return None
    try:
        np.reshape(view, shape, copy=False)
    except ValueError:
        return True
    return False


def is_c_contiguous(proxy):
    """True if eager NumPy's array for this traced value is C-contiguous (False when that is
    not known while tracing)."""
    if proxy._base is None:
        return True  # a value computed by the function: a fresh C-ordered array
    view = _standin(proxy._base, proxy._path)
    return view is not None and view.flags.c_contiguous


def _rebuild(node, path, value):
    """`node` with the region that `path` selects replaced by `value` (of the region's shape and
    node's dtype)."""
    if not path:
        return value
    (op_name, attrs), rest = path[0], path[1:]
    region = _rebuild(view_node(node, op_name, attrs), rest, value)
    if op_name == "getitem":
        return Node("setitem", (node, region), {"index": attrs["index"]}, node.shape,
                    node.dtype, False, value.loc)
    if op_name == "transpose":
        back = {"axes": tuple(int(a) for a in np.argsort(attrs["axes"]))}
        return view_node(region, "transpose", back)
    if op_name == "reshape":
        return view_node(region, "reshape", {"shape": node.shape})
    raise with_location(ValueError, "assignment destination is read-only")  # broadcast_to


def write(target, index, value):
    """target[index] = value, with `index` a static basic Index (None for the whole array):
    the value is broadcast to the region and cast to target's dtype, as NumPy's assignment."""
    from .tracing import Proxy, apply
    buffer = _writable(target)
    path = target._path if index is None else target._path + (("getitem", {"index": index}),)
    region = target._node_at(path)
    value = apply("astype", [value], dtype=target.dtype) if not (
        isinstance(value, Proxy) and value.dtype == target.dtype) else value
    if value.shape != region.shape:
        value = apply("broadcast_to", [value], shape=region.shape)
    # the graph is functional: the right-hand side reads the version before this write, so
    # `x[1:] = x[:-1]` shifts as in NumPy
    buffer.node = _rebuild(buffer.node, path, value.node)
    buffer.version += 1


def write_indexed(target, key, idxs, value, ufunc=None):
    """target[key] = value, with integer index arrays `idxs` at the "#k" entries of the ArrayKey
    `key`, or `np.<ufunc>.at(target, key, value)`: one `index_put` node rebuilds the target's
    region. `value` is already of the shape of target[key] and of the dtype to write."""
    from .tracing import apply
    buffer = _writable(target)
    new = apply("index_put", [target, value, *idxs], key=key, ufunc=ufunc)
    buffer.node = _rebuild(buffer.node, target._path, new.node)
    buffer.version += 1


def _writable(target):
    buffer = target._buffer()
    if buffer.ambiguous:
        raise with_location(UnsupportedError, "writing into an array that was reshaped while "
                            "tracing (NumPy makes the reshape a view or a copy depending on "
                            "strides); copy() it first")
    if target._trace is not None and not target._trace.active:
        raise with_location(TraceError, "a traced value was used after its function returned")
    return buffer


def written_inputs(proxies):
    """(input leaf index, final value) for each argument buffer the function wrote."""
    seen, out = set(), []
    for p in proxies:
        b = p._base
        if b is not None and b.input is not None and b.version and id(b) not in seen:
            seen.add(id(b))
            out.append((b.input, b.node))
    return out
