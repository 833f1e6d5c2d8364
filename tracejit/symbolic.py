"""The symbolic style on the traced IR: Variable, Constant, gradients and compile.

A Symbol is a deferred NumPy program: operators, ufuncs, NumPy functions and ndarray methods on
symbols record the call (the function and its arguments) instead of running it. `compile` makes
a TracedFunction of a generated function of the variables that replays those calls on the
tracer's proxies, so symbols reach the op table through the tracer's own NumPy dispatch, and the
compiled function shares the traced path's cache, passes, kernels and `explain`. Shapes and
dtypes are those of the arrays a call passes, as for a traced function; nodes carry the file:line
where their symbol was written, so errors and the IR name the user's symbolic code.
"""

import difflib
import inspect
import itertools
import keyword
import operator

import numpy as np

from . import pytree
from .api import TracedFunction
from .autodiff import _rebuild, vjp_graph
from .errors import ShapeError, TraceError, located, user_location, with_location
from .graph import Graph, Node
from .interpret import interpret
from .ops import check_dtype
from .tracing import Proxy, as_node, current_trace, trace

_order = itertools.count()  # creation order: a compiled function's variables in that order

# ndarray attributes whose value is needed while the program is written, before any call
_UNKNOWN_UNTIL_CALLED = {"shape", "dtype", "ndim", "size", "nbytes", "itemsize", "strides"}


class Symbol:
    """A value of a symbolic program: a call of `fn` on arguments that may hold symbols."""

    __array_priority__ = 2000
    __slots__ = ("_fn", "_args", "_kwargs", "_deps", "_loc", "_label")

    def __init__(self, fn, args=(), kwargs=None, label=None, loc=None):
        self._fn, self._args, self._kwargs = fn, tuple(args), dict(kwargs or {})
        leaves = pytree.flatten((self._args, self._kwargs))[0]
        if any(isinstance(x, Proxy) for x in leaves):
            raise with_location(TraceError, "a traced value cannot be used in a symbolic "
                                "expression; pass it to the compiled function instead")
        self._deps = tuple(x for x in leaves if isinstance(x, Symbol))
        self._label = label or getattr(fn, "__name__", "call")
        self._loc = loc or user_location(2)

    def _value(self, values, env):
        """This symbol's value while tracing, given its dependencies' values (by id)."""
        args, kwargs = _substitute((self._args, self._kwargs), values)
        return self._fn(*args, **kwargs)

    # -- NumPy's protocols and Python's operators record calls --------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            raise with_location(TypeError, "symbols are immutable: out= cannot write into one")
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return Symbol(fn, inputs, kwargs, ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        if kwargs.get("out") is not None:
            raise with_location(TypeError, "symbols are immutable: out= cannot write into one")
        return Symbol(func, args, kwargs, func.__name__)

    def __getitem__(self, key):
        return Symbol(operator.getitem, (self, key), label="getitem")

    def __setitem__(self, key, value):
        raise with_location(TypeError, "symbols are immutable: build a new one (np.where, "
                            "or x[key] = v inside a traced function)")

    def __getattr__(self, name):
        if name.startswith("_") or not hasattr(np.ndarray, name):
            raise AttributeError(f"'Symbol' object has no attribute {name!r}")
        if name in _UNKNOWN_UNTIL_CALLED:
            raise with_location(TraceError, f"the {name} of a symbol is known only when the "
                                "compiled function is called")
        if callable(getattr(np.ndarray, name)):  # a method: x.sum(axis=1), x.reshape(...)
            return lambda *args, **kwargs: Symbol(_call_method, (self, name, *args), kwargs,
                                                  name, user_location(2))
        return Symbol(getattr, (self, name), label=name)  # a property: x.T, x.mT

    def _refuse(what):  # noqa: N805 (called while the class body runs)
        def method(self, *args, **kwargs):
            raise with_location(TraceError, f"{what} of a symbol: it has no value until the "
                                "compiled function is called (use np.where for choices)")
        return method

    __bool__ = _refuse("bool()")
    __float__ = _refuse("float()")
    __int__ = _refuse("int()")
    __index__ = _refuse("int()")
    __len__ = _refuse("len()")
    __iter__ = _refuse("iteration")
    __array__ = _refuse("np.asarray()")
    del _refuse
    __hash__ = object.__hash__

    # -- the symbolic API ----------------------------------------------------------------------

    def grad(self, wrt, head=None):
        """Symbols for the gradient of this value with respect to the variables `wrt` (see
        tracejit.gradients)."""
        return gradients(self, wrt, head)

    def save(self, path, **examples):
        """Save this program as `path`.json and `path`.npz (read back by tracejit.load). With
        examples (the shape and dtype of variables declared without them), or when every
        variable declares both, it is saved as a typed graph; otherwise as its recorded calls,
        which compile for whatever arrays a call passes."""
        from .serialize import save_graph, save_symbols
        if not examples and any(v.shape is None or None in v.shape or v.dtype is None
                                for v in variables_of([self])):
            save_symbols(path, self)
        else:
            save_graph(path, program_graph(self, examples))

    def __repr__(self):
        loc = f" ({self._loc[0].rsplit('/', 1)[-1]}:{self._loc[1]})" if self._loc else ""
        return f"<symbol {self._label}{loc}>"


def _call_method(obj, name, *args, **kwargs):
    return getattr(obj, name)(*args, **kwargs)


def _recorder(fn, name, reflected=False):
    return lambda self, *other: Symbol(fn, (*other, self) if reflected else (self, *other),
                                       label=name)


def _install_operators():
    binary = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
              "lshift", "rshift", "matmul", "eq", "ne", "lt", "le", "gt", "ge")
    for name in binary:
        fn = getattr(operator, name + "_" if name in ("and", "or") else name)
        setattr(Symbol, f"__{name}__", _recorder(fn, name))
        if name not in ("eq", "ne", "lt", "le", "gt", "ge"):
            setattr(Symbol, f"__r{name}__", _recorder(fn, name, reflected=True))
    for name in ("neg", "pos", "abs", "invert"):
        setattr(Symbol, f"__{name}__", _recorder(getattr(operator, name), name))


_install_operators()


class Variable(Symbol):
    """A named input of a symbolic program: `tj.Variable("A")`, optionally with a `shape`
    (entries may be None: any length) and a `dtype` that every call must match."""

    __slots__ = ("name", "shape", "dtype", "_number")

    def __init__(self, name, shape=None, dtype=None):
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
            raise ValueError(f"a variable's name is a Python identifier (it names a keyword "
                             f"argument of the compiled function), not {name!r}")
        if shape is not None:
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            if not all(d is None or (isinstance(d, (int, np.integer)) and d >= 0)
                       for d in shape):
                raise ValueError(f"shape {shape!r}: each entry is a length >= 0 or None")
            shape = tuple(None if d is None else int(d) for d in shape)
        super().__init__(None, label=name, loc=user_location(2))
        self.name, self.shape, self.dtype = name, shape, \
            None if dtype is None else check_dtype(dtype, f"variable {name!r}")
        self._number = next(_order)

    def _value(self, values, env):
        return env[self.name]

    def _check(self, value):
        """Raise if a value passed for this variable has another shape or dtype than declared."""
        if isinstance(value, Proxy):
            shape, dtype = value.shape, value.dtype
        else:
            shape, dtype = np.shape(value), np.result_type(value)
        if self.shape is not None and (len(shape) != len(self.shape) or any(
                d is not None and d != s for d, s in zip(self.shape, shape))):
            declared = "(" + ", ".join("*" if d is None else str(d) for d in self.shape) + ")"
            raise with_location(ShapeError, f"variable {self.name!r} has shape {declared}; "
                                f"the value passed has shape {shape}")
        if self.dtype is not None and dtype != self.dtype:
            raise with_location(TypeError, f"variable {self.name!r} has dtype {self.dtype}; the "
                                f"value passed has dtype {dtype}")

    def __repr__(self):
        shape = "" if self.shape is None else f", shape={self.shape}"
        dtype = "" if self.dtype is None else f", dtype={self.dtype}"
        return f"Variable({self.name!r}{shape}{dtype})"


def Constant(value):  # noqa: N802 (the seed's spelling: a constructor)
    """A constant of a symbolic program: a Python scalar stays a Python scalar (weakly typed,
    as `x + 1` in NumPy), anything else becomes a private copy as an array."""
    if type(value) not in (bool, int, float) and not isinstance(value, np.generic):
        value = np.array(value)
        check_dtype(value.dtype, "a constant")
        value.flags.writeable = False
    return Symbol(_constant, (value,), label="const", loc=user_location(2))


def _constant(value):
    return value


# ---------------------------------------------------------------------------------------------
# gradients

class _Gradients(Symbol):
    """The gradients of `of` with respect to `wrt`, as a tuple. The program for `of` is replayed
    with each variable in `wrt` bound to a fresh input, so each gradient is a partial derivative
    even when two variables are bound to the same array; reverse mode (autodiff.vjp_graph) runs
    on that, and the copy of the forward values merges with the original by CSE."""

    __slots__ = ("_of", "_wrt")

    def __init__(self, of, wrt, head, loc):
        super().__init__(None, (of, head, *wrt), label="grad", loc=loc)
        self._of, self._wrt = of, tuple(wrt)

    def _value(self, values, env):
        tr = current_trace()
        fresh = [Node("input", (), {"name": v.name, "index": i, "scalar": p.node.weak},
                      p.shape, p.dtype, p.node.weak) for i, (v, p) in
                 enumerate((v, values[id(v)]) for v in self._wrt)]
        out = evaluate([self._of], {**env, **{v.name: Proxy(n, tr) for v, n in
                                              zip(self._wrt, fresh)}})[0]
        if not (isinstance(out, Proxy) and out.dtype.kind == "f"):
            dtype = np.result_type(out)
            raise with_location(TraceError, f"cannot differentiate a value of dtype {dtype}: "
                                "gradients are defined for float values only")
        head = _substitute(self._args[1], values)
        seeds = None if head is None else [
            as_node(np.broadcast_to(head, out.shape).astype(out.dtype), tr)]
        try:
            graph = vjp_graph(Graph("grad", fresh, [out.node]), fresh, seeds)
        except TraceError as e:
            if getattr(e, "location", None):
                raise
            raise with_location(TraceError, str(e)) from None
        mapping = _rebuild(graph.nodes, {n: values[id(v)].node for v, n in zip(self._wrt, fresh)})
        return tuple(Proxy(mapping[g], tr) for g in graph.outputs[1:])


def gradients(of, wrt, head=None):
    """Symbols for the gradients of the symbol `of` with respect to the Variables in `wrt`, or
    the variables of `of` with these names (one gives one symbol, a list gives a list). `head`
    is the gradient flowing into `of` (a symbol or array broadcast to its shape); by default
    ones, so a vector `of` gives the gradient of its sum, as MXNet does."""
    loc = user_location(2)
    single = isinstance(wrt, (Variable, str))
    wrt = [wrt] if single else list(wrt)
    if not isinstance(of, Symbol):
        raise with_location(TypeError, f"gradients of a {type(of).__name__}: pass a symbol", loc)
    by_name = None
    for i, v in enumerate(wrt):
        if isinstance(v, str):  # a variable by name: those of a loaded or traced program
            by_name = by_name or {u.name: u for u in variables_of([of])}
            if v not in by_name:
                close = difflib.get_close_matches(v, by_name, 1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise with_location(TypeError, f"no variable {v!r}{hint}", loc)
            wrt[i] = v = by_name[v]
        if not isinstance(v, Variable):
            raise with_location(TypeError, f"gradients are taken with respect to Variables "
                                f"(or their names), not {v!r}", loc)
    group = _Gradients(of, wrt, head, loc)
    grads = [Symbol(operator.getitem, (group, i), label="grad", loc=loc) for i in range(len(wrt))]
    return grads[0] if single else grads


# ---------------------------------------------------------------------------------------------
# evaluation while tracing

def _substitute(x, values):
    """x with each symbol inside (containers too) replaced by its value."""
    leaves, tree = pytree.flatten(x)
    return pytree.unflatten(tree, [values[id(v)] if isinstance(v, Symbol) else v
                                   for v in leaves])


def _postorder(outputs):
    """Every symbol the outputs depend on, dependencies first (no recursion: deep chains)."""
    order, seen, stack = [], set(), [(s, False) for s in reversed(outputs)]
    while stack:
        sym, expanded = stack.pop()
        if id(sym) in seen:
            continue
        if expanded:
            seen.add(id(sym))
            order.append(sym)
            continue
        stack.append((sym, True))
        stack.extend((d, False) for d in reversed(sym._deps) if id(d) not in seen)
    return order


def evaluate(outputs, env):
    """The values of the output symbols with variables bound by name in env; each symbol's
    operations are recorded with the file:line where it was written."""
    values = {}
    for sym in _postorder(outputs):
        with located(sym._loc):
            values[id(sym)] = sym._value(values, env)
    return [values[id(s)] for s in outputs]


def variables_of(outputs):
    """The Variables the output symbols read, in creation order; names must be unique."""
    found = {}
    for sym in _postorder(outputs):
        if isinstance(sym, Variable):
            other = found.setdefault(sym.name, sym)
            if other is not sym:
                raise with_location(ValueError, f"two different variables are named "
                                    f"{sym.name!r}")
    return sorted(found.values(), key=lambda v: v._number)


# ---------------------------------------------------------------------------------------------
# compile

def _program(outputs, name="symbolic"):
    """(the function of the variables that replays the program, its variables)."""
    leaves, tree = pytree.flatten(outputs)
    for leaf in leaves:
        if not isinstance(leaf, Symbol):
            raise with_location(TypeError, f"compile takes symbols (or lists, tuples and dicts "
                                f"of them), not {type(leaf).__name__}")
    variables = variables_of(leaves)
    names = [v.name for v in variables]

    def program(*values):
        tr = current_trace()
        if tr is None:  # eagerly (tj.disable()): trace once more and interpret
            graph = trace(program, list(values), pytree.flatten((values, {}))[1], names,
                          [False] * len(values))
            return interpret(graph, *values, *graph.meta["captured"])
        for v, value in zip(variables, values):
            v._check(value)
        values = [v if isinstance(v, Proxy) else Proxy(as_node(v, tr), tr) for v in values]
        return pytree.unflatten(tree, evaluate(leaves, dict(zip(names, values))))

    program.__name__ = program.__qualname__ = name
    program.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return program, variables


class SymbolicFunction(TracedFunction):
    """A compiled symbolic program: call it with keyword arrays named after its variables. It is
    a TracedFunction of the variables (in creation order), so it is cached per signature and
    inspected the same way (`graph`, `explain`, `cache_info`), and may be called from traced
    code and differentiated there."""

    def __init__(self, outputs, **options):
        program, variables = _program(outputs)
        options.setdefault("fallback", "raise")  # a symbolic program has no eager version
        super().__init__(program, **options)
        self.variables = tuple(v.name for v in variables)

    def _positional(self, args, kwargs):
        if not args and len(kwargs) == len(self.variables):  # the usual call: exactly the names
            try:
                values = [kwargs[n] for n in self.variables]
            except KeyError:
                values = None
            if values is not None and list not in map(type, values) and \
                    tuple not in map(type, values):
                return values
        if args:
            raise with_location(TypeError, "a compiled symbolic function takes keyword "
                                f"arguments named after its variables: {self._spelling()}")
        for name in kwargs:
            if name not in self.variables:
                raise with_location(TypeError, f"no variable {name!r}{self._suggest(name)}")
        missing = [n for n in self.variables if n not in kwargs]
        if missing:
            raise with_location(TypeError, f"no value for variable {missing[0]!r}: call "
                                f"{self._spelling()}")
        # a list or tuple is an array, as NumPy's functions take it
        return [np.asarray(kwargs[n]) if type(kwargs[n]) in (list, tuple) else kwargs[n]
                for n in self.variables]

    def _spelling(self):
        return f"f({', '.join(f'{n}=...' for n in self.variables)})"

    def _suggest(self, name):
        same = [n for n in self.variables if n.lower() == name.lower()]
        close = same or difflib.get_close_matches(name, self.variables, 1)
        if close:
            return f"; did you mean {close[0]!r}?"
        return f"; the variables are {', '.join(self.variables) or '(none)'}"

    def __call__(self, *args, **kwargs):
        return super().__call__(*self._positional(args, kwargs))

    def eager(self, *args, **kwargs):
        """Run the program with the reference interpreter (no kernels)."""
        return self.fn(*self._positional(args, kwargs))

    def graph(self, *args, **kwargs):
        return super().graph(*self._positional(args, kwargs))

    def explain(self, *args, **kwargs):
        return super().explain(*self._positional(args, kwargs))

    def __repr__(self):
        return f"<compiled symbolic function {self._spelling()}>"


def compile(outputs, **options):  # noqa: A001 (the symbolic API's name)
    """Compile a symbol, or a list, tuple or dict of symbols, into a function of keyword arrays
    named after the variables: `compile(D)(A=a, B=b)`. Options are tj.trace's (fuse, parallel,
    max_cache_entries)."""
    return SymbolicFunction(outputs, **options)


# ---------------------------------------------------------------------------------------------
# graphs <-> symbols (traced functions, checkpoints)

def program_graph(outputs, examples=None):
    """The graph of the symbolic program for the example arrays (by variable name); variables
    declared with a full shape and dtype need no example. Not simplified: stop_gradient and
    every op stay as written, for saving and for differentiating again."""
    program, variables = _program(outputs)
    examples = dict(examples or {})
    values = []
    for v in variables:
        if v.name in examples:
            values.append(examples.pop(v.name))
        elif v.shape is not None and None not in v.shape and v.dtype is not None:
            values.append(np.zeros(v.shape, v.dtype))
        else:
            raise with_location(TypeError, f"the shape and dtype of variable {v.name!r} are "
                                "needed: declare them (tj.Variable(name, shape=, dtype=)) or "
                                f"pass an example array ({v.name}=...)")
    if examples:
        raise with_location(TypeError, f"no variable {sorted(examples)[0]!r} in this program")
    graph = trace(program, values, pytree.flatten((tuple(values), {}))[1],
                  [v.name for v in variables], [False] * len(values))
    return standalone(graph)


def standalone(graph):
    """The traced graph as a self-contained program: captured arrays become constants (their
    values now), inputs are numbered in order. A function that writes into its arguments
    becomes a program returning (its result, {argument name: the argument's new value})."""
    captured = graph.meta.get("captured", [])
    first_captured = len(graph.inputs) - len(captured)
    mapping = {}
    for i, n in enumerate(graph.inputs):
        if i >= first_captured:
            value = np.array(captured[i - first_captured])
            mapping[n] = Node("const", (), {"value": value}, value.shape, value.dtype)
        else:
            mapping[n] = Node("input", (), {**n.attrs, "index": i}, n.shape, n.dtype, n.weak,
                              n.loc)
    _rebuild(graph.nodes, mapping)
    inputs = [mapping[n] for n in graph.inputs[:first_captured]]
    outputs, tree = [mapping[o] for o in graph.outputs], graph.out_tree
    writes = graph.meta.get("writes", ())
    if writes:
        names = {n.attrs["index"]: n.attrs["name"] for n in graph.inputs}
        keys = tuple(sorted(names[i] for i in writes))
        written = dict(zip((names[i] for i in writes), outputs[len(outputs) - len(writes):]))
        outputs = outputs[:len(outputs) - len(writes)] + [written[k] for k in keys]
        tree = pytree.TreeDef("tuple", 2, (tree, pytree.TreeDef(
            "dict", keys, (pytree.LEAF,) * len(keys))))
    return Graph(graph.name, inputs, outputs, tree)


def symbols_of(graph):
    """Symbols for the outputs of a standalone graph (a loaded checkpoint, a traced function's
    program), with one Variable per input, named, shaped and typed as the input."""
    variables = [Variable(n.attrs["name"], n.shape, n.dtype) for n in graph.inputs]
    whole = Symbol(_splice, (graph, *variables), label=graph.name)
    outs = [Symbol(operator.getitem, (whole, i), label=graph.name) for i in
            range(len(graph.outputs))]
    return pytree.unflatten(graph.out_tree, outs)


def _splice(graph, *values):
    """The graph's outputs, as values of the current trace, with its inputs bound to values."""
    tr = current_trace()
    mapping = {}
    for n, value in zip(graph.inputs, values):
        node = as_node(value, tr)
        if node.weak != n.weak:
            kind = "a Python scalar" if n.weak else "an array or NumPy scalar"
            raise with_location(TypeError, f"variable {n.attrs['name']!r} was traced as {kind}; "
                                "pass the same kind of value")
        mapping[n] = node
    _rebuild(graph.nodes, mapping)
    return tuple(Proxy(mapping[o], tr) for o in graph.outputs)
