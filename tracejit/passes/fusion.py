"""Fusion: partition a graph's computation into kernels and host steps, in execution order.

Elementwise nodes with the same iteration shape that are connected by producer -> consumer edges
join one kernel, so intermediates live in registers instead of memory. A merge is allowed only if
the merged group stays convex: no path leaves the group and comes back into it (otherwise the
kernel would need a value that is computed from its own output). Ops that are not elementwise
(views, later reductions and matmul) are host steps run by NumPy.
"""

import heapq
from dataclasses import dataclass, field

from ..ops import ELEMENTWISE, OPS


@dataclass(eq=False)
class Kernel:
    """A fused loop nest: `nodes` computed in order, reading `inputs`, writing `outputs`."""

    kind: str
    nodes: list
    inputs: list
    outputs: list
    shape: tuple
    meta: dict = field(default_factory=dict)

    @property
    def ops(self):
        return [n.op for n in self.nodes]


@dataclass(eq=False)
class HostStep:
    """One node run by its NumPy reference on the host (views and other non-kernel ops)."""

    node: object

    @property
    def inputs(self):
        return [a for a in self.node.args if not a.is_scalar_const()]

    @property
    def outputs(self):
        return [self.node]


class _Groups:
    """Union-find over group ids."""

    def __init__(self):
        self.parent = []
        self.members = []

    def new(self, node):
        self.parent.append(len(self.parent))
        self.members.append([node])
        return len(self.parent) - 1

    def find(self, g):
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[a] = b
            self.members[b] += self.members[a]
            self.members[a] = []
        return b


def is_fusible(node):
    return OPS[node.op].kind == ELEMENTWISE


def group_nodes(graph, fuse=True):
    """node -> group id for every elementwise node (one group per node when fuse is False)."""
    groups, group_of, ancestors = _Groups(), {}, {}
    for node in graph.nodes:
        anc = set()
        for a in node.args:
            anc |= ancestors.get(a, set())
            if a in group_of:
                anc.add(group_of[a])
        ancestors[node] = anc
        if not is_fusible(node):
            continue
        g = group_of[node] = groups.new(node)
        if not fuse:
            continue
        for a in node.args:
            if a not in group_of or a.shape != node.shape:
                continue
            other = groups.find(group_of[a])
            if other != groups.find(g) and _convex_union(groups, group_of, ancestors, other, g):
                g = groups.union(other, g)
    return {n: groups.find(g) for n, g in group_of.items()}, groups


def _convex_union(groups, group_of, ancestors, a, b):
    """True if no member of a or b reads an outside node that depends on a or b."""
    ids = {a, b}
    members = set(groups.members[a]) | set(groups.members[b])
    for m in members:
        for x in m.args:
            if x in members:
                continue
            if any(groups.find(g) in ids for g in ancestors.get(x, ())):
                return False
            if x in group_of and groups.find(group_of[x]) in ids:
                return False
    return True


def schedule(graph, fuse=True):
    """The graph as an ordered list of Kernel and HostStep. Inputs and constants are not steps."""
    group_of, groups = group_nodes(graph, fuse)
    index = {n: i for i, n in enumerate(graph.nodes)}
    users = graph.users()
    returned = set(graph.outputs)

    steps, step_of = [], {}
    for root in sorted(set(group_of.values())):
        members = sorted(groups.members[root], key=index.get)
        member_set = set(members)
        inputs = []
        for m in members:
            for a in m.args:
                if a not in member_set and not a.is_scalar_const() and a not in inputs:
                    inputs.append(a)
        outputs = [m for m in members
                   if m in returned or any(u not in member_set for u in users[m])]
        kernel = Kernel(ELEMENTWISE, members, inputs, outputs, members[-1].shape)
        steps.append(kernel)
        for m in members:
            step_of[m] = kernel
    for node in graph.nodes:
        if node.op not in ("input", "const") and node not in step_of:
            step_of[node] = HostStep(node)
            steps.append(step_of[node])
    return _order(steps, step_of, index)


def _order(steps, step_of, index):
    """Topological order of steps, earliest graph position first (Kahn's algorithm)."""
    deps = {id(s): set() for s in steps}
    for s in steps:
        for a in s.inputs:
            if a in step_of and step_of[a] is not s:
                deps[id(s)].add(id(step_of[a]))
        if isinstance(s, Kernel):
            for m in s.nodes:
                for a in m.args:
                    if a in step_of and step_of[a] is not s:
                        deps[id(s)].add(id(step_of[a]))
    by_id = {id(s): s for s in steps}
    first = {id(s): min(index[n] for n in (s.nodes if isinstance(s, Kernel) else [s.node]))
             for s in steps}
    waiting = {k: set(v) for k, v in deps.items()}
    dependents = {k: [] for k in deps}
    for k, v in deps.items():
        for d in v:
            dependents[d].append(k)
    ready = [(first[k], k) for k, v in waiting.items() if not v]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(by_id[k])
        for d in dependents[k]:
            waiting[d].discard(k)
            if not waiting[d]:
                heapq.heappush(ready, (first[d], d))
    assert len(order) == len(steps), "fusion produced a cyclic schedule"
    return order
