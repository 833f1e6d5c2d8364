"""Flatten nested tuples, lists, dicts, NamedTuples, dataclasses and SimpleNamespaces of leaves,
and rebuild them: how arguments and results of any structure map onto a flat list of graph
values."""

import dataclasses
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

TreeDef = namedtuple("TreeDef", "kind meta children")
LEAF = TreeDef("leaf", None, ())
_COMMON_LEAVES = frozenset({np.ndarray, float, int, bool, np.float64, np.float32})


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_dataclass_instance(x):
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def flatten(obj):
    """Return (leaves, treedef). Dicts are walked in sorted-key order so the def is canonical."""
    leaves = []

    def walk(x):
        kind = type(x)
        if kind in _COMMON_LEAVES:  # most leaves: skip the container checks below
            leaves.append(x)
            return LEAF
        if x is None:  # no leaves: a function that only writes into its arguments returns it
            return TreeDef("none", None, ())
        if kind in (tuple, list):
            return TreeDef(kind.__name__, len(x), tuple(walk(v) for v in x))
        if kind is dict:
            keys = sorted(x, key=repr)
            return TreeDef("dict", tuple(keys), tuple(walk(x[k]) for k in keys))
        if _is_namedtuple(x):
            return TreeDef("namedtuple", kind, tuple(walk(v) for v in x))
        if kind is SimpleNamespace:
            keys = tuple(sorted(vars(x)))
            return TreeDef("namespace", keys, tuple(walk(getattr(x, k)) for k in keys))
        if _is_dataclass_instance(x):
            names = tuple(f.name for f in dataclasses.fields(x))
            return TreeDef("dataclass", (kind, names),
                           tuple(walk(getattr(x, n)) for n in names))
        leaves.append(x)
        return LEAF

    return leaves, walk(obj)


def build_node(treedef, items):
    """One container of kind treedef.kind holding `items` (its children, already built)."""
    kind, meta = treedef.kind, treedef.meta
    if kind == "none":
        return None
    if kind == "tuple":
        return tuple(items)
    if kind == "list":
        return list(items)
    if kind == "dict":
        return dict(zip(meta, items))
    if kind == "namedtuple":
        return meta(*items)
    if kind == "namespace":
        return SimpleNamespace(**dict(zip(meta, items)))
    cls, names = meta  # a dataclass: set the fields without running __init__/__post_init__
    obj = object.__new__(cls)
    for name, item in zip(names, items):
        object.__setattr__(obj, name, item)
    return obj


def unflatten(treedef, leaves):
    it = iter(leaves)

    def build(td):
        if td.kind == "leaf":
            return next(it)
        return build_node(td, [build(c) for c in td.children])

    return build(treedef)


def num_leaves(treedef):
    if treedef.kind == "leaf":
        return 1
    return sum(num_leaves(c) for c in treedef.children)
