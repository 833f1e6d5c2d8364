"""The reference interpreter: runs a Graph op by op with NumPy. It is the oracle for tests."""

import numpy as np

from . import pytree
from .ops import OPS


def interpret(graph, *leaves):
    """Evaluate `graph` on the leaves (in graph.inputs order); returns the output structure."""
    env = {}
    for node, value in zip(graph.inputs, leaves):
        env[node] = value if node.attrs.get("scalar") else np.asarray(value)
    for node in graph.nodes:
        if node in env:
            continue
        if node.op == "const":
            env[node] = node.attrs["value"]
            continue
        args = [env[a] for a in node.args]
        env[node] = evaluate(node, args)
    outs = [env[o] for o in graph.outputs]
    return pytree.unflatten(graph.out_tree, outs)


def evaluate(node, args):
    """One node's value from its argument values. A weak result (Python scalars only) stays a
    Python scalar, as it would in eager code."""
    value = OPS[node.op].ref(*args, **node.attrs)
    return value.item() if node.weak else value
