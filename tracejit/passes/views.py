"""Unit-axis views of reductions: rewrite them away so the reduction can fuse with its users.

`x / x.sum(-1)[:, None]` reads the reduction through a view (a host step), so the reduction and
the division are two kernels, while `x / x.sum(-1, keepdims=True)` is one rowwise kernel. A view
that only inserts or removes length-1 axes (reshape, None-indexing, expand_dims, squeeze) does not
move any element, so an elementwise user can instead read the same values computed in the shape
it wants: a reduction with keepdims=True, elementwise ops rebuilt on such values (the division of
a mean), and views only on the leaves (inputs, constants, host results), where they cost nothing.
Broadcasting makes leading unit axes irrelevant to an elementwise user, so shapes only need to
agree after padding on the left.
"""

from ..graph import Node
from ..ops import ELEMENTWISE, OPS, REDUCTION
from .fusion import is_fusible, pad


def _non_unit(shape):
    return [n for n in shape if n != 1]


def is_unit_view(node):
    """True for a reshape or basic index that only inserts or removes length-1 axes: the
    elements, in order, are its argument's."""
    if node.op not in ("getitem", "reshape"):
        return False
    src = node.args[0]
    if node.op == "getitem":
        dims = iter(src.shape)
        for e in node.attrs["index"]:
            if e is None:
                continue
            n = next(dims)
            if n != 1 and e != (0, n, 1):
                return False  # a slice that skips, reverses or drops elements
    return _non_unit(src.shape) == _non_unit(node.shape)


def _unit_view_source(node):
    while is_unit_view(node):
        node = node.args[0]
    return node


def _arg_target(node, arg, target):
    """The shape `arg` takes when `node` is rebuilt in shape `target`: each non-unit axis of
    node moves to its place in target, and arg keeps its size (or broadcast 1) on it."""
    padded = pad(arg.shape, node.ndim)
    shape = [1] * len(target)
    src = [d for d, n in enumerate(node.shape) if n != 1]
    dst = [d for d, n in enumerate(target) if n != 1]
    for s, d in zip(src, dst):
        shape[d] = padded[s]
    return tuple(shape)


class _Lifter:
    def __init__(self):
        self.memo = {}
        self.lifted = {}  # fusible node -> its rebuilt version (the first one asked for)
        self.rebuilt = set()  # rebuilt fusible nodes: each is or reads a keepdims reduction

    def lift(self, node, target):
        """A node with node's elements whose shape, padded on the left to len(target), is
        target, built without views of fusible values; None if there is none."""
        if node.ndim <= len(target) and pad(node.shape, len(target)) == target:
            return node
        key = (node, target)
        if key not in self.memo:
            self.memo[key] = new = self._rebuild(node, target)
            if new is not None and is_fusible(node):
                self.lifted.setdefault(node, new)
                self.rebuilt.add(new)
        return self.memo[key]

    def _rebuild(self, node, target):
        kind = OPS[node.op].kind
        if is_unit_view(node):
            return self.lift(node.args[0], target)
        if not is_fusible(node):  # a view of a leaf runs on the host before any kernel
            return Node("reshape", [node], {"shape": target}, target, node.dtype, loc=node.loc)
        if kind == REDUCTION:
            if node.attrs["keepdims"]:
                return None
            args, attrs = node.args, {**node.attrs, "keepdims": True}
        else:
            assert kind == ELEMENTWISE
            args = [self.lift(a, _arg_target(node, a, target)) for a in node.args]
            if None in args or not any(a in self.rebuilt for a in args):
                return None  # it pays only on the way to a reduction, whose kernel it joins
            attrs = node.attrs
        shape, dtype = OPS[node.op].infer(args, attrs)
        if len(shape) > len(target) or pad(shape, len(target)) != target or dtype != node.dtype:
            return None  # e.g. keepdims puts the unit axis elsewhere than the view did
        return Node(node.op, args, attrs, shape, dtype, node.weak, node.loc)


def _without_view(lifter, arg, rank):
    """What an elementwise user of rank `rank` reads instead of arg: arg itself unless it is a
    unit-axis view of a fusible value that can be rebuilt without the view."""
    if not is_unit_view(arg) or not is_fusible(_unit_view_source(arg)):
        return arg
    new = lifter.lift(arg.args[0], pad(arg.shape, rank))
    return arg if new is None else new


def fuse_unit_views(graph):
    """Elementwise users of a unit-axis view of a reduction (or of elementwise values computed
    from reductions) read an equivalent value built without the view. Elementwise users of the
    original value with its shape are rebuilt too, and whatever else still reads an original
    value reads a reshape of the rebuilt one instead, so nothing is computed twice.
    Guarantees: same outputs (values, shapes, dtypes)."""
    lifter, mapping = _Lifter(), {}
    for old in graph.nodes:
        args = tuple(mapping.get(a, a) for a in old.args)
        node = old
        if OPS[old.op].kind == ELEMENTWISE:
            lifted = tuple(_without_view(lifter, a, old.ndim) for a in args)
            if lifted != args:
                shape, dtype = OPS[old.op].infer(lifted, old.attrs)
                if shape == old.shape and dtype == old.dtype:
                    args = lifted
        if args != old.args:
            node = Node(old.op, args, old.attrs, old.shape, old.dtype, old.weak, old.loc)
        mapping[old] = node
    rewritten = graph.replace(outputs=[mapping[o] for o in graph.outputs])
    for node in rewritten.nodes:  # other per-row users of a rebuilt value join it too
        if OPS[node.op].kind == ELEMENTWISE and node not in lifter.lifted:
            rows = [a for a in node.args if a in lifter.lifted and a.shape == node.shape]
            if rows:
                lifter.lift(node, lifter.lifted[rows[0]].shape)
    present = set(rewritten.nodes)
    return _substitute(rewritten, {n: new for n, new in lifter.lifted.items() if n in present})


def _substitute(graph, subst):
    """The graph with each node n in subst replaced by reshape(subst[n]). subst[n] depends only
    on n's ancestors (or their substitutes), so this stays acyclic."""
    done = {}
    for root in graph.outputs:
        stack = [root]
        while stack:
            n = stack[-1]
            if n in done:
                stack.pop()
                continue
            deps = [subst[n]] if n in subst else n.args
            todo = [d for d in deps if d not in done]
            if todo:
                stack += todo
                continue
            stack.pop()
            if n in subst:
                done[n] = Node("reshape", [done[subst[n]]], {"shape": n.shape}, n.shape,
                               n.dtype, loc=n.loc)
            else:
                args = tuple(done[a] for a in n.args)
                done[n] = n if args == n.args else Node(n.op, args, n.attrs, n.shape, n.dtype,
                                                        n.weak, n.loc)
    return graph.replace(outputs=[done[o] for o in graph.outputs])
