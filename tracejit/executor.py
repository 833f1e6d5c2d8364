"""From a schedule to an Executable: compile each kernel and generate one straight-line Python
function that runs the steps, so a cached call costs a few attribute lookups per kernel."""

import numpy as np

from .backends import cpu
from .backends.codegen import CONTIGUOUS, SCALAR, STRIDED
from .ops import OPS, compute_dtype, returns_numpy_scalar
from .passes.fusion import Kernel


def _tree_expr(treedef, names):
    it = iter(names)

    def build(td):
        if td.kind == "leaf":
            return next(it)
        items = [build(c) for c in td.children]
        if td.kind == "tuple":
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if td.kind == "list":
            return f"[{', '.join(items)}]"
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(td.meta, items)) + "}"

    return build(treedef)


def returns_scalar(node):
    """NumPy returns a scalar, not a 0-d array, from ufuncs (and reductions) with 0-d results."""
    return returns_numpy_scalar(node)


class Executable:
    """A compiled plan for one signature: `run(*leaves)` returns the function's result."""

    def __init__(self, graph, steps, kernels, run, source, memory=None):
        self.graph = graph
        self.steps = steps
        self.kernels = kernels  # CompiledKernel per Kernel step, in launch order
        self.run = run
        self.source = source
        self.memory = memory

    @property
    def kernels_compiled(self):
        return sum(k.compiled_now for k in self.kernels)


def build(graph, steps, leaf_layouts, parallel=None):
    """leaf_layouts: for each graph input, SCALAR, CONTIGUOUS or STRIDED."""
    ns = {"_empty": np.empty, "np": np}
    names, layout, lines, kernels = {}, {}, [], []
    for node, lay in zip(graph.inputs, leaf_layouts):
        name = f"x{node.attrs['index']}"
        names[node] = name
        layout[node] = lay
        if node.dtype == np.float16 and lay != SCALAR:
            names[node] = f"{name}_f32"
            lines.append(f"{name}_f32 = {name}.astype(np.float32)")
    counter = iter(range(1 << 30))

    def fresh(prefix):
        return f"{prefix}{next(counter)}"

    def value(node):
        if node not in names:  # a constant
            name = fresh("c")
            stored = node.attrs["value"]
            if isinstance(stored, np.generic) and not node.weak:
                stored = np.asarray(stored)  # kernels take 0-d arrays; results unwrap with [()]
            if isinstance(stored, np.ndarray) and stored.dtype == np.float16:
                stored = stored.astype(np.float32)
            ns[name] = stored
            names[node] = name
            layout[node] = SCALAR if node.weak else CONTIGUOUS
        return names[node]

    for step in steps:
        if isinstance(step, Kernel):
            args = [value(n) for n in step.inputs]
            lays = [layout[n] for n in step.inputs]
            ck = cpu.compile_kernel(step, lays, parallel)
            kname = fresh("k")
            ns[kname] = ck.entry
            kernels.append(ck)
            outs = []
            for node in step.outputs:
                out = fresh("t")
                ns[f"{out}_dt"] = compute_dtype(node.dtype)
                lines.append(f"{out} = _empty({node.shape!r}, {out}_dt)")
                names[node], layout[node] = out, CONTIGUOUS
                outs.append(out)
            lines.append(f"{kname}({', '.join(args + outs)})")
        else:
            node = step.node
            fname = fresh("f")
            ns[fname] = OPS[node.op].ref
            args = [value(a) for a in node.args]
            kwargs = ""
            for key, val in node.attrs.items():
                ns[f"{fname}_{key}"] = val
                kwargs += f", {key}={fname}_{key}"
            out = fresh("t")
            lines.append(f"{out} = {fname}({', '.join(args)}{kwargs})")
            names[node], layout[node] = out, STRIDED

    results, seen = [], {}
    for pos, (node, alias) in enumerate(zip(graph.outputs, graph.meta["out_alias"])):
        expr = value(node)
        if node.op == "input":
            expr = f"x{node.attrs['index']}"
        elif node.op == "const" and not node.weak:
            expr = fresh("c")
            ns[expr] = node.attrs["value"]  # as captured: a float16 constant stays float16
            expr = f"{expr}.copy()"
        elif node.op != "input" and node.dtype == np.float16:
            expr = f"{expr}.astype(np.float16)"
        if node.weak and node.op not in ("input", "const"):
            expr = f"{expr}.item()"  # Python operators on Python scalars give Python scalars
        elif returns_scalar(node):
            expr = f"{expr}[()]"
        elif node in seen and seen[node] != alias:
            expr = f"{expr}.copy()"  # distinct results in the source stay distinct arrays
        seen.setdefault(node, alias)
        out = f"r{pos}"
        lines.append(f"{out} = {expr}")
        results.append(out)
    lines.append(f"return {_tree_expr(graph.out_tree, results)}")
    params = ", ".join(f"x{i}" for i in range(graph.meta["num_leaves"]))
    source = f"def run({params}):\n" + "".join(f"    {line}\n" for line in lines)
    exec(compile(source, f"<tracejit-run {graph.name}>", "exec"), ns)
    return Executable(graph, steps, kernels, ns["run"], source)


__all__ = ["Executable", "build", "SCALAR", "CONTIGUOUS", "STRIDED"]
