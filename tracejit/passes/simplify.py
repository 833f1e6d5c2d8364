"""Simplification: constant folding, common-subexpression elimination, and elementwise ops
reading the values they broadcast instead of broadcast views of them.

All rebuild the graph from its outputs, so dead code disappears as a side effect.
"""

import numpy as np

from ..graph import Node
from ..interpret import evaluate
from ..ops import ELEMENTWISE, OPS, broadcast


def _const_key(node):
    value = node.attrs["value"]
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return ("const", id(value))
    # repr tells 0.0 from -0.0 and keeps NaN equal to itself
    return ("const", type(value).__name__, repr(np.asarray(value).item()), node.dtype, node.weak)


def _key(node, args):
    if node.op == "const":
        return _const_key(node)
    return (node.op, args, tuple(sorted(node.attrs.items(), key=lambda kv: kv[0])),
            node.shape, node.dtype, node.weak)


def _pads(node):
    """True for a view that only broadcasts its argument: broadcast_to, or a reshape that puts
    length-1 axes in front (what broadcasting does to a shorter operand anyway)."""
    if node.op == "broadcast_to":
        return True
    if node.op != "reshape":
        return False
    src = node.args[0].shape
    return node.shape == (1,) * (node.ndim - len(src)) + tuple(src)


def _unbroadcast_args(node, args):
    """An elementwise node's arguments with broadcast views replaced by what they view, where
    the node keeps its shape: `g * broadcast_to(reshape(s, (1, 1)), shape)` reads the scalar s
    (the gradient of a mean), so its kernel loads one value instead of a zero-strided array and
    the views are no host steps."""
    if OPS[node.op].kind != ELEMENTWISE or not any(_pads(a) for a in args):
        return args
    args = list(args)
    for i, a in enumerate(args):
        while _pads(a):
            trial = [*args[:i], a.args[0], *args[i + 1:]]
            if broadcast(*(t.shape for t in trial)) != node.shape:
                break
            a = args[i] = a.args[0]
    return tuple(args)


def simplify(graph):
    """Fold elementwise ops whose inputs are all scalar constants, share identical
    subexpressions, and let elementwise ops read the values broadcast views show them
    (broadcasting does it anyway). Guarantees: same outputs (values, shapes, dtypes) as the
    input graph."""
    mapping, table = {}, {}
    for old in graph.nodes:
        if old.op == "input":
            mapping[old] = old
            continue
        args = _unbroadcast_args(old, tuple(mapping[a] for a in old.args))
        node = old
        if (OPS[old.op].kind == ELEMENTWISE and args and old.shape == ()
                and all(a.op == "const" and a.shape == () for a in args)):
            value = evaluate(old, [a.attrs["value"] for a in args])
            if not old.weak:
                value = np.asarray(value, dtype=old.dtype)
                if OPS[old.op].ufunc is not None:
                    value = value[()]  # NumPy's ufuncs return scalars for 0-d results
            node = Node("const", (), {"value": value}, (), old.dtype, old.weak, old.loc)
        elif args != old.args:
            node = Node(old.op, args, old.attrs, old.shape, old.dtype, old.weak, old.loc)
        try:
            key = _key(node, node.args)
            hash(key)
        except TypeError:  # an unhashable attribute: keep the node unshared
            mapping[old] = node
            continue
        mapping[old] = table.setdefault(key, node)
    return graph.replace(outputs=[mapping[o] for o in graph.outputs])
