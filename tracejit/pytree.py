"""Flatten nested tuples, lists and dicts of leaves, and rebuild them: how arguments and
results of any structure map onto a flat list of graph values."""

from collections import namedtuple

TreeDef = namedtuple("TreeDef", "kind meta children")
LEAF = TreeDef("leaf", None, ())


def flatten(obj):
    """Return (leaves, treedef). Dicts are walked in sorted-key order so the def is canonical."""
    leaves = []

    def walk(x):
        if type(x) in (tuple, list):
            return TreeDef(type(x).__name__, len(x), tuple(walk(v) for v in x))
        if type(x) is dict:
            keys = sorted(x, key=repr)
            return TreeDef("dict", tuple(keys), tuple(walk(x[k]) for k in keys))
        leaves.append(x)
        return LEAF

    return leaves, walk(obj)


def unflatten(treedef, leaves):
    it = iter(leaves)

    def build(td):
        if td.kind == "leaf":
            return next(it)
        items = [build(c) for c in td.children]
        if td.kind == "tuple":
            return tuple(items)
        if td.kind == "list":
            return items
        return dict(zip(td.meta, items))

    return build(treedef)


def num_leaves(treedef):
    if treedef.kind == "leaf":
        return 1
    return sum(num_leaves(c) for c in treedef.children)
