"""The Explain report: what runs for one signature, readable as text."""

from .ops import OPS
from .passes.fusion import describe


class Explain:
    """What runs for one signature, as `f.explain(...)` returns it. `print(report)` shows the
    graph, each kernel with the ops it fuses, why, and its generated source, the memory plan
    and the cache state; in Jupyter it is drawn. Attributes: `graph`, `kernels` (in launch
    order, each with `.ops` and `.source`), `memory` (`naive_bytes`, `planned_bytes`,
    `buffers`, `arena_bytes`), `cache_info`."""

    def __init__(self, executable, cache_info):
        self.executable = executable
        self.graph = executable.graph
        self.kernels = executable.kernels
        self.memory = executable.memory
        self.cache_info = cache_info

    def __str__(self):
        lines = [str(self.graph), "", f"{len(self.kernels)} kernel(s):"]
        for i, k in enumerate(self.kernels):
            lines.append(f"-- kernel {i}: {k.name} ({k.kernel.kind}, shape {k.kernel.shape}): "
                         f"{' '.join(k.ops)}")
            lines += ["   # " + line for line in describe(k.kernel)]
            lines += ["   " + line for line in k.source.rstrip().splitlines()]
        if self.memory is not None:
            lines += ["", str(self.memory)]
            lines += self._writes()
        lines += ["", "-- run:", self.executable.source.rstrip(), "", str(self.cache_info)]
        return "\n".join(lines)

    def _writes(self):
        """Where each write of the function (`x[...] = v`, `x += v`) lands."""
        plan, names = self.memory, self.memory.names
        over = dict(plan.in_place)
        in_caller = {v: x for value, x in self.executable.in_caller.items()
                     for v in plan.storage[plan.assignment[value]].values}
        regions = set(plan.regions.values())
        lines = []
        for node in self.graph.nodes:
            updates = OPS[node.op].updates
            if updates is None:
                continue
            base = node.args[updates]
            if node in regions:
                rest = "in place" if node in over else \
                    f"in a buffer of its own, the rest copied from {names[base]}"
                where = f"its value's kernel stores straight into the slice, {rest}"
            elif node in in_caller:
                where = f"in place, in the caller's array {names[in_caller[node]]}"
            elif node in over:
                where = f"in place over {names[base]}"
            else:
                where = f"into a copy of {names[base]} (still read afterwards, or not stored)"
            lines.append(f"   {names[node]} = {node.op} {names[base]}: {where}")
        for leaf, value in zip(self.graph.meta.get("writes", ()),
                               self.graph.outputs[-len(self.graph.meta.get("writes", ())) or 0:]):
            x = next(n for n in self.graph.inputs if n.attrs["index"] == leaf)
            how = "holds the result, no copy" if value in self.executable.in_caller else \
                "copied back at the end of the call"
            lines.append(f"   argument {names[x]} written: {how}")
        return ["", "-- writes:", *lines] if lines else []

    __repr__ = __str__

    def _repr_html_(self):
        """Jupyter shows the graph with its kernels and buffers, the memory timeline, then the
        text."""
        from .render import explain_html  # matplotlib only when a notebook asks for a picture

        return explain_html(self)
