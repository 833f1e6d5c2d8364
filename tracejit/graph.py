"""The IR: immutable nodes in SSA form, a Graph of inputs and outputs, its text form and verify().

A Node is one value: the op that makes it, its argument nodes, static attributes, and its shape
and dtype. Nodes are never mutated after creation; passes build new nodes. A Graph's node list is
derived from its outputs, so unreachable nodes drop out by construction.
"""

import os

import numpy as np

from .pytree import LEAF


class Node:
    __slots__ = ("op", "args", "attrs", "shape", "dtype", "weak", "loc")

    def __init__(self, op, args, attrs, shape, dtype, weak=False, loc=None):
        self.op = op
        self.args = tuple(args)
        self.attrs = attrs
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.weak = weak  # a Python scalar: NumPy 2 treats it as weakly typed in promotion
        self.loc = loc

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def is_scalar_const(self):
        return self.op == "const" and self.shape == ()

    def __repr__(self):
        return f"Node({self.op}, {type_str(self)})"


_SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32",
          "int16": "i16", "int8": "i8", "uint64": "u64", "uint32": "u32", "uint16": "u16",
          "uint8": "u8", "bool": "bool"}


def dtype_str(dtype):
    return _SHORT.get(np.dtype(dtype).name, np.dtype(dtype).name)


def type_str(node):
    if node.weak:
        return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(node.dtype.kind, "scalar")
    return f"{dtype_str(node.dtype)}[{','.join(map(str, node.shape))}]"


class Graph:
    """A traced program, as `f.graph(...)` returns it: `inputs` (one node per array argument,
    in argument order), `nodes` (every value, producers before users) and `outputs` (the
    results; `out_tree` gives their structure). `print(graph)` shows one line per op with the
    file:line that made it; in Jupyter the graph is drawn, each fused kernel a box. Graphs are
    plain data: passes build new ones instead of changing them."""

    def __init__(self, name, inputs, outputs, out_tree=LEAF, in_tree=None, meta=None):
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.out_tree = out_tree
        self.in_tree = in_tree
        self.meta = dict(meta or {})
        self.nodes = toposort(self.inputs, self.outputs)

    def replace(self, outputs=None, inputs=None, **meta):
        """A new graph with other outputs (and inputs); structure and metadata carried over."""
        return Graph(self.name, self.inputs if inputs is None else inputs,
                     self.outputs if outputs is None else outputs,
                     self.out_tree, self.in_tree, {**self.meta, **meta})

    def users(self):
        """node -> list of nodes that read it (graph outputs are not counted)."""
        users = {n: [] for n in self.nodes}
        for n in self.nodes:
            for a in n.args:
                users[a].append(n)
        return users

    def __str__(self):
        return format_graph(self)

    __repr__ = __str__

    def _repr_png_(self):
        """Jupyter draws the graph: its kernels as boxes, host steps and buffers marked (None
        without matplotlib: the IR text is shown)."""
        from .render import graph_png  # matplotlib only when a notebook asks for a picture

        return graph_png(self)


def toposort(inputs, outputs):
    """Inputs first (in order), then every node the outputs depend on, producers before users."""
    order, seen = list(inputs), set(inputs)
    for root in outputs:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in seen:
                continue
            if expanded:
                seen.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(node.args) if a not in seen)
    return order


def _names():
    i = 0
    while True:
        s, k = "", i
        while True:
            s = chr(ord("a") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        yield s
        i += 1


def _const_text(node):
    value = node.attrs["value"]
    if node.weak:
        return repr(value)
    if node.shape == ():
        return f"{dtype_str(node.dtype)}({np.asarray(value).item()!r})"
    return None


def _attr_text(attrs):
    items = []
    for k, v in attrs.items():
        if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
            v = dtype_str(v)
        items.append(f"{k}={v}")
    return f"[{', '.join(items)}]" if items else ""


def value_names(graph):
    """node -> the name the IR text uses for it (inputs by name, scalar constants by value)."""
    taken = {n.attrs["name"] for n in graph.inputs}
    fresh = (s for s in _names() if s not in taken)
    names = {n: n.attrs["name"] for n in graph.inputs}
    for n in graph.nodes:
        if n not in names:
            names[n] = _const_text(n) if n.op == "const" and _const_text(n) is not None \
                else next(fresh)
    return names


def format_graph(graph):
    names = value_names(graph)
    body = []
    for n in graph.nodes:
        if n.op == "input" or (n.op == "const" and _const_text(n) is not None):
            continue
        if n.op == "const":
            rhs = f"const {type_str(n)}"
        else:
            rhs = " ".join([n.op + _attr_text(n.attrs)] + [names[a] for a in n.args])
        line = f"  {names[n]}: {type_str(n)} = {rhs}"
        if n.loc:
            line = f"{line:<44} # {os.path.basename(n.loc[0])}:{n.loc[1]}"
        body.append(line)
    params = ", ".join(f"{names[n]}: {type_str(n)}" for n in graph.inputs)
    outs = " ".join(names[n] for n in graph.outputs)
    return "\n".join([f"graph {graph.name}({params}) {{", *body, f"  return {outs}", "}"])


def verify(graph):
    """Check topological order and that every node's shape and dtype follow its op's rules;
    returns the graph, or raises AssertionError naming the first bad node. Useful after a pass
    of your own: `tj.verify(f.graph(x))`."""
    from .ops import OPS

    seen = set()
    for n in graph.nodes:
        for a in n.args:
            if a not in seen:
                raise AssertionError(f"{n} uses {a} before it is defined")
        if n.op not in ("input", "const"):
            shape, dtype = OPS[n.op].infer(n.args, n.attrs)
            if tuple(shape) != n.shape or np.dtype(dtype) != n.dtype:
                raise AssertionError(f"{n}: rules give {dtype}{shape}")
        seen.add(n)
    for o in graph.outputs:
        if o not in seen:
            raise AssertionError(f"output {o} is not in the graph")
    return graph
