"""Source generation for fused kernels, shared by the backends.

A kernel becomes one Python function over arrays: a flat loop when every operand is a
C-contiguous array of the iteration shape (or a scalar), otherwise an n-d loop nest that reads
each operand through its own strides, with broadcast dimensions indexed at 0. The source depends
on ranks, broadcast patterns and dtypes only, never on sizes, so a new shape reuses the kernel.
"""

import hashlib
import math

import numpy as np

from ..ops import OPS, cast, compute_dtype

SCALAR, CONTIGUOUS, STRIDED = "S", "C", "A"


def literal(value, dtype):
    """Code for a scalar constant of the given dtype."""
    dtype = np.dtype(dtype)
    value = np.asarray(value).item()
    if dtype.kind == "b":
        return repr(bool(value))
    if dtype.kind == "f":
        value = float(value)
        if math.isnan(value):
            text = "np.nan"
        elif math.isinf(value):
            text = "np.inf" if value > 0 else "-np.inf"
        else:
            text = repr(value)
    else:
        text = repr(int(value))
    return f"np.{compute_dtype(dtype).name}({text})"


def result_cast(expr, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return f"bool({expr})"
    return f"np.{compute_dtype(dtype).name}({expr})"


def scalar_body(kernel, names):
    """Lines computing every kernel node from operand names; returns (lines, node -> name)."""
    lines, env = [], dict(names)
    for i, node in enumerate(kernel.nodes):
        op = OPS[node.op]
        loop = op.loop(node)
        exprs = []
        for arg, dt in zip(node.args, loop):
            if arg in env:
                exprs.append(cast(env[arg], arg.dtype, dt))
            else:  # an inlined scalar constant
                exprs.append(literal(arg.attrs["value"], dt))
        env[node] = f"t{i}"
        lines.append(f"t{i} = {result_cast(op.code(exprs, node, loop), node.dtype)}")
    return lines, env


def elementwise_source(kernel, layouts, parallel):
    """Source of `def kernel(x0.., out0..)` for an elementwise kernel. layouts[i] tells how
    input i arrives: SCALAR (a number), CONTIGUOUS or STRIDED (an array)."""
    shape = kernel.shape
    rank = len(shape)
    ins = [f"x{i}" for i in range(len(kernel.inputs))]
    outs = [f"out{i}" for i in range(len(kernel.outputs))]
    flat = all(lay == SCALAR or node.shape == () or (lay == CONTIGUOUS and node.shape == shape)
               for node, lay in zip(kernel.inputs, layouts))
    head, per_element, names = [], [], {}
    for name, node, lay in zip(ins, kernel.inputs, layouts):
        if lay == SCALAR:
            names[node] = name
        elif node.shape == ():
            head.append(f"{name}_v = {name}[()]")
            names[node] = f"{name}_v"
        else:
            names[node] = f"{name}_e"
            if flat:
                head.append(f"{name}_f = {name}.reshape(n)")
                per_element.append(f"{name}_e = {name}_f[i]")
            else:
                idx = _broadcast_index(node.shape, shape)
                per_element.append(f"{name}_e = {name}[{idx}]")
    body, env = scalar_body(kernel, names)
    loop_range = "prange" if parallel else "range"
    lines = [f"def kernel({', '.join(ins + outs)}):"]
    if flat:
        lines.append(f"    n = {outs[0]}.size")
        lines += [f"    {h}" for h in head]
        lines += [f"    {o}_f = {o}.reshape(n)" for o in outs]
        lines.append(f"    for i in {loop_range}(n):")
        indent = "        "
        stores = [f"{o}_f[i] = {env[node]}" for o, node in zip(outs, kernel.outputs)]
    else:
        lines += [f"    {h}" for h in head]
        if rank:
            lines.append(f"    {', '.join(f's{d}' for d in range(rank))}, = {outs[0]}.shape")
        indent = "    "
        for d in range(rank):
            lines.append(f"{indent}for i{d} in {loop_range if d == 0 else 'range'}(s{d}):")
            indent += "    "
        index = ", ".join(f"i{d}" for d in range(rank)) or "()"
        stores = [f"{o}[{index}] = {env[node]}" for o, node in zip(outs, kernel.outputs)]
    lines += [indent + s for s in per_element + body + stores]
    return "\n".join(lines) + "\n"


def _broadcast_index(in_shape, out_shape):
    offset = len(out_shape) - len(in_shape)
    idx = []
    for j, size in enumerate(in_shape):
        d = j + offset
        idx.append("0" if size == 1 and out_shape[d] != 1 else f"i{d}")
    return ", ".join(idx)


def source_name(source):
    return "k_" + hashlib.sha1(source.encode()).hexdigest()[:10]
