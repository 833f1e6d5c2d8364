"""Pictures of what the compiler did, drawn with matplotlib: a graph with its fused kernels as
boxes, host steps and buffers marked; the memory plan as a timeline of buffers; benchmark
timings. Jupyter shows a Graph and an Explain report this way; where matplotlib is missing
they show their text."""

import base64
import html
import io
import textwrap
import warnings

from .graph import type_str, value_names
from .passes.fusion import HostStep, schedule
from .passes.memory import plan_memory

# layout, in inches
_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 2.1, 0.42, 0.2, 0.32
_PER_ROW = 4  # nodes side by side before a row wraps
_COLLAPSE = 24  # a kernel of more ops is drawn as one box listing them
_KIND_COLOR = {"elementwise": "#dbe9f6", "reduction": "#e3f1dc", "rowwise": "#fbe5cf"}
_HOST_COLOR = "#eeeeee"
_BUFFER_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
                  "#8c8c8c", "#ccb974", "#64b5cd")


def _figure(width, height):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width, height), layout="constrained")
    fig._repr_png_ = lambda: figure_png(fig)  # Jupyter shows it, also where pyplot is not used
    return fig


def _label(node, names):
    if node.op == "input":
        head = f"{names[node]} (argument)"
    elif node.op == "const":
        head = f"{names[node]} = constant"
    else:
        head = " ".join([f"{names[node]} = {node.op}"] + [names[a] for a in node.args])
    head = head if len(head) <= 30 else head[:29] + "…"
    return f"{head}\n{type_str(node)}"


def _items(graph, steps, names):
    """What gets a box: (key, label, step index (-1: none), node list). Arguments and array
    constants come first; a kernel of more than _COLLAPSE ops is one box."""
    items = [(n, _label(n, names), -1, [n]) for n in graph.nodes
             if n.op == "input" or (n.op == "const" and not n.is_scalar_const())]
    for k, step in enumerate(steps):
        nodes = [step.node] if isinstance(step, HostStep) else step.nodes
        if len(nodes) > _COLLAPSE:
            ops = ", ".join(dict.fromkeys(n.op for n in nodes))
            text = textwrap.shorten(f"{len(nodes)} ops: {ops}", 90, placeholder=" …")
            items.append((step, "\n".join(textwrap.wrap(text, 30)), k, nodes))
        else:
            items += [(n, _label(n, names), k, [n]) for n in nodes]
    return items


def _layout(items, steps):
    """key -> (x, y) of each box's centre: arguments on top, then each step in schedule order,
    its nodes in rows by their depth inside the step."""
    where_item = {n: key for key, _, _, nodes in items for n in nodes}
    pos, depth, y = {}, {}, 0.0
    bands = []  # (step index, top, bottom)
    groups = [[it for it in items if it[2] == k] for k in range(-1, len(steps))]
    for k, group in enumerate(groups):
        if not group:
            continue
        rows, keys = {}, {it[0] for it in group}
        for key, _, _, nodes in group:
            deps = [depth[where_item[a]] for n in nodes for a in n.args
                    if where_item.get(a) in keys and where_item[a] != key]
            depth[key] = 1 + max(deps, default=-1)
            rows.setdefault(depth[key], []).append(key)
        top = y
        for d in sorted(rows):
            row = rows[d]
            for start in range(0, len(row), _PER_ROW):
                chunk = row[start:start + _PER_ROW]
                for i, key in enumerate(chunk):
                    pos[key] = (i * (_BOX_W + _GAP_X) + _BOX_W / 2, y - _BOX_H / 2)
                y -= _BOX_H + _GAP_Y
        bands.append((k - 1, top + _GAP_Y / 2, y + _GAP_Y / 2))
        y -= _GAP_Y
    return pos, bands, -y


def graph_figure(graph, steps=None, plan=None, title=None):
    """A matplotlib Figure of `graph`: each kernel a coloured box around the ops it fuses, host
    steps (views, BLAS, NumPy calls) grey, each stored value tagged with the buffer it lives
    in, results outlined. `steps` and `plan` default to what fusion and memory planning give
    the graph (`fuse=True`)."""
    from matplotlib.patches import FancyBboxPatch

    steps = schedule(graph) if steps is None else steps
    if plan is None:
        plan = plan_memory(graph, steps)
    names = value_names(graph)
    items = _items(graph, steps, names)
    pos, bands, height = _layout(items, steps)
    width = max(x for x, _ in pos.values()) + _BOX_W / 2 + 0.2 + 1.6
    fig = _figure(width, height + 0.7)
    ax = fig.add_subplot()
    ax.set_xlim(-1.6, width - 1.6)
    ax.set_ylim(-height, 0.15)
    ax.axis("off")
    ax.set_title(title or f"graph {graph.name}: {sum(not isinstance(s, HostStep) for s in steps)}"
                 f" kernel(s), {sum(isinstance(s, HostStep) for s in steps)} host step(s), "
                 f"{plan.buffers if plan else 0} buffer(s)", fontsize=10, loc="left")

    for k, top, bottom in bands:  # one band per step, behind its boxes
        xs = [pos[key][0] for key, _, step, _ in items if step == k]
        right = max(xs) + _BOX_W / 2 + 0.1
        if k < 0:
            text, color, style = "arguments", "white", ":"
        elif isinstance(steps[k], HostStep):
            text, color, style = f"host {k}\n(NumPy)", _HOST_COLOR, "--"
        else:
            text, color, style = f"kernel {k}\n{steps[k].kind}", _KIND_COLOR[steps[k].kind], "-"
        ax.add_patch(FancyBboxPatch((-0.1, bottom), right + 0.1, top - bottom,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=color, edgecolor="#555555", linestyle=style,
                                    linewidth=0.8, zorder=0))
        ax.text(-0.2, (top + bottom) / 2, text, ha="right", va="center", fontsize=8)

    where_item = {n: key for key, _, _, nodes in items for n in nodes}
    outputs = set(graph.outputs)
    for key, _, _, nodes in items:  # edges first, under the boxes
        x, y = pos[key]
        for src in dict.fromkeys(where_item[a] for n in nodes for a in n.args
                                 if a in where_item and where_item[a] != key):
            sx, sy = pos[src]
            ax.annotate("", xy=(x, y + _BOX_H / 2), xytext=(sx, sy - _BOX_H / 2),
                        arrowprops=dict(arrowstyle="-|>", color="#888888", lw=0.7,
                                        shrinkA=0, shrinkB=0, connectionstyle="arc3,rad=0.08"),
                        zorder=1)
    over = dict(plan.in_place) if plan else {}
    for key, label, _, nodes in items:
        x, y = pos[key]
        returned = any(n in outputs for n in nodes)
        ax.text(x, y, label, ha="center", va="center", fontsize=7, family="monospace", zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white",
                          edgecolor="black" if returned else "#999999",
                          linewidth=1.6 if returned else 0.6))
        tags = [f"buffer {plan.assignment[n]}" + (f" over {names[over[n]]}" if n in over else "")
                for n in nodes if plan and n in plan.assignment]
        if returned:
            tags.append("returned")
        if tags:
            b = plan.assignment.get(nodes[-1]) if plan else None
            ax.text(x + _BOX_W / 2 - 0.05, y - _BOX_H / 2 - 0.02, ", ".join(tags[-2:]),
                    ha="right", va="top", fontsize=6, zorder=4,
                    color=_BUFFER_COLORS[b % len(_BUFFER_COLORS)] if b is not None else "black")
    return fig


def memory_figure(plan, steps, title=None):
    """The memory plan as a timeline: one row per buffer, one bar per value stored in it from
    the step that writes it to the last step that reads it (to the end if it is returned)."""
    n_steps = len(steps)
    fig = _figure(7.5, 1.5 + 0.38 * max(plan.buffers, 1))
    ax = fig.add_subplot()
    over = dict(plan.in_place)
    dying = set(over.values())
    for buf in plan.storage:
        color = _BUFFER_COLORS[buf.index % len(_BUFFER_COLORS)]
        for v in buf.values:
            first, last = plan.live[v]
            # a value written over another meets it mid-step: the kernel reads one, writes the other
            start = first if v in over else first - 0.4
            end = n_steps + 0.4 if last == float("inf") else last + (0 if v in dying else 0.4)
            ax.barh(buf.index, end - start, left=start, height=0.6, color=color,
                    alpha=0.85, edgecolor="black" if v in over else "none",
                    hatch="//" if v in over else None)
            ax.text(start + 0.08, buf.index, plan.names[v], va="center", fontsize=7,
                    color="white", fontweight="bold")
    ax.set_yticks(range(plan.buffers),
                  [f"buffer {b.index}\n{_size(b.nbytes)}, {b.kind}" for b in plan.storage])
    ax.invert_yaxis()
    ax.set_xticks(range(n_steps + 1), [str(k) for k in range(n_steps)] + ["end"])
    ax.set_xlim(-0.6, n_steps + 0.6)
    ax.set_xlabel("step of the schedule (kernel or host op); 'end': returned to the caller")
    ax.set_ylabel("buffer")
    ax.set_title(title or f"memory plan: {_size(plan.planned_bytes)} planned vs "
                 f"{_size(plan.naive_bytes)} naive (a new array per op)\n"
                 "bar: a value's life in its buffer; hatched: written over the value before it",
                 fontsize=9, loc="left")
    return fig


def _size(nbytes):
    for unit in ("B", "KiB", "MiB"):
        if nbytes < 1024 or unit == "MiB":
            return f"{nbytes:.0f} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def bench_figure(results, title="tracejit benchmarks"):
    """Benchmark results (`bench/` scripts' `main()` return values, merged) as bars: each
    workload's speedup over NumPy eager per peer, and the per-call overhead in microseconds."""
    groups = [(name, rows) for name, rows in results.items() if name != "overhead"]
    rows = [row for _, rs in groups for row in rs]
    peers = [p for p in dict.fromkeys(p for r in rows for p in r["seconds"])  # peers that ran
             if p != "numpy" and any(r["seconds"].get(p) for r in rows)]
    overhead = results.get("overhead", [])
    fig = _figure(9, 1.3 + 0.55 * len(rows) * max(1, len(peers)) / 3 + (2.2 if overhead else 0))
    grid = fig.add_gridspec(2 if overhead else 1, 1,
                            height_ratios=[3, 1] if overhead else [1])
    ax = fig.add_subplot(grid[0])
    bar = 0.8 / max(1, len(peers))
    for j, peer in enumerate(peers):
        ys, xs = [], []
        for i, row in enumerate(rows):
            t, base = row["seconds"].get(peer), row["seconds"].get("numpy")
            if t and base:
                ys.append(i + j * bar)
                xs.append(base / t)
        ax.barh(ys, xs, height=bar, label=peer, color=_BUFFER_COLORS[j % len(_BUFFER_COLORS)])
        for y, x in zip(ys, xs):
            ax.text(x, y, f" {x:.2f}×", va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(right=ax.get_xlim()[1] * 1.6)  # room for the labels
    ax.set_yticks([i + bar * (len(peers) - 1) / 2 for i in range(len(rows))],
                  [r["workload"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("speedup over NumPy eager (× per call, log scale; right of the line is faster)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if overhead:
        ax2 = fig.add_subplot(grid[1])
        times = overhead[0]["seconds"]
        names = [p for p, t in times.items() if t]
        ax2.barh(names, [times[p] * 1e6 for p in names], color="#8c8c8c")
        for i, p in enumerate(names):
            ax2.text(times[p] * 1e6, i, f" {times[p] * 1e6:.1f} µs", va="center", fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlabel(f"time per call in µs, {overhead[0]['workload']}: the fixed cost of a call")
    return fig


def figure_png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _quietly(draw):
    """PNG bytes of draw(), or None (Jupyter then shows the text) when matplotlib is missing or
    drawing fails: a picture is never worth an error."""
    try:
        return figure_png(draw())
    except ImportError:
        return None
    except Exception as e:  # pragma: no cover - a drawing bug must not hide the text
        warnings.warn(f"tracejit could not draw this ({type(e).__name__}: {e}); showing text",
                      stacklevel=3)
        return None


def graph_png(graph):
    """A Graph as PNG bytes (Jupyter's `_repr_png_`), or None."""
    return _quietly(lambda: graph_figure(graph))


def explain_html(report):
    """An Explain report as HTML (Jupyter's `_repr_html_`): the graph with its actual kernels
    and buffers, the memory timeline, then the text report."""
    pictures = [_quietly(lambda: graph_figure(report.graph, report.executable.steps,
                                              report.memory))]
    if report.memory is not None:
        pictures.append(_quietly(lambda: memory_figure(report.memory, report.executable.steps)))
    imgs = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p).decode()}"/><br/>'
                   for p in pictures if p)
    return f"{imgs}<pre>{html.escape(str(report))}</pre>"
