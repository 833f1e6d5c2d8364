"""Fusion: partition a graph's computation into kernels and host steps, in execution order.

Every kernel iterates over a domain: a shape S and, for reduction kernels, the reduced axes R.
Connected nodes join one kernel when each keeps a role in the merged domain:
  element  an elementwise node of shape S, computed once per point of S;
  reduce   a reduction of an element value (or an input) of shape S over exactly R;
  row      an elementwise node of the reduced shape (keepdims or not), computed once per row
           (a row is one index of the kept axes).
So np.sum((a - b) ** 2) is one "reduction" kernel (the reduction absorbs its producers), and a
reduction whose result is broadcast back over S (softmax, layernorm) is one "rowwise" kernel that
makes several passes over each row. A merge is allowed only if the merged group stays convex: no
path leaves the group and comes back into it, and small enough to compile quickly
(MAX_KERNEL_OPS, MAX_KERNEL_PASSES). Other ops (views, scans, matmul) are host steps.

Values used by several kernels: a node belongs to one kernel and is written to memory once if any
other kernel (or the caller) reads it; other kernels read that array instead of recomputing it.
Inside a rowwise kernel a value computed in one pass and needed in a later pass is recomputed
when that costs at most RECOMPUTE_LIMIT (a few arithmetic ops: cheaper than a store plus a load),
otherwise it is kept in a row buffer, which stays in cache (see plan_passes).
"""

import heapq
from dataclasses import dataclass, field

from ..ops import ELEMENTWISE, OPS, REDUCTION

ROWWISE = "rowwise"

# The most ops (nodes) one kernel holds: a Python loop unrolled by tracing would otherwise make
# one kernel of thousands. Numba compiles an elementwise kernel in about 0.3 s plus 4.5 ms per
# op (13.5 ms in parallel), linear in its size; so capped, a loop's kernels are alike and
# compile once (1000 Euler steps, 3000 ops: 2.4 s instead of 14 s of CPU time; 300 Heun steps,
# 2400 ops: 6 s instead of 166 s). Past about 100 ops the fixed cost is paid off (5.4 ms per
# op at 96, 4.5 at 768), and LLVM runs bigger loops slower per op: 300 chained ops on 1M
# float64 took 28 ms as 3 kernels of 120 ops and 67 ms as one. 120 divides evenly into loop
# bodies of 1-6, 8, 10, 12, 15 ... ops, so each kernel starts at the same point of the body.
MAX_KERNEL_OPS = 120
# The most passes a rowwise kernel makes over each row. Its compile time grows faster than its
# passes (measured, 5 ops per pass: 2 passes 0.6 s, 5 1.0 s, 9 2.0 s, 13 3.8 s of CPU time).
MAX_KERNEL_PASSES = 8


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
    return OPS[node.op].kind in (ELEMENTWISE, REDUCTION)


def pad(shape, rank):
    return (1,) * (rank - len(shape)) + tuple(shape)


class Domain:
    """What a kernel iterates over: shape S, and the reduced axes R (None: elementwise)."""

    def __init__(self, shape, axes=None):
        self.shape = tuple(shape)
        self.axes = None if axes is None else tuple(sorted(axes))
        if axes is not None:
            self.kept = tuple(d for d in range(len(shape)) if d not in axes)
            self.row_shape = tuple(1 if d in axes else n for d, n in enumerate(shape))
            self.dropped_shape = tuple(shape[d] for d in self.kept)

    def __eq__(self, other):
        return self.shape == other.shape and self.axes == other.axes

    def role(self, node):
        if OPS[node.op].kind == REDUCTION:
            ok = self.axes is not None and node.args[0].shape == self.shape \
                and tuple(node.attrs["axis"]) == self.axes
            return "reduce" if ok else None
        if node.shape == self.shape:
            return "element"
        if self.axes is not None and (pad(node.shape, len(self.shape)) == self.row_shape
                                      or node.shape == self.dropped_shape):
            return "row"
        return None


def own_domain(node):
    if OPS[node.op].kind == REDUCTION:
        return Domain(node.args[0].shape, node.attrs["axis"])
    return Domain(node.shape)


def merged_domain(a, b):
    if a.axes is None and b.axes is None:
        return a if a.shape == b.shape else None
    if a.axes is not None and b.axes is not None:
        return a if a == b else None
    return a if a.axes is not None else b


def check_group(members, dom):
    """None if `members` can run as one kernel over `dom`, else the reason they cannot."""
    if dom.axes is None:
        return None if all(m.shape == dom.shape for m in members) else "shapes differ"
    if dom.row_shape == dom.shape and len(members) > 1:
        return "the reduced axes have length 1: rows and elements cannot be told apart"
    roles = {}
    for m in members:
        roles[m] = dom.role(m)
        if roles[m] is None:
            return f"{m.op} of shape {m.shape} is neither per element nor per row"
    rank, multipass = len(dom.shape), False
    for m in members:
        for a in m.args:
            if a not in roles:
                continue
            if roles[m] == "element" and roles[a] != "element":
                if pad(a.shape, rank) != dom.row_shape:
                    return "a row value is broadcast along other axes"
                multipass = True
            elif roles[m] == "row" and (roles[a] == "element"
                                        or pad(a.shape, rank) != pad(m.shape, rank)):
                return "a row value is read by another row"
    if multipass and not dom.kept:
        return "no row axis left to loop over in parallel"
    if multipass and rank - 1 not in dom.axes:
        return "rows would be strided (the last axis is kept)"
    return None


def group_nodes(graph, fuse=True, siblings=True):
    """node -> group id for every elementwise or reduction node (one group per node when fuse
    is False), and each group's Domain."""
    groups, group_of, ancestors, domain, notes = _Groups(), {}, {}, {}, {}
    index = {n: i for i, n in enumerate(graph.nodes)}
    for node in graph.nodes:
        anc = set()
        for a in node.args:
            anc |= ancestors.get(a, set())
            if a in group_of:
                anc.add(group_of[a])
        # as groups, not nodes: the sets stay small along a long chain (an unrolled loop)
        ancestors[node] = {groups.find(g) for g in anc}
        if not is_fusible(node):
            continue
        g = group_of[node] = groups.new(node)
        domain[g] = own_domain(node)
        if not fuse:
            continue
        for a in node.args:
            if a not in group_of:
                continue
            other = groups.find(group_of[a])
            if other == g:
                continue
            dom = merged_domain(domain[other], domain[g])
            if dom is None:
                reason = "different iteration shapes or reduced axes"
            else:
                reason = _merge_reason(groups.members[other] + groups.members[g], dom, index)
            if reason is None and not _convex_union(groups, group_of, ancestors, other, g):
                reason = "the merged kernel would not be convex"
            if reason is None:
                g = groups.union(other, g)
                domain[g] = dom
            elif dom is not None and dom.axes is not None:  # worth explaining
                notes.setdefault(node, []).append(f"{node.op} not fused with {a.op}: {reason}")
    if fuse and siblings:
        _merge_siblings(graph, groups, group_of, ancestors, domain, index)
    return {n: groups.find(g) for n, g in group_of.items()}, groups, domain, notes


def _merge_siblings(graph, groups, group_of, ancestors, domain, index):
    """Groups that read a common array from outside become one kernel with several outputs
    when they could have fused anyway (same rules: domain, roles, convexity), so the array is
    read once: (a - c, a * b), or x.min() and x.max() in one pass."""
    first_reader = {}
    for node in graph.nodes:
        if node not in group_of:
            continue
        for a in node.args:
            if a.shape == () or a.is_scalar_const():
                continue
            g = groups.find(group_of[node])
            other = groups.find(first_reader.setdefault(a, g))
            if other == g or (a in group_of and groups.find(group_of[a]) in (other, g)):
                continue
            dom = merged_domain(domain[other], domain[g])
            if dom is None \
                    or _merge_reason(groups.members[other] + groups.members[g], dom, index) \
                    or not _convex_union(groups, group_of, ancestors, other, g):
                continue
            domain[groups.union(other, g)] = dom


def _merge_reason(members, dom, index):
    """None if `members` can run as one kernel over `dom`, else why not: check_group's rules,
    and the bounds that keep a kernel's compile time in check."""
    if len(members) > MAX_KERNEL_OPS:
        return f"the kernel would have more than {MAX_KERNEL_OPS} ops (compile time)"
    reason = check_group(members, dom)
    if reason is None and dom.axes is not None and \
            plan_passes(sorted(members, key=index.get), dom)["count"] > MAX_KERNEL_PASSES:
        reason = f"the kernel would make more than {MAX_KERNEL_PASSES} passes over each row " \
            "(compile time)"
    return reason


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
    """The graph as an ordered list of Kernel and HostStep. Inputs and constants are not steps.
    Each kernel is convex, but two kernels can still each need the other's results (through a
    third kernel, or host steps, that a merge made them depend on): such a schedule is cyclic
    and is built again with fewer merges, first without sibling merges, then one op per kernel
    (always acyclic)."""
    for fused, siblings in ((fuse, True), (fuse, False), (False, False)):
        steps = _schedule(graph, fused, siblings)
        if steps is not None:
            return steps
    raise AssertionError("one op per kernel gave a cyclic schedule")


def _schedule(graph, fuse, siblings):
    group_of, groups, domain, notes = group_nodes(graph, fuse, siblings)
    index = {n: i for i, n in enumerate(graph.nodes)}
    users = graph.users()
    returned = set(graph.outputs)
    plans = [(sorted(groups.members[root], key=index.get), domain[root])
             for root in sorted(set(group_of.values()))]
    home = {m: i for i, (ms, _) in enumerate(plans) for m in ms}  # the kernel that stores m
    if fuse:
        plans = recompute_cheap_values(plans, users, returned, index)

    steps, step_of = [], {}
    host = {n for n in graph.nodes if n.op not in ("input", "const") and n not in group_of}
    where = _plans_of(plans)
    for i, (members, dom) in enumerate(plans):
        member_set = set(members)
        inputs = []
        for m in members:
            for a in m.args:
                if a not in member_set and not a.is_scalar_const() and a not in inputs:
                    inputs.append(a)
        outputs = [m for m in members if home[m] == i and (m in returned or any(
            u in host or not where[u] <= where[m] for u in users[m]))]
        if not outputs:
            continue  # every value it computes is recomputed by its consumers
        kernel = make_kernel(members, inputs, outputs, dom)
        kernel.meta["notes"] = [line for m in members for line in notes.get(m, [])]
        kernel.meta["recomputed"] = [m for m in members if home[m] != i]
        steps.append(kernel)
        for m in members:
            if home[m] == i:
                step_of[m] = kernel
    for node in graph.nodes:
        if node in host:
            step_of[node] = HostStep(node)
            steps.append(step_of[node])
    return _order(steps, step_of, index)


def recompute_cheap_values(plans, users, returned, index):
    """Across kernels: a value one kernel computes and other kernels read is written to memory
    once, unless it is cheap. If every kernel that reads it can recompute it (element values of
    the same shape) and its expression costs at most RECOMPUTE_LIMIT (ops plus the loads of its
    inputs: about the cost of the store and the reload it saves), each reader recomputes it and
    nothing is written. Values the caller gets back or a host step reads are always stored."""
    plans = [(list(ms), dom) for ms, dom in plans]
    where = _plans_of(plans)
    producer = {m: min(js) for m, js in where.items()}
    for v in sorted(producer, key=index.get):
        i = producer[v]
        members, dom = plans[i]
        readers = {j for u in users[v] for j in where.get(u, ()) if j not in where[v]}
        if not readers or v in returned or any(u not in where for u in users[v]):
            continue
        closure, stack = [], [v]
        while stack:
            m = stack.pop()
            if m in closure:
                continue
            closure.append(m)
            stack += [a for a in m.args if a in members]
        if any(dom.role(m) != "element" for m in closure):
            continue
        loads = {a for m in closure for a in m.args
                 if a not in closure and not a.is_scalar_const()}
        if sum(op_cost(m) for m in closure) + len(loads) > RECOMPUTE_LIMIT:
            continue
        merged = {j: sorted(set(plans[j][0]) | set(closure), key=index.get) for j in readers}
        if any(check_group(ms, plans[j][1]) or not is_convex(ms, users)
               for j, ms in merged.items()):
            continue
        for j, ms in merged.items():
            plans[j] = (ms, plans[j][1])
            for m in closure:
                where[m].add(j)
    return plans


def _plans_of(plans):
    """node -> indices of the plans (kernels) that compute it."""
    where = {}
    for i, (ms, _) in enumerate(plans):
        for m in ms:
            where.setdefault(m, set()).add(i)
    return where


def make_kernel(members, inputs, outputs, dom):
    if dom.axes is None:
        return Kernel(ELEMENTWISE, members, inputs, outputs, dom.shape)
    passes = plan_passes(members, dom)
    kind = ROWWISE if passes["count"] > 1 else REDUCTION
    return Kernel(kind, members, inputs, outputs, dom.shape,
                  {"axes": dom.axes, "roles": {m: dom.role(m) for m in members}, **passes})


def describe(kernel):
    """Readable lines on the fusion decisions behind a kernel (for explain())."""
    meta, lines = kernel.meta, []
    if kernel.kind == REDUCTION:
        lines.append(f"reduces axes {meta['axes']} of {kernel.shape}; producers and epilogue "
                     "fused, intermediates stay in registers")
    elif kernel.kind == ROWWISE:
        lines.append(f"reduces axes {meta['axes']} and broadcasts back: loops over rows, "
                     f"{meta['count']} passes over each row")
        roles, at = meta["roles"], meta["at"]
        again = sorted({a.op for u in kernel.nodes if roles[u] == "element" for a in u.args
                        if roles.get(a) == "element" and at[a] < at[u]
                        and a not in meta["buffered"]})
        if meta["buffered"]:
            lines.append("kept in a row buffer (costly to recompute): "
                         + " ".join(m.op for m in meta["buffered"]))
        if again:
            lines.append("recomputed in a later pass (cheaper than a buffer): " + " ".join(again))
    if meta.get("recomputed"):
        lines.append("recomputes " + " ".join(m.op for m in meta["recomputed"])
                     + " (cheaper than storing it in another kernel)")
    return lines + meta.get("notes", [])


# Recompute cost per op, in rough units of one add: a value needed again in a later pass over a
# row is recomputed when its whole expression costs at most RECOMPUTE_LIMIT, else buffered.
RECOMPUTE_LIMIT = 4
def is_convex(members, users):
    """True if no path leaves the set of nodes and comes back into it."""
    members = set(members)
    stack = [u for m in members for u in users[m] if u not in members]
    outside = set()
    while stack:
        n = stack.pop()
        if n not in outside:
            outside.add(n)
            stack += [u for u in users[n] if u not in members]
    return not any(a in outside for m in members for a in m.args)


def op_cost(node):
    if node.op == "power" and node.args[1].is_scalar_const() and node.args[1].attrs["value"] == 2:
        return 1  # x ** 2 compiles to a multiply
    return OPS[node.op].cost


def plan_passes(members, dom):
    """How a reduction kernel walks its rows. Returns a dict with
    count: passes over each row (1 for a plain reduction);
    at: node -> pass it is computed in (row nodes: computed before that pass; == count means
        after the last pass); a reduction's value is available from the pass after its own;
    buffered: element values computed in one pass, needed in a later one and too costly to
        recompute (their rows are kept in a buffer)."""
    roles = {m: dom.role(m) for m in members}
    at, reduce_pass = {}, {}
    for m in members:  # members are in graph order: arguments first
        p = max((at[a] for a in m.args if a in roles), default=0)
        if roles[m] == "reduce":
            reduce_pass[m] = p
        at[m] = p + 1 if roles[m] == "reduce" else p
    needed_later = {a for u in members if roles[u] == "element"
                    for a in u.args if a in roles and at[a] < at[u]}
    cost, buffered = {}, []
    for m in members:
        if roles[m] != "element":
            continue
        # an argument from outside the kernel costs one load; a buffered one too
        cost[m] = op_cost(m) + sum(
            cost.get(a, 0) if roles.get(a) == "element" else 1 for a in m.args
            if not a.is_scalar_const())
        if m in needed_later and cost[m] > RECOMPUTE_LIMIT:
            buffered.append(m)
            cost[m] = 1
    count = 1 + max([at[m] for m in members if roles[m] == "element"] +
                    list(reduce_pass.values()))
    return {"count": count, "at": at, "reduce_pass": reduce_pass, "buffered": buffered}


def _order(steps, step_of, index):
    """Topological order of steps, earliest graph position first (Kahn's algorithm); None if
    the steps depend on each other in a cycle."""
    deps = {id(s): set() for s in steps}
    for s in steps:
        for a in s.inputs:
            if a in step_of and step_of[a] is not s:
                deps[id(s)].add(id(step_of[a]))
        if isinstance(s, Kernel):
            own = set(s.nodes)  # a value recomputed here may also be computed by another kernel
            for m in s.nodes:
                for a in m.args:
                    if a in step_of and a not in own:
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
    return order if len(order) == len(steps) else None  # None: a cycle
