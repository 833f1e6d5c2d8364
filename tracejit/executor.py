"""From a schedule to an Executable: compile each kernel and generate one straight-line Python
function that runs the steps, so a cached call costs a few attribute lookups per kernel."""

import numpy as np

from .backends import cpu
from .backends.codegen import CONTIGUOUS, SCALAR, STRIDED
from .ops import MATMUL, OPS, VIEW, compute_dtype
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
    """NumPy returns a scalar, not a 0-d array, from ufuncs (and reductions) with 0-d results,
    and from an index that takes one element."""
    return node.shape == () and (OPS[node.op].ufunc is not None or node.op in ("getitem", "take"))


def _views_constant(node):
    """True if node is a view (or a chain of views) of a graph constant: returning it as is
    would hand the caller memory that every later call shares."""
    while OPS[node.op].kind == VIEW:
        node = node.args[0]
    return node.op == "const" and not node.weak


def _matmul_output_dies_in(kernel, users, returned, taken):
    """An input of the kernel the kernel may overwrite with its output: a matmul result (fresh,
    C-contiguous, ours) that nothing else reads, of the kernel's shape, so each element is read
    before it is written at the same index. This runs an epilogue (bias, activation) in place."""
    members = set(kernel.nodes)
    for a in kernel.inputs:
        if (a.op == "matmul" and a.shape == kernel.shape and a.shape != ()
                and a not in returned and a not in taken
                and all(u in members for u in users[a])):
            return a
    return None


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
    users, returned, taken = graph.users(), set(graph.outputs), set()

    def fresh(prefix):
        return f"{prefix}{next(counter)}"

    def value(node):
        if node not in names:  # a constant
            name = fresh("c")
            stored = node.attrs["value"]
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
                reuse = _matmul_output_dies_in(step, users, returned, taken)
                if reuse is not None and compute_dtype(reuse.dtype) == compute_dtype(node.dtype):
                    taken.add(reuse)
                    lines.append(f"{out} = {names[reuse]}")
                else:
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
            call = f"{fname}({', '.join(args)}{kwargs})"
            if node.shape == () and OPS[node.op].kind != VIEW:
                call = f"np.asarray({call})"  # kernels take 0-d arrays, not NumPy scalars
            lines.append(f"{out} = {call}")
            # matmul returns a fresh C-contiguous array; views may have any strides
            names[node] = out
            layout[node] = CONTIGUOUS if OPS[node.op].kind == MATMUL else STRIDED

    results, seen = [], {}
    for pos, (node, alias) in enumerate(zip(graph.outputs, graph.meta["out_alias"])):
        expr = value(node)
        if node.op == "input":
            expr = f"x{node.attrs['index']}"
        elif node.dtype == np.float16:
            expr = f"{expr}.astype(np.float16)"  # a copy, from float32 storage
        elif _views_constant(node):
            expr = f"{expr}.copy()"
        if returns_scalar(node):
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
