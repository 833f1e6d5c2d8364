"""Random NumPy programs for differential testing, drawn from tracejit's op table.

A program is straight-line Python source over its arguments (`t3 = np.exp(t0) * t1`), so a
failure prints as code a person can paste into a regression test. Generation has two levels:

- the *structure* (which ops, wired how, input dtypes/ranks/layout classes, where Python and NumPy
  scalars enter) comes from a seed. The fuzz test draws seeds from a small pool, so many examples
  share a structure and its compiled kernels: Numba compiles each new kernel source, which is the
  dominant cost.
- the *instance* (dimension sizes including 0 and 1, array values with NaN/inf/extremes, which
  kind of non-contiguous view) is drawn fresh for every example.

Validity is decided by NumPy itself: each candidate op is run on probe arrays whose dimensions
have distinct sizes (so operands that would not broadcast for some sizes are rejected), and only
steps NumPy accepts are kept. Ops come from `tracejit.ops.OPS` by kind, so new ops are fuzzed as
soon as they are registered: every elementwise op with a ufunc (and its Python operator, in-place
ones included), `where`, `astype`, views in `VIEW_CALLERS`, reductions whose same-named NumPy
function tracejit implements, and the scans, copies and matmul in `CALLERS`. Ops the generator
never draws are listed in `NOT_DRAWN` with the reason; tests/fuzz/test_fuzz.py checks that every
other op of the table shows up in generated programs.
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

import tracejit as tj
from tracejit.backends.cpu import PARALLEL_WORK
from tracejit.numpy_api import FUNCTIONS
from tracejit.ops import OPS

FLOATS = (np.float64, np.float32)
INTS = (np.int64, np.int32, np.int8, np.uint8, np.uint64)
# float16 is left out: kernels compute it in float32 and round once at the end, so results
# legitimately differ from NumPy's per-op float16 rounding (including overflow to inf).
DTYPES = FLOATS * 3 + (np.int64, np.int32) * 2 + (np.bool_,) * 2 + INTS[2:]
ASTYPE_TARGETS = (np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_)
OPERATORS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/",
             "floor_divide": "//", "remainder": "%", "power": "**", "bitwise_and": "&",
             "bitwise_or": "|", "bitwise_xor": "^", "left_shift": "<<", "right_shift": ">>",
             "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
             "equal": "==", "not_equal": "!="}
UNARY_OPERATORS = {"negative": "-", "invert": "~", "positive": "+"}
INPLACE_OPS = {"+=": "add", "-=": "subtract", "*=": "multiply", "/=": "divide",
               "//=": "floor_divide", "%=": "remainder", "**=": "power", "&=": "bitwise_and",
               "|=": "bitwise_or", "^=": "bitwise_xor", "<<=": "left_shift", ">>=": "right_shift"}
INPLACE = ("+=", "-=", "*=") * 3 + tuple(INPLACE_OPS)[3:]
REDUCTION_KINDS = ("reduction",)


def _ufunc_name(op):
    return op.name if getattr(np, op.name, None) is op.ufunc else None


def fuzzable_ops():
    """name -> how the fuzzer calls it, for every op in the table the fuzzer knows how to call."""
    table = {}
    for name, op in OPS.items():
        if op.kind == "elementwise" and op.ufunc is not None:
            table[name] = ("ufunc", op.ufunc.nin)
        elif name in ("where", "astype"):
            table[name] = (name, 3 if name == "where" else 1)
        elif name in SPECIAL_CALLERS:
            table[name] = ("special", 1)
        elif op.kind == "view" and name in VIEW_CALLERS:
            table[name] = ("view", 1)
        elif op.kind in REDUCTION_KINDS and getattr(np, name, None) in FUNCTIONS:
            table[name] = ("reduction", 1)
        elif name in CALLERS:
            table[name] = ("call", 0)
        elif name in ("setitem", "index_put"):
            table[name] = ("setitem", 1)
    return table


def _transpose(rng, arg, probe):
    if np.ndim(probe) < 2:
        return None
    perm = list(range(np.ndim(probe)))
    while perm == sorted(perm):
        rng.shuffle(perm)
    return rng.choice([f"np.transpose({arg}, {tuple(perm)})", f"{arg}.T" if np.ndim(probe) == 2
                       else f"{arg}.transpose({', '.join(map(str, perm))})"])


def _unit_index(rng, arg, probe):
    """None-indexing (inserts a length-1 axis) and reversing slices (the same shape)."""
    options = [f"{arg}[None]", f"{arg}[..., None]"]
    if np.ndim(probe) >= 1:
        options += [f"{arg}[:, None]", f"{arg}[:, np.newaxis, ...]", f"{arg}[::-1]",
                    f"np.flip({arg}, {rng.randrange(np.ndim(probe))})"]
    if np.ndim(probe) >= 2:
        options += [f"{arg}[:, ::-1]", f"{arg}[::-1, None, ::-1]"]
    return rng.choice(options)


def _unit_reshape(rng, arg, probe):
    """Reshapes that insert or remove length-1 axes (probe sizes are never 1 by chance)."""
    ndim = np.ndim(probe)
    options = [f"np.expand_dims({arg}, {rng.randint(-ndim - 1, ndim)})"]
    units = [d for d in range(ndim) if np.shape(probe)[d] == 1]
    if units:
        options.append(f"np.squeeze({arg}, axis={rng.choice(units)})")
    if ndim == 1:
        options.append(f"{arg}.reshape(-1, 1)")
    return rng.choice(options)


# view op name -> (rng, argument name, probe value) -> source text or None when not applicable
VIEW_CALLERS = {"transpose": _transpose, "getitem": _unit_index, "reshape": _unit_reshape}
# other elementwise ops reached through a function: name -> (rng, argument name) -> source
SPECIAL_CALLERS = {
    "stop_gradient": lambda rng, arg: f"tj.stop_gradient({arg})",
    "full": lambda rng, arg: rng.choice([f"np.full_like({arg}, {rng.choice([2, -1.5, True])})",
                                         f"np.zeros_like({arg})", f"np.ones_like({arg})"]),
}


def _axis(rng, arr, none=True):
    ndim = np.ndim(arr)
    return rng.choice(([None] if none else []) + list(range(-ndim, ndim)) or [None])


def _axis_kw(rng, arr):
    axis = _axis(rng, arr)
    return "" if axis is None else f", axis={axis}"


def _two(rng, arrays):
    return rng.choice(arrays), rng.choice(arrays)


def _matmul(rng, arrays, env):
    a, b = _two(rng, arrays)
    forms = [f"{a} @ {b}", f"np.matmul({a}, {b})"]
    if np.ndim(env[b]) >= 2:
        forms.append(f"{a} @ np.swapaxes({b}, -1, -2)")
    if np.ndim(env[a]) >= 2:
        forms.append(f"np.swapaxes({a}, -1, -2) @ {b}")
    return rng.choice(forms)


def _concatenate(rng, arrays, env):
    a, b = _two(rng, arrays)
    axis = _axis(rng, env[a], none=False)
    axis = "" if axis is None else f", axis={axis}"
    return rng.choice([f"np.concatenate([{a}, {b}]{axis})", f"np.concatenate(({a}, {b}, {a}))",
                       f"np.stack([{a}, {b}]{axis})", f"np.hstack([{a}, {b}])",
                       f"np.vstack([{a}, {b}])"])


def _take(rng, arrays, env):
    a = rng.choice(arrays)
    idx = rng.choice(["[1, 0, 1]", "[-1]", "[0, -1, 0, 1]"])
    forms = [f"{a}[{idx}]", f"{a}[np.array({idx})]"]
    if np.ndim(env[a]) >= 2:
        forms += [f"{a}[:, {idx}]", f"{a}[..., {idx}]"]
    return rng.choice(forms)


def _one_array(make):
    """A caller for a function of one array: make(rng, name, value) -> source."""
    def caller(rng, arrays, env):
        a = rng.choice(arrays)
        return make(rng, a, env[a])
    return caller


# other ops reached through NumPy functions or operators, given the array values so far:
# name -> (rng, array names, env) -> source or None when not applicable
CALLERS = {
    "cumsum": _one_array(lambda rng, a, v: f"np.cumsum({a}{_axis_kw(rng, v)})"),
    "cumprod": _one_array(lambda rng, a, v: f"np.cumprod({a}{_axis_kw(rng, v)})"),
    "matmul": _matmul,
    "broadcast_to": lambda rng, arrays, env: "np.broadcast_to({}, {}.shape)".format(
        *_two(rng, arrays)),
    "concatenate": _concatenate,
    "take": _take,
    "accumulate": _one_array(lambda rng, a, v: None if not np.ndim(v) else
                             f"np.{rng.choice(['add', 'multiply', 'maximum', 'minimum'])}"
                             f".accumulate({a}, axis={rng.randrange(-np.ndim(v), np.ndim(v))})"),
    "roll": _one_array(lambda rng, a, v: f"np.roll({a}, {rng.choice([1, -2, 3])}"
                                         f"{_axis_kw(rng, v)})"),
    "tile": _one_array(lambda rng, a, v: f"np.tile({a}, "
                                         f"{rng.choice(['2', '(2, 1)', '(1, 2)', '(2, 1, 1)'])})"),
    "repeat": _one_array(lambda rng, a, v: f"np.repeat({a}, {rng.choice([2, 3])}"
                                           f"{_axis_kw(rng, v)})"),
    "sort": _one_array(lambda rng, a, v: None if not np.ndim(v) else
                       f"np.sort({a}, axis={rng.randrange(-np.ndim(v), np.ndim(v))})"),
}
# ops in the table that programs never draw, each with the reason
NOT_DRAWN = {
    "input": "a graph leaf (an argument), not an op a program calls",
    "const": "a graph leaf (a captured value), not an op a program calls",
    "scatter": "emitted only by autodiff, as the gradient of a gather",
    "scatter_add": "emitted only by autodiff, as the gradient of take",
    "random": "draws NumPy's global random stream: an eager run and a compiled run of the same "
              "program draw different numbers, so NumPy is no oracle for it",
}
# NumPy's own routines run as host ops, where an input one ulp away from eager NumPy's (fused
# arithmetic, vector math) changes the answer beyond any tolerance (an order of ties, a bin, a
# near-singular solve): tests/test_third_party.py and tests/test_autodiff.py check them instead
for _name, _why in [("argsort", "reorders ties"), ("searchsorted", "moves an insertion point"),
                    ("histogram", "moves a value across a bin edge"),
                    ("interp", "needs increasing breakpoints"),
                    ("solve", "is ill-conditioned on random matrices"),
                    ("inv", "is ill-conditioned on random matrices"),
                    ("det", "is ill-conditioned on random matrices"),
                    ("cholesky", "needs positive definite matrices")]:
    NOT_DRAWN[_name] = f"a NumPy routine on the host that {_why}: checked by its own tests"


@dataclass
class Input:
    kind: str  # "array", "npscalar" or "pyscalar"
    dtype: np.dtype
    dims: tuple  # indices into the base dimensions, None for a broadcast (size-1) dimension
    layout: str  # "C", "T" (transposed), "S" (strided slice), "R" (reversed)


@dataclass
class Program:
    inputs: list
    lines: list = field(default_factory=list)  # source lines of the body
    returns: str = ""
    base_rank: int = 0
    seed: int = 0
    min_float_bytes: int = 8  # the least precise float dtype NumPy computes anywhere in it
    used: list = field(default_factory=list)  # per line: the op names and operators it uses

    @property
    def ops(self):
        return {u for line in self.used for u in line}

    @property
    def reduces(self):
        """Whether a line reduces (or scans, or multiplies matrices): sums in another order."""
        return any(OPS[u].kind in ("reduction", "host", "matmul") for u in self.ops if u in OPS)

    @property
    def large_ok(self):
        """Whether large instances stay large-but-bounded: matmul squares a dimension."""
        return "matmul" not in self.ops and any(
            x.kind == "array" and any(d is not None for d in x.dims) for x in self.inputs)

    @property
    def source(self):
        params = ", ".join(f"a{i}" for i in range(len(self.inputs)))
        body = "".join(f"    {line}\n" for line in self.lines)
        return f"def prog({params}):\n{body}    return {self.returns}\n"

    def function(self):
        ns = {"np": np, "tj": tj}
        exec(compile(self.source, f"<fuzz program {self.seed}>", "exec"), ns)
        return ns["prog"]

    def __repr__(self):
        ins = ", ".join(f"a{i}: {x.kind} {np.dtype(x.dtype).name} dims={x.dims} layout={x.layout}"
                        for i, x in enumerate(self.inputs))
        return f"Program(seed={self.seed}; {ins})\n{self.source}"


def _probe_size(d):
    return 2 + d  # distinct sizes per base dimension, so mismatched operands fail to broadcast


def _python_scalar(rng, dtype):
    kind = np.dtype(dtype).kind
    if kind == "b":
        return rng.choice([True, False])
    if kind == "f":
        return rng.choice([0.5, -1.5, 2.0, 3.25, 0.0, -0.0, 1e3])
    return rng.choice([0, 1, 2, -3, 7])


def _eval(expr, env):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return True, eval(expr, {"np": np, "tj": tj}, env)
        except Exception:
            return False, None


def make_program(seed, ops=None, max_steps=5):
    """The program structure for one seed: deterministic for a given op table."""
    rng = random.Random(seed)
    ops = fuzzable_ops() if ops is None else ops
    names = sorted(ops)
    base_rank = rng.choice([0, 1, 1, 2, 2, 2, 3])
    n_inputs = rng.choice([1, 2, 2, 3])
    inputs, env, values = [], {}, []
    for i in range(n_inputs):
        kind = rng.choice(["array"] * 6 + ["npscalar", "pyscalar"])
        dtype = np.dtype(rng.choice(DTYPES))
        if kind == "pyscalar":
            dtype = np.dtype({"f": np.float64, "b": np.bool_}.get(dtype.kind, np.int64))
        dims = ()
        if kind == "array":
            rank = rng.randint(0, base_rank)
            dims = tuple(None if rng.random() < 0.2 else d
                         for d in range(base_rank - rank, base_rank))
        layout = rng.choice("CCCTSR") if kind == "array" and dims else "C"
        inputs.append(Input(kind, dtype, dims, layout))
        env[f"a{i}"] = probe_value(inputs[-1])
        values.append(f"a{i}")

    prog = Program(inputs, base_rank=base_rank, seed=seed,
                   min_float_bytes=min([8] + [np.dtype(x.dtype).itemsize for x in inputs
                                              if np.dtype(x.dtype).kind == "f"]))
    fresh, viewed = set(), set()  # intermediates safe to update in place; values with views
    for _ in range(rng.randint(1, max_steps)):
        for _attempt in range(20):
            line, target, kind, used = _random_step(rng, ops, names, values, env, fresh,
                                                    viewed)
            if line is None:
                continue
            ok, result = _eval(line.split(" = ", 1)[1] if kind != "inplace" else "None", env)
            if kind == "inplace":
                ok, result = _inplace_probe(line, env, target)
            if ok and _supported_result(result):
                if np.asarray(result).dtype.kind == "f":
                    prog.min_float_bytes = min(prog.min_float_bytes,
                                               np.asarray(result).dtype.itemsize)
                prog.lines.append(line)
                prog.used.append(used)
                env[target] = result
                if kind != "inplace":
                    values.append(target)
                if kind in ("ufunc", "where", "astype") and isinstance(result, np.ndarray) \
                        and result.ndim:
                    fresh.add(target)
                break
    computed = values[n_inputs:] or values
    picks = [computed[-1]] + rng.sample(computed[:-1], k=min(len(computed) - 1,
                                                             rng.choice([0, 0, 1, 2])))
    if rng.random() < 0.1:
        picks.append(rng.choice(values[:n_inputs]))
    shape = rng.choice(["single", "tuple", "tuple", "list", "dict"])
    if shape == "single" or len(picks) == 1 and shape != "tuple":
        prog.returns = picks[0]
    elif shape == "tuple":
        prog.returns = f"({', '.join(picks)},)"
    elif shape == "list":
        prog.returns = f"[{', '.join(picks)}]"
    else:
        prog.returns = "{" + ", ".join(f"'r{i}': {p}" for i, p in enumerate(picks)) + "}"
    return prog


def _supported_result(value):
    return np.asarray(value).dtype.kind in "biuf"


def _inplace_probe(line, env, target):
    trial = dict(env)
    trial[target] = np.array(env[target], copy=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(line, {"np": np}, trial)
        except Exception:
            return False, None
    if not isinstance(trial[target], np.ndarray) or trial[target].shape != env[target].shape:
        return False, None
    return True, trial[target]


def _random_step(rng, ops, names, values, env, fresh, viewed):
    """One candidate line `tN = ...`: (line, target, kind, used) or (None, None, None, None).

    `used` names what the line exercises: the op's name in the table, and for a Python operator
    also the operator itself (`"op /"`), so tests can check that every op can be drawn."""
    target = f"t{len(values)}"
    if fresh and rng.random() < 0.1:
        dest = rng.choice(sorted(fresh - viewed) or [None])
        allowed = [op for op in INPLACE if INPLACE_OPS[op] in ops]
        if dest is not None and allowed:
            src = _operand(rng, values, env)
            op = rng.choice(allowed)
            return f"{dest} {op} {src}", dest, "inplace", (INPLACE_OPS[op], f"op {op}")
    name = rng.choice(names)
    how, arity = ops[name]
    used = (name,)
    nothing = None, None, None, None
    if how == "setitem":  # `x[key] = value` on an intermediate nothing else views
        dest = rng.choice(sorted(fresh - viewed) or [None])
        if dest is None:
            return nothing
        keys = ["0", "-1", "1:", "::2", "::-1", "..."]
        if np.ndim(env[dest]) >= 2:
            keys += [":, 0", "1:, ::2", "..., -1", "0, 1"]
        if name == "index_put":  # integer index arrays, repeated and negative indices
            keys = ["[1, 0, 1]", "[-1, 0]", "np.array([0, -1, 0])"]
            if np.ndim(env[dest]) >= 2:
                keys += [":, [1, 0, 1]", "[0, 1], [1, -1]", "1:, [-1, 0]"]
        src = _operand(rng, values, env)
        key = rng.choice(keys)
        if name == "index_put" and rng.random() < 0.3:  # ufunc.at: repeats accumulate
            ufunc = rng.choice(["add", "subtract", "maximum"])
            return f"np.{ufunc}.at({dest}, np.s_[{key}], {src})", dest, "inplace", used
        return f"{dest}[{key}] = {src}", dest, "inplace", used
    if how == "call":
        arrays = [v for v in values if isinstance(env[v], np.ndarray)]
        expr = CALLERS[name](rng, arrays, env) if arrays else None
        if expr is None:
            return nothing
        if OPS[name].kind == "view":  # np.broadcast_to(a, ...): `a` is not updated in place
            viewed.add(re.match(r"[\w.]+\((\w+)", expr).group(1))
        return f"{target} = {expr}", target, how, used
    args = [_operand(rng, values, env) for _ in range(arity)]
    if name == "power" and all(_python_scalar_operand(a, env) for a in args):
        return nothing  # Python's int ** -n is a float: its type depends on a value
    if name == "signbit" and not re.fullmatch(r"a\d+", args[0]):
        return nothing  # the sign of a computed NaN differs between libms
    if how == "ufunc":
        op = OPS[name]
        fn = _ufunc_name(op)
        if name in OPERATORS and arity == 2 and rng.random() < 0.5:
            return (f"{target} = {args[0]} {OPERATORS[name]} {args[1]}", target, how,
                    used + (f"op {OPERATORS[name]}",))
        if name in UNARY_OPERATORS and rng.random() < 0.5:
            return (f"{target} = {UNARY_OPERATORS[name]}{args[0]}", target, how,
                    used + (f"unary {UNARY_OPERATORS[name]}",))
        if name == "clip":
            return f"{target} = np.clip({', '.join(args)})", target, how, used
        if fn is None:
            return nothing
        return f"{target} = np.{fn}({', '.join(args)})", target, how, used
    if how == "where":
        return f"{target} = np.where({', '.join(args)})", target, how, used
    if how == "astype":
        arg = rng.choice([v for v in values if not isinstance(env[v], (bool, int, float))]
                         or [None])
        if arg is None:
            return nothing
        dt = np.dtype(rng.choice(ASTYPE_TARGETS)).name
        return f"{target} = {arg}.astype(np.{dt})", target, how, used
    if how == "special":
        arrays = [v for v in values if not isinstance(env[v], (bool, int, float))]
        if not arrays:
            return nothing
        return f"{target} = {SPECIAL_CALLERS[name](rng, rng.choice(arrays))}", target, how, used
    if how == "view":
        arrays = [v for v in values if isinstance(env[v], np.ndarray)]
        if not arrays:
            return nothing
        arg = rng.choice(arrays)
        expr = VIEW_CALLERS[name](rng, arg, env[arg])
        if expr is None:
            return nothing
        viewed.add(arg)
        return f"{target} = {expr}", target, how, used
    if how == "reduction":
        arg = rng.choice(values)
        ndim = np.ndim(env[arg])
        axis = rng.choice([None] + list(range(-ndim, ndim)))
        keep = rng.random() < 0.3
        extra = f", axis={axis}" if axis is not None or rng.random() < 0.5 else ""
        extra += ", keepdims=True" if keep else ""
        return f"{target} = np.{name}({arg}{extra})", target, how, used
    return nothing


def _python_scalar_operand(arg, env):
    value = env[arg] if arg in env else eval(arg, {"np": np})
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _operand(rng, values, env):
    r = rng.random()
    if r < 0.1:
        return repr(_python_scalar(rng, rng.choice([np.float64, np.int64, np.bool_])))
    if r < 0.13:
        dt = np.dtype(rng.choice([np.float32, np.float64, np.int32]))
        return f"np.{dt.name}({_python_scalar(rng, dt)!r})"
    # favour recent values so programs are chains and DAGs rather than many leaves
    weights = [1 + i for i in range(len(values))]
    return rng.choices(values, weights)[0]


# ---------------------------------------------------------------------------------------------
# instances

def probe_value(inp):
    return instance_value(inp, [_probe_size(d) for d in range(4)], np.random.default_rng(0),
                          probe=True)


def _float_values(rng, n, dtype):
    dtype = np.dtype(dtype)
    vals = rng.uniform(-4, 4, n)
    mode = rng.integers(0, 4)
    if mode == 1:
        vals = np.round(vals * 2) / 2  # exact halves: ties in rint/floor, exact zeros
    elif mode == 2:
        specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 0.5,
                    float(np.finfo(dtype).max), float(np.finfo(dtype).tiny), 1e-30, 80.0]
        mask = rng.random(n) < 0.3
        vals[mask] = rng.choice(specials, size=int(mask.sum()))
    with np.errstate(all="ignore"):
        return vals.astype(dtype)


def _int_values(rng, n, dtype):
    info = np.iinfo(dtype)
    mode = rng.integers(0, 4)
    if mode == 3:
        specials = [v for v in (0, 1, -1, 2, info.max, info.min, 63, 64, 7, 8)
                    if info.min <= v <= info.max]
        return np.array(specials, dtype)[rng.integers(0, len(specials), n)]
    lo, hi = max(info.min, -6), min(info.max, 6)
    return rng.integers(lo, hi, n, endpoint=True).astype(dtype)


def instance_value(inp, sizes, rng, probe=False):
    """A concrete argument for `inp` with base dimension sizes `sizes`."""
    dtype = np.dtype(inp.dtype)
    if inp.kind == "pyscalar":
        if probe:
            return {"b": True, "i": 2, "f": 1.5}[dtype.kind]
        return _python_scalar(random.Random(int(rng.integers(1 << 30))), dtype)
    shape = tuple(1 if d is None else sizes[d] for d in inp.dims)
    n = int(np.prod(shape, dtype=np.int64))
    if probe:
        flat = np.ones(n, dtype)
    elif dtype.kind == "f":
        flat = _float_values(rng, n, dtype)
    elif dtype.kind == "b":
        flat = rng.random(n) < 0.5
    else:
        flat = _int_values(rng, n, dtype)
    if inp.kind == "npscalar":
        return dtype.type(flat[0] if n else 1)
    return with_layout(flat.reshape(shape), inp.layout)


def with_layout(arr, layout):
    """The same values as `arr` in another memory layout: transposed, strided or reversed."""
    if layout == "T" and arr.ndim >= 2:
        return np.ascontiguousarray(arr.T).T
    if layout == "S" and arr.ndim >= 1:
        big = np.zeros(tuple(2 * s for s in arr.shape), arr.dtype)
        view = big[tuple(slice(None, None, 2) for _ in arr.shape)]
        view[...] = arr
        return view
    if layout == "R" and arr.ndim >= 1:
        return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]
    return arr


def make_instance(prog, rng, large=False):
    """Arguments for one run of `prog`: fresh sizes (0, 1 and small) and values. With `large`
    (for programs whose `large_ok`), the base dimensions span PARALLEL_WORK to 1.5x that many
    elements, so the backend picks parallel loops for every kernel over the full shape (but
    cheap elementwise ones on narrow dtypes, which move too few bytes; the forced-parallel run
    covers those), and reductions run in many chunks."""
    if large:
        sizes = large_sizes(prog.base_rank, rng) + [3] * (4 - prog.base_rank)
    else:
        sizes = [int(rng.choice([0, 1, 2, 3, 3, 4, 5, 5, 6, 7], p=None)) for _ in range(4)]
        if rng.random() < 0.8:
            sizes = [s or 3 for s in sizes]  # empty arrays only sometimes
    return [instance_value(inp, sizes, rng) for inp in prog.inputs]


def example(prog, instance, large_fraction):
    """(large, arguments) of fuzz example `instance` of `prog`: large for that fraction."""
    rng = np.random.default_rng(instance)
    large = prog.large_ok and rng.random() < large_fraction
    return large, make_instance(prog, rng, large=large)


def large_sizes(rank, rng):
    """`rank` dimension sizes whose product is at least PARALLEL_WORK: some dimensions small
    (1 to 7, so rows are short or long), the others sharing the rest, not powers of two."""
    total = int(rng.integers(PARALLEL_WORK, 3 * PARALLEL_WORK // 2))
    small = [int(rng.choice([1, 2, 3, 5, 7])) if rng.random() < 0.4 else None
             for _ in range(rank)]
    if None not in small:
        small[int(rng.integers(rank))] = None
    big = [i for i, x in enumerate(small) if x is None]
    rest = -(-total // int(np.prod([x for x in small if x is not None])))
    each = max(2, int(round(rest ** (1 / len(big)))))
    sizes = [each if x is None else x for x in small]
    sizes[big[-1]] = -(-rest // each ** (len(big) - 1))
    return sizes
