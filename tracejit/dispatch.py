"""The cached call's fast path. For each argument structure a traced function has been called
with (which positions hold arrays, Python or NumPy scalars, static values, dicts or lists of
them, under which keyword names), a generated Python function checks the arguments' types,
builds one flat key of the arrays' shapes, dtypes and strides, and runs the Executable
registered under that key. It flattens no pytree and computes no full signature: a cached call
costs a few attribute reads per array. The entry that ran last has a function of its own: the
same checks against its key's values, then the Executable's lines inline, installed as the
traced function's own `__call__` (one Python frame for the whole call). A function
that writes into its arguments is served after a check that they can be written and overlap no
other argument. Anything the fast path does not recognise returns MISS and takes the general
path in api.py, which registers here what it found or compiled."""

import keyword
from types import SimpleNamespace

import numpy as np

MISS = object()

# Argument structures kept per traced function; beyond this they are all dropped and made again
# as calls need them.
MAX_PATTERNS = 16

# NumPy scalar types whose type alone gives their dtype (datetime64's unit, say, does not)
_TYPED_SCALARS = frozenset(np.dtype(c).type for c in "?bhilqBHILQefdgFDG")


def apart(writes, leaves):
    """True if the arguments the entry writes into (`writes`: leaf indices) are writeable and
    share no memory with another argument; else the general path warns or raises."""
    for i in writes:
        target = leaves[i]
        if not target.flags.writeable:
            return False
        for j, leaf in enumerate(leaves):
            if j != i and type(leaf) is np.ndarray and np.may_share_memory(target, leaf):
                return False
    return True


def call_shape(args, kwargs):
    """What the fast paths of a call are filed under."""
    return (len(args), *kwargs) if kwargs else len(args)


def describe(treedef, leaves, static):
    """A hashable description of an argument structure: the treedef with each leaf's type and
    whether it is keyed by value. None when the fast path cannot take it."""
    kinds = []
    for leaf, is_static in zip(leaves, static):
        kind = type(leaf)
        if is_static:
            try:
                hash(leaf)
            except TypeError:
                return None
        kinds.append((kind, is_static))
    return treedef, tuple(kinds)


class Pattern:
    """The generated fast path of one argument structure: `run(args, kwargs)` returns the
    result or MISS; `key(args, kwargs)` the key to register an Executable under;
    `specialise(entry, key)` a function that serves that one entry faster still."""

    def __init__(self, description, paths):
        treedef, kinds = description
        self.paths = paths
        self.table = {}  # flat key -> Executable
        # __name__: the generated code is tracejit's own (capture.py does not follow it)
        self.ns = {"__name__": __name__, "_nd": np.ndarray, "MISS": MISS,
                   "_get": self.table.get, "_next": next, "_hits": paths.hits, "_paths": paths,
                   "_apart": apart}
        # parts of the key: (expression, is a dtype, leaf index, what: "shape", "dtype",
        # "strides" or "value")
        lines, self.parts, self.leaves = [], [], []
        kinds = iter(kinds)

        def bind(obj):
            name = f"_b{len(self.ns)}"
            self.ns[name] = obj
            return name

        def walk(td, expr):
            if td.kind == "leaf":
                kind, is_static = next(kinds)
                leaf = len(self.leaves)
                name = f"x{leaf}"  # as Executable.run names its parameters
                self.leaves.append(name)
                lines.append(f"{name} = {expr}")
                lines.append(f"if type({name}) is not {bind(kind)}: return MISS")
                if is_static:
                    self.parts.append((name, False, leaf, "value"))
                elif kind is np.ndarray:
                    self.parts += [(f"{name}.{what}", what == "dtype", leaf, what)
                                   for what in ("shape", "dtype", "strides")]
                elif issubclass(kind, np.generic) and kind not in _TYPED_SCALARS:
                    self.parts.append((f"{name}.dtype", True, leaf, "dtype"))
                return
            if td.kind == "none":
                lines.append(f"if {expr} is not None: return MISS")
                return
            name = f"_p{len(lines)}"
            lines.append(f"{name} = {expr}")
            cls = {"tuple": tuple, "list": list, "dict": dict, "namespace": SimpleNamespace}.get(
                td.kind) or (td.meta if td.kind == "namedtuple" else td.meta[0])
            lines.append(f"if type({name}) is not {bind(cls)}: return MISS")
            if td.kind in ("tuple", "list", "namedtuple", "dict"):
                lines.append(f"if len({name}) != {len(td.children)}: return MISS")
            if td.kind == "namespace":
                lines.append(f"if len(vars({name})) != {len(td.children)}: return MISS")
            if td.kind == "dict":
                items = [f"{name}[{bind(k)}]" for k in td.meta]
            elif td.kind in ("namespace", "dataclass"):
                fields = td.meta if td.kind == "namespace" else td.meta[1]
                items = [f"{name}.{f}" if f.isidentifier() and not keyword.iskeyword(f)
                         else f"getattr({name}, {bind(f)})" for f in fields]
            else:
                items = [f"{name}[{i}]" for i in range(len(td.children))]
            for child, item in zip(td.children, items):
                walk(child, item)

        args_def, kwargs_def = treedef.children
        # the positional arguments are _a0, _a1, ...: run() unpacks them, a specialised
        # __call__ takes them as positional-only parameters (the cheapest call Python has)
        self.positional = [f"_a{i}" for i in range(len(args_def.children))]
        for i, td in enumerate(args_def.children):
            walk(td, f"_a{i}")
        for k, td in zip(kwargs_def.meta, kwargs_def.children):
            walk(td, f"kwargs[{bind(k)}]")
        # run() is only called for its call shape (FastPaths.by_shape); a specialised one
        # checks it first
        kw = len(kwargs_def.children)
        self.kwargs_check = f"len(kwargs) != {kw}" if kw else "kwargs"
        unpack = [f"{_tuple(self.positional)} = args"] if self.positional else []
        self.extract = ["try:", *(f"    {line}" for line in lines),
                        "except (KeyError, AttributeError):",  # a dict or object missing one
                        "    return MISS"] if lines else []
        key = ", ".join(e for e, *_ in self.parts)
        key = f"({key}{',' if len(self.parts) == 1 else ''})"
        leaves = ", ".join(self.leaves)
        self.leaf_tuple = _tuple(self.leaves)
        self.source = _function("key", unpack + self.extract + [f"return {key}"]) + "\n" + \
            _function("run", unpack + self.extract + [
                f"e = _get({key})",
                "if e is None: return MISS",
                f"if e.writes and not _apart(e.writes, {self.leaf_tuple}): return MISS",
                "if _paths.last is not e.fast:  # the next call is likely the same",
                "    _paths.serve(e.fast)",
                "e.used = _next(_hits) + 1  # the hit count, and recency for the LRU",
                "g = e.guard",
                f"if g is None: return e.run({leaves})",
                "live = g.live()",
                "if live is None: return MISS",
                f"return e.run({leaves}{', ' if leaves else ''}*live)"])
        exec(compile(self.source, "<tracejit-fast-path>", "exec"), self.ns)
        self.key = self.ns["key"]
        self.run = self.ns["run"]

    def specialise(self, entry, key):
        """A `__call__(traced, ...)` for `entry` alone, filed under `key`: the arguments compared
        with the key's values instead of looked up, and the Executable's own lines inline.
        Whatever it does not serve goes to the traced function's general path. Arguments whose
        shape and layout the first kernel checks itself (Executable.checked) are checked here
        for their type, rank and dtype only, and a kernel that finds them otherwise sends the
        call to the general path, having run nothing."""
        ns = dict(entry.namespace)  # its kernels, buffers and constants
        ns.update(self.ns, _entry=entry, _guard=entry.guard, _general=self.paths.general,
                  _off=self.paths.off, _given=_given, _tick=self.paths.hits.__next__)
        line, by_kernel = entry.checked or (None, ())
        checks = []
        for (expr, is_dtype, leaf, what), value in zip(self.parts, key):
            if leaf in by_kernel and what in ("shape", "strides"):
                if what == "shape":
                    checks.append(f"x{leaf}.ndim != {len(value)}")
                continue
            name = f"_k{len(checks)}"
            ns[name] = value
            checks.append(f"{expr} is not {name}" if is_dtype else f"{expr} != {name}")
        given = self.positional
        params = ", ".join(["traced", *(f"{a}=MISS" for a in given), "/", "*args", "**kwargs"])
        arity = [f"{given[-1]} is MISS"] if given else []
        lines = [f"if {' or '.join(arity + ['args', self.kwargs_check])}: return _general("
                 f"traced, _given({_tuple(given)}, args), kwargs)",
                 "if _off[0]: return MISS", *self.extract]
        if checks:
            lines.append(f"if {' or '.join(checks)}: return MISS")
        if entry.writes:
            ns["_writes"] = entry.writes
            lines.append(f"if not _apart(_writes, {self.leaf_tuple}): return MISS")
        if entry.guard is not None:
            lines += ["live = _guard.live()", "if live is None: return MISS"]
            captured = range(len(self.leaves), entry.num_leaves)
            if captured:
                lines.append(f"{''.join(f'x{i}, ' for i in captured)}= live")
        hit = "_tick()"  # a hit; its recency is stamped when another entry is served
        body = list(entry.body)
        if line is None:
            lines.append(hit)
        else:  # counted once the kernel has taken the arguments
            body[line:line + 1] = [f"if {body[line]}: return MISS", hit]
        miss = f"return _general(traced, {_tuple(given)}, kwargs)"
        lines = [x.replace("return MISS", miss) for x in lines + body]
        source = _function("__call__", lines, params)
        exec(compile(source, f"<tracejit-fast-path {entry.graph.name}>", "exec"), ns)
        run = ns["__call__"]
        run.source, run.entry, run.pattern = source, entry, self
        return run


def count_of(counter):
    """The next value an itertools.count would give, without taking it."""
    return int(repr(counter)[len("count("):-1])


def _given(positional, rest):
    """The positional arguments of a call to a specialised __call__, whose parameters default
    to MISS."""
    return tuple(a for a in positional if a is not MISS) + rest


def _tuple(names):
    return f"({', '.join(names)}{',' if len(names) == 1 else ''})"


def _function(name, lines, params="args, kwargs"):
    return f"def {name}({params}):\n" + "".join(f"    {x}\n" for x in lines)


class FastPaths:
    """Every Pattern of one traced function, by call shape, and `last`: the specialised
    `__call__` of the entry that ran last through a pattern or was registered last, which
    `install` makes the traced function's own (None: none, the general path)."""

    def __init__(self, hits, general, off, install):
        self.hits = hits  # the traced function's hit counter
        self.general = general  # general(traced, args, kwargs): the call without `last`
        self.off = off  # a one-item list, true while tracejit is disabled: run the function
        self.install = install
        self.by_shape = {}  # call shape (call_shape) -> tuple of Pattern.run
        self._patterns = {}  # description -> Pattern
        self.last = None
        self.serve(None)

    def serve(self, run):
        self.stamp()
        self.last = run
        self.install(run)

    def stamp(self):
        """Mark the entry `last` serves as used now: its calls count hits but leave its `used`
        as it was, for speed."""
        if self.last is not None:
            self.last.entry.used = count_of(self.hits)

    def register(self, args, kwargs, description, entry):
        """File `entry` under this call's key, making its Pattern when it is new."""
        pattern = self._patterns.get(description)
        if pattern is None:
            if len(self._patterns) >= MAX_PATTERNS:  # called in ever new ways: start over
                self._patterns.clear()
                self.by_shape = {}
            pattern = self._patterns[description] = Pattern(description, self)
        shape = call_shape(args, kwargs)  # keywords in another order: the same pattern
        runs = self.by_shape.get(shape, ())
        if pattern.run not in runs:
            self.by_shape[shape] = (*runs, pattern.run)
        key = pattern.key(args, kwargs)
        # a big-endian array is converted on entry by the general path, never passed as it is
        if key is not MISS and not any(isinstance(v, np.dtype) and not v.isnative for v in key):
            if getattr(entry.fast, "pattern", None) is not pattern:  # for its first key here
                entry.fast = pattern.specialise(entry, key)
            pattern.table[key] = entry
            if self.last is not entry.fast:
                self.serve(entry.fast)

    def forget(self, entry):
        """Drop every key filed to `entry` (evicted from the traced function's cache)."""
        for pattern in self._patterns.values():
            for key in [k for k, e in pattern.table.items() if e is entry]:
                pattern.table.pop(key, None)
        if getattr(self.last, "entry", None) is entry:
            self.serve(None)
