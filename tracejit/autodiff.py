"""Reverse-mode automatic differentiation: a pass from a graph to the graph of its gradient.

`vjp_graph` sweeps a forward graph's nodes in reverse and asks each op's VJP rule (in the op
table) for the cotangents of its arguments; a value used several times gets its cotangents summed
with `add`. Rules emit ordinary table ops, so the result is an ordinary Graph: it is simplified,
fused and memory-planned like a forward graph, and can be differentiated again (tj.grad of
tj.grad). `value_and_grad_call` is what a tj.grad function does on each call: trace the function,
differentiate its graph, then splice the result into the caller's trace (or interpret it).
"""

from contextlib import contextmanager

import numpy as np

from . import pytree
from .errors import TraceError, with_location
from .graph import Graph, Node
from .interpret import interpret
from .ops import OPS, emit
from .tracing import (
    Proxy,
    Trace,
    _state,
    apply,
    as_node,
    current_trace,
    is_array_leaf,
    leaf_names,
    trace,
)

# ---------------------------------------------------------------------------------------------
# user-facing markers


def stop_gradient(x):
    """x itself, treated as a constant by differentiation (tuples, lists and dicts too).

        def loss(w, x):
            target = tj.stop_gradient(np.tanh(x @ w))   # no gradient flows through target
            return np.sum((x @ w - target) ** 2)
    """
    leaves, treedef = pytree.flatten(x)
    leaves = [apply("stop_gradient", [v]) if isinstance(v, Proxy) else v for v in leaves]
    return pytree.unflatten(treedef, leaves)


@contextmanager
def no_grad():
    """Inside a traced function, values computed in this block are constants for tj.grad.

        def loss(w, x):
            with tj.no_grad():
                scale = np.max(np.abs(x @ w))   # a constant for differentiation
            return np.sum((x @ w) / scale)
    """
    _state.no_grad = getattr(_state, "no_grad", 0) + 1
    try:
        yield
    finally:
        _state.no_grad -= 1


# ---------------------------------------------------------------------------------------------
# the pass

def differentiable(node):
    return node.dtype.kind == "f"


def unbroadcast(g, shape):
    """Sum a cotangent of a broadcast result down to an operand's shape (the one place where
    broadcasting is undone: leading axes and axes of length 1 in `shape`)."""
    lead = g.ndim - len(shape)
    if lead > 0:
        g = emit("sum", [g], axis=tuple(range(lead)), keepdims=False)
    ones = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if ones:
        g = emit("sum", [g], axis=ones, keepdims=True)
    if g.shape != tuple(shape):  # a rule gave a smaller cotangent: it is the same everywhere
        g = emit("broadcast_to", [g], shape=tuple(shape))
    return g


def _fit(g, node):
    """The cotangent with the shape and dtype of the value it belongs to."""
    if g.shape != node.shape:
        g = unbroadcast(g, node.shape)
    if g.dtype != node.dtype:
        g = g.astype(node.dtype)
    return g


def _locate(node, loc, known):
    """Give the nodes a rule just created the location of the forward node they differentiate."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n in known:
            continue
        known.add(n)
        n.loc = loc  # created a moment ago by this pass and not shared yet
        stack.extend(n.args)


def _const(value):
    value = np.asarray(value)
    return Node("const", (), {"value": value}, value.shape, value.dtype)


def vjp_graph(graph, wrt, seeds=None):
    """The reverse-mode derivative of `graph` with respect to the nodes `wrt` (float inputs).

    Returns a Graph with the same inputs whose outputs are graph's outputs followed by, for each
    node in `wrt`, the gradient of sum(seed_i * output_i) (seeds default to 1 for a scalar
    output). Guarantees: each gradient has its node's shape and dtype (zeros if the outputs do
    not depend on it); integer and boolean values and arguments of stop_gradient carry no
    cotangent; backward nodes are table ops and carry the location of the forward node they
    come from, so the result can be differentiated again and errors name the user's line.
    """
    wrt = list(wrt)
    for w in wrt:
        if not differentiable(w):
            raise TraceError(f"cannot differentiate with respect to {w.attrs.get('name', w)} of "
                             f"dtype {w.dtype}: gradients are defined for float values only")
    active = set(wrt)
    for n in graph.nodes:
        if (n not in active and differentiable(n) and n.op != "stop_gradient"
                and any(a in active for a in n.args)):
            active.add(n)
    if seeds is None:
        seeds = [_const(np.ones(o.shape, o.dtype)) for o in graph.outputs]

    tr = Trace(f"{graph.name}_vjp")
    saved = current_trace(), getattr(_state, "no_grad", 0)
    _state.trace, _state.no_grad = tr, 0  # rules themselves stay differentiable
    try:
        known = set(graph.nodes)
        cts = {}

        def accumulate(node, g, loc):
            g = _fit(g, node)
            if node in cts:
                g = cts[node] + g
            _locate(g.node, loc, known)
            cts[node] = g

        for out, seed in zip(graph.outputs, seeds):
            if out in active:
                accumulate(out, Proxy(seed, tr), out.loc)
        for n in reversed(graph.nodes):
            g = cts.get(n)
            if g is None or n.op in ("input", "const"):
                continue
            rule = OPS[n.op].vjp
            if rule is None:
                raise with_location(TraceError, f"{n.op} has no gradient rule yet", n.loc)
            outs = rule(Proxy(n, tr), g, *(Proxy(a, tr) for a in n.args), **n.attrs)
            for a, ga in zip(n.args, outs):
                if ga is not None and a in active:
                    accumulate(a, ga, n.loc)
        grads = [cts[w].node if w in cts else _const(np.zeros(w.shape, w.dtype)) for w in wrt]
    finally:
        tr.active = False
        _state.trace, _state.no_grad = saved
    outputs = [*graph.outputs, *grads]
    return Graph(graph.name, graph.inputs, outputs,
                 pytree.TreeDef("tuple", len(outputs), (pytree.LEAF,) * len(outputs)),
                 graph.in_tree, {**graph.meta, "out_alias": tuple(range(len(outputs)))})


def _rebuild(nodes, mapping):
    """Copy nodes in order with their arguments replaced through `mapping` (filled in place);
    nodes whose arguments do not change are kept."""
    for n in nodes:
        if n in mapping:
            continue
        args = tuple(mapping.get(a, a) for a in n.args)
        mapping[n] = n if args == n.args else \
            Node(n.op, args, n.attrs, n.shape, n.dtype, n.weak, n.loc)
    return mapping


def strip_stop_gradients(graph):
    """The graph without stop_gradient identities (for after differentiation): same values."""
    if not any(n.op == "stop_gradient" for n in graph.nodes):
        return graph
    mapping = {}
    for n in graph.nodes:
        if n.op == "stop_gradient":
            mapping[n] = mapping.get(n.args[0], n.args[0])
        else:
            _rebuild([n], mapping)
    return graph.replace(outputs=[mapping[o] for o in graph.outputs])


# ---------------------------------------------------------------------------------------------
# tj.grad / tj.value_and_grad, one call

def check_argnums(argnums):
    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return (argnums,)
    if isinstance(argnums, tuple) and argnums and all(
            isinstance(i, int) and not isinstance(i, bool) for i in argnums):
        return argnums
    raise TraceError(f"argnums must be an int or a non-empty tuple of ints, not {argnums!r}")


def value_and_grad_call(fn, argnums, args, kwargs):
    """fn(*args, **kwargs) and its gradient with respect to args[argnums], each gradient with
    the structure of its argument. With traced arguments the backward graph joins the current
    trace; with arrays it runs on the reference interpreter (tj.disable())."""
    nums = check_argnums(argnums)
    name = getattr(fn, "__name__", "f")
    spans, start = [], 0
    for a in args:
        n = len(pytree.flatten(a)[0])
        spans.append((start, start + n))
        start += n
    for i in nums:
        if not -len(args) <= i < len(args):
            raise TraceError(f"argnums {argnums!r}: {name} was called with {len(args)} "
                             "positional argument(s)")
    leaves, treedef = pytree.flatten((args, kwargs))
    static = [not (is_array_leaf(v) or isinstance(v, Proxy)) for v in leaves]
    names = [name for name, _ in leaf_names(fn, treedef)]
    wrt_leaves = [k for i in nums for k in range(*spans[i % len(args)])]
    for k in wrt_leaves:
        v = leaves[k]
        dtype = v.dtype if isinstance(v, Proxy) else np.result_type(v) if not static[k] else None
        if dtype is None or np.dtype(dtype).kind != "f":
            what = f"dtype {np.dtype(dtype)}" if dtype is not None else type(v).__name__
            raise with_location(TraceError, f"cannot differentiate {name} with respect to "
                                f"{names[k]!r} of {what}: gradients are defined for float "
                                "arguments only (pass a float array, e.g. x.astype(float))")

    graph = trace(fn, leaves, treedef, names, static, nested=True)
    if len(graph.outputs) != 1 or graph.out_tree != pytree.LEAF or graph.outputs[0].shape != () \
            or not differentiable(graph.outputs[0]):
        shown = ", ".join(f"{o.dtype}{list(o.shape)}" for o in graph.outputs)
        raise with_location(TraceError, f"tj.grad needs a function that returns one float "
                            f"scalar; {name} returned {shown or 'nothing'}")
    input_of = {n.attrs["index"]: n for n in graph.inputs}
    full = vjp_graph(graph, [input_of[k] for k in wrt_leaves])

    if current_trace() is None and not any(isinstance(v, Proxy) for v in leaves):
        results = interpret(full, *(leaves[n.attrs["index"]] for n in full.inputs))
    else:
        results = _inline(full, leaves)
    value, grads = results[0], list(results[1:])
    structured = []
    for i in nums:
        lo, hi = spans[i % len(args)]
        structured.append(pytree.unflatten(pytree.flatten(args[i])[1], grads[:hi - lo]))
        grads = grads[hi - lo:]
    return value, structured[0] if isinstance(argnums, int) else tuple(structured)


def _inline(graph, leaves):
    """Splice `graph` into the current trace with its inputs bound to `leaves`; its outputs
    as proxies."""
    tr = current_trace() or next(v._trace for v in leaves if isinstance(v, Proxy))
    mapping = {n: as_node(leaves[n.attrs["index"]], tr) for n in graph.inputs}
    _rebuild(graph.nodes, mapping)
    outs = [mapping[o] for o in graph.outputs]
    if getattr(_state, "no_grad", 0):
        outs = [Node("stop_gradient", (o,), {}, o.shape, o.dtype, o.weak, o.loc) for o in outs]
    return [Proxy(o, tr) for o in outs]
