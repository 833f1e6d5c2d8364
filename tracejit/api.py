"""The `trace` decorator: signature cache, tracing, compilation and the eager fallback."""

import atexit
import functools
import inspect
import itertools
import logging
import os
import threading
import warnings
from collections import OrderedDict, namedtuple
from contextlib import contextmanager

import numpy as np

from . import pytree
from .autodiff import check_argnums, strip_stop_gradients, value_and_grad_call
from .backends.base import call_on_device, is_device_array, load_backend, watching_compiles
from .dask import call_on_dask, has_dask_array
from .dispatch import MISS, FastPaths, call_shape, count_of, describe
from .errors import (
    FallbackWarning,
    InternalError,
    ScalarValueNeeded,
    TraceError,
    TracejitError,
    traceback_location,
    user_stacklevel,
    with_location,
)
from .executor import CONTIGUOUS, FORTRAN, SCALAR, CompileCancelled, build
from .kernels import array_layout
from .passes.fusion import schedule
from .passes.simplify import simplify
from .passes.views import fuse_unit_views
from .tracing import Proxy, fn_location, is_array_leaf, leaf_names, trace

CacheInfo = namedtuple("CacheInfo", "hits misses traces kernels_compiled entries fallbacks")

# Signatures kept per traced function; the least recently used is dropped beyond this.
DEFAULT_MAX_CACHE_ENTRIES = 64
# How a new signature's kernels compile (the trace option `compile`; README, "Options").
COMPILE_MODES = ("overlap", "sync", "background")
# With "overlap", a first call whose array arguments hold more than this compiles before it
# runs: NumPy's temporaries in an eager run could need many times the arguments' memory.
OVERLAP_MAX_BYTES = 256 << 20

_disabled = [int(os.environ.get("TRACEJIT_DISABLE", "0") not in ("", "0"))]
_log = logging.getLogger("tracejit")
_disable_lock = threading.Lock()


@contextmanager
def disable():
    """Run every traced function as plain NumPy inside this block, for print() and pdb.

        with tj.disable():
            y = f(x)          # f's own Python code runs; nothing is traced or compiled

    Setting the environment variable TRACEJIT_DISABLE=1 before starting Python does the same
    for the whole process. Compiled code and caches are kept for after the block.
    """
    with _disable_lock:
        _disabled[0] += 1
    try:
        yield
    finally:
        with _disable_lock:
            _disabled[0] -= 1


class _Fallback:
    """Cache entry for a signature that could not be traced: run the function eagerly. `result`
    holds the eager result of the call that found the failure, for that call only."""

    _NONE = object()

    def __init__(self, error, result=_NONE):
        self.error = error
        self._result = result
        self.used = 0  # recency, as on an Executable

    def has_result(self):
        return self._result is not self._NONE

    def take_result(self):
        result, self._result = self._result, self._NONE
        return result


class _Pending:
    """Cache entry for a signature whose kernels compile in a background thread (compile=
    "overlap" or "background"): the call that traced it, and with "background" every call
    until the kernels are ready, runs the plain function. The thread sets `compiles` (and
    `decided`) before it compiles or loads a kernel that is not in memory, stores the
    Executable in `result` or what it raised in `error`, then sets `done` (and `decided`)."""

    def __init__(self):
        self.used = 0
        self.compiles = False
        self.decided = threading.Event()
        self.done = threading.Event()
        self.result = self.error = None

    def will_compile(self):
        self.compiles = True
        self.decided.set()


_compiling = set()  # background compile threads now running
_stopping = threading.Event()  # set at interpreter exit: compile threads stop between kernels


def _stop_compiling():
    """At exit, let background compiles stop after the kernel each is compiling, before Numba
    and the interpreter shut down under them."""
    _stopping.set()
    for thread in list(_compiling):
        thread.join()


def _finish_compiling():
    """Before a fork: let background compiles finish. A child process forked while one runs
    would inherit Numba's compiler lock held by a thread it does not have, and hang at its
    first compile."""
    for thread in list(_compiling):
        thread.join()


os.register_at_fork(before=_finish_compiling)


def _compile_in_background(traced, plan, pending):
    def work():
        try:
            with watching_compiles(pending.will_compile):
                pending.result = traced._build(*plan, cancelled=_stopping.is_set)
        except BaseException as e:  # noqa: B036 (handed to the calling thread)
            pending.error = e
        finally:
            pending.done.set()
            pending.decided.set()
            _compiling.discard(thread)

    if not _compiling and not _stopping.is_set():  # registered after Numba's: runs before them
        atexit.unregister(_stop_compiling)
        atexit.register(_stop_compiling)
    thread = threading.Thread(target=work, name=f"tracejit compile {traced.__name__}",
                              daemon=True)
    _compiling.add(thread)
    thread.start()


def _leaf_key(leaf):
    if type(leaf) is np.ndarray:
        flags = leaf.flags
        return (leaf.shape, leaf.dtype, flags.c_contiguous, flags.f_contiguous)
    if isinstance(leaf, np.generic):
        return (leaf.dtype, "scalar")
    return type(leaf)


def _log_enabled(topic):
    """TRACEJIT_LOG=recompiles (comma-separated topics, or "all") turns on a log topic."""
    topics = {t.strip() for t in os.environ.get("TRACEJIT_LOG", "").split(",")}
    return topic in topics or "all" in topics


def _emit(message):
    if not _log.hasHandlers():  # nobody configured logging: still show what was asked for
        _log.addHandler(logging.StreamHandler())
        _log.setLevel(logging.INFO)
    _log.info(message)


def _describe(leaf, static=False):
    if static and type(leaf) in (bool, int, float):
        return f"{type(leaf).__name__} {leaf!r} (static)"
    if isinstance(leaf, np.ndarray):
        layout = {CONTIGUOUS: "contiguous", FORTRAN: "F-contiguous"}.get(array_layout(leaf),
                                                                         "strided")
        return f"{leaf.dtype}{list(leaf.shape)} {layout}"
    if isinstance(leaf, np.generic):
        return f"{leaf.dtype} scalar"
    return type(leaf).__name__


def _signature_change(old, new):
    """Why a call missed the cache: which arguments differ from the last signature compiled."""
    (old_names, old_descr), (new_names, new_descr) = old, new
    if old_names != new_names:
        return f"arguments {old_names} became {new_names}"
    changes = [f"{name}: {a} -> {b}" for name, a, b in zip(new_names, old_descr, new_descr)
               if a != b]
    return "; ".join(changes) or "same argument types (the entry was evicted or cleared)"


def _overlapping(leaves, writes):
    """True if an argument the function writes into shares memory with another argument
    (eagerly each write would show through the other). A read-only one raises NumPy's error
    before anything is written."""
    for i in writes:
        target = leaves[i]
        if not target.flags.writeable:
            raise with_location(ValueError, "assignment destination is read-only")
        if any(j != i and type(leaf) is np.ndarray and np.may_share_memory(target, leaf)
               for j, leaf in enumerate(leaves)):
            return True
    return False


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def _layout(leaf):
    if isinstance(leaf, (np.generic, bool, int, float)):
        return SCALAR
    return array_layout(leaf)


class TracedFunction:
    """A function compiled by tj.trace: call it as the original function. help(tj.trace) lists
    the options; the methods eager, graph, explain, cache_info and cache_clear inspect it."""

    def __init__(self, fn, fuse=True, fallback="warn", static_argnames=(), backend="cpu",
                 parallel=None, max_cache_entries=DEFAULT_MAX_CACHE_ENTRIES, compile=None):
        if fallback not in ("warn", "raise", "eager"):
            raise ValueError(f"fallback must be 'warn', 'raise' or 'eager', not {fallback!r}")
        compile = compile or os.environ.get("TRACEJIT_COMPILE") or "overlap"
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(map(repr, COMPILE_MODES))} (the "
                             f"option or TRACEJIT_COMPILE), not {compile!r}")
        if not (isinstance(max_cache_entries, int) and max_cache_entries >= 1):
            raise ValueError(f"max_cache_entries must be a positive int, not {max_cache_entries!r}")
        load_backend(backend)  # UnsupportedError now if it is unknown or not installed
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.fuse = fuse
        self.fallback = fallback
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) \
            else tuple(static_argnames)
        self.backend = backend
        self.parallel = parallel
        self.max_cache_entries = max_cache_entries
        self.compile = compile
        # signature -> Executable or _Fallback, oldest first; each entry's `used` stamp (the
        # hit count when it last ran) picks the least recently used to drop
        self._cache = OrderedDict()
        self._lock = threading.RLock()  # held while tracing and compiling: once per signature
        self._stats_lock = threading.Lock()
        self._stats = dict(misses=0, traces=0, kernels_compiled=0, fallbacks=0)
        self._hits = itertools.count()
        self._fast = self._fast_paths()  # generated per argument structure (dispatch.py)
        self._last_signature = None  # for TRACEJIT_LOG=recompiles
        # Python scalar arguments the function uses as Python values: traced by value
        self._value_scalars = set()

    def __new__(cls, *args, **kwargs):
        # a class of its own, whose __call__ FastPaths replaces with the generated fast path of
        # the signature that ran last: a cached call is then one Python frame
        own = type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                          "__qualname__": cls.__qualname__})
        return super().__new__(own)

    def _fast_paths(self):
        cls = type(self)
        # a subclass with a __call__ of its own (SymbolicFunction's takes keywords) keeps it
        installs = cls.__mro__[1].__call__ is TracedFunction.__call__

        def install(run):
            if not installs:
                return
            if run is not None:
                cls.__call__ = run
            elif "__call__" in vars(cls):
                del cls.__call__  # the general path, inherited
        return FastPaths(self._hits, cls._general, _disabled, install)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    # -- calling --------------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        # replaced, in this function's own class, by the fast path of the entry that ran last
        return self._general(args, kwargs)

    def _general(self, args, kwargs):
        if _disabled[0]:
            return self.fn(*args, **kwargs)
        # fast path: arguments shaped and typed as a call compiled before (dispatch.py)
        for run in self._fast.by_shape.get(call_shape(args, kwargs) if kwargs else len(args),
                                           ()):
            result = run(args, kwargs)
            if result is not MISS:
                return result
        leaves, treedef, static = self._flatten(args, kwargs)
        if any(isinstance(leaf, Proxy) for leaf in leaves):
            return self.fn(*args, **kwargs)  # called from inside another trace: inline it
        if has_dask_array(leaves):  # lazy Dask results whose chunks run the fused kernels
            return call_on_dask(self, leaves, treedef)
        if self.backend == "cuda" and any(map(is_device_array, leaves)):
            return call_on_device(self, leaves, treedef)  # device arrays in, device arrays out
        key = self._key(leaves, treedef, static)
        entry, live = self._entry(key, leaves, treedef, static, (args, kwargs),
                                  wait=self.compile != "background")
        if entry.__class__ is _Pending:  # compiling in the background: NumPy's own result
            return self.fn(*args, **kwargs)
        if isinstance(entry, _Fallback):
            self._count("fallbacks")
            return entry.take_result() if entry.has_result() else self.fn(*args, **kwargs)
        if entry.writes and _overlapping(leaves, entry.writes):
            warnings.warn(f"tracejit: {self.__name__} runs eagerly for this call: it writes into "
                          "an argument that shares memory with another one",
                          FallbackWarning, stacklevel=user_stacklevel())
            self._count("fallbacks")
            return self.fn(*args, **kwargs)
        # the next call like this one takes the fast path; static again: tracing may have
        # found a scalar used as a Python value
        description = describe(treedef, leaves, self._static(leaves, treedef))
        if description is not None:
            self._fast.register(args, kwargs, description, entry)
        return entry.run(*leaves, *live)

    def _entry(self, key, leaves, treedef, static, call=None, wait=True):
        """The cache entry for key, traced and compiled when missing or when the state it
        captured changed; with the captured arrays to pass to it. An entry still compiling in
        the background (a _Pending) is returned as it is to the call that traced it, and with
        wait=False to every call."""
        entry = self._cache.get(key)
        stale = None
        while True:
            traced_here = entry is None or entry is stale
            if traced_here:
                try:
                    entry = self._miss(key, leaves, treedef, static, call, stale)
                except ScalarValueNeeded as e:
                    self._trace_by_value(treedef, e)
                    static = self._static(leaves, treedef)
                    key = self._key(leaves, treedef, static)
                    entry, stale = self._cache.get(key), None
                    continue
            elif entry is not stale:
                self._hit(entry)
            if entry.__class__ is _Pending:
                if not entry.done.is_set() and (traced_here or not wait):
                    return entry, ()
                entry.done.wait()
                entry = self._settle(key, entry, call)
                self._hit(entry)
            if isinstance(entry, _Fallback) or entry.guard is None:
                return entry, ()
            live = entry.guard.live()
            if live is not None:
                return entry, live
            stale = entry

    def _count(self, stat, n=1):
        with self._stats_lock:
            self._stats[stat] += n

    def _hit(self, entry):
        # no lock on the hot path: next() on a count is atomic
        if entry.__class__ is not _Pending:  # its calls run eagerly: not hits
            entry.used = next(self._hits) + 1  # the hit count, and recency for the LRU

    def _hit_count(self):
        return count_of(self._hits)

    def _flatten(self, args, kwargs):
        leaves, treedef = pytree.flatten((args, kwargs))
        # kernels read native byte order: a big-endian array is converted once, on entry
        leaves = [leaf.astype(leaf.dtype.newbyteorder("=")) if type(leaf) is np.ndarray
                  and not leaf.dtype.isnative else leaf for leaf in leaves]
        return leaves, treedef, self._static(leaves, treedef)

    def _static(self, leaves, treedef):
        return tuple(not is_array_leaf(leaf) or param in self.static_argnames
                     or name in self._value_scalars
                     for leaf, (name, param) in zip(leaves, leaf_names(self.fn, treedef)))

    def _names(self, treedef):
        return [name for name, _ in leaf_names(self.fn, treedef)]

    def _key(self, leaves, treedef, static):
        if treedef.kind == "tuple" and not treedef.children[1].children and \
                all(c.kind == "leaf" for c in treedef.children[0].children) and not any(static):
            return tuple(_leaf_key(x) for x in leaves)  # positional leaves only: a short key
        parts = []
        for leaf, is_static in zip(leaves, static):
            if is_static:
                try:
                    hash(leaf)
                except TypeError:
                    raise with_location(TraceError, f"static argument {leaf!r} is not "
                                        "hashable") from None
                parts.append(("static", type(leaf), leaf))
            else:
                parts.append(_leaf_key(leaf))
        return (treedef, tuple(parts))

    def _miss(self, key, leaves, treedef, static, call=None, stale=None):
        """Trace and compile for a new signature (or for one whose captured state changed:
        `stale` is its old entry). `call` (args, kwargs) lets a failure that is not tracejit's
        own be checked against an eager run of the same call."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry is not stale:  # another thread compiled it
                self._hit(entry)
                return entry
            self._count("misses")
            self._check_arity(treedef)
            if stale is not None and _log_enabled("recompiles"):
                _emit(f"tracejit: recompiling {self.__name__} because "
                      f"{stale.guard.why_stale()}")
            else:
                self._log_miss(leaves, treedef, static)
            try:
                plan = self._plan(leaves, treedef, static)
                if call is not None and self._compiles_behind(leaves):
                    entry = _Pending()
                    _compile_in_background(self, plan, entry)
                    entry.decided.wait()  # milliseconds: until a kernel is not in memory
                    if not entry.compiles:  # every kernel was: the compiled code serves it
                        if entry.error is not None:
                            raise entry.error
                        entry = entry.result
                else:
                    entry = self._build(*plan)
            except ScalarValueNeeded:
                raise  # traced again by value (_entry)
            except Exception as e:
                entry = self._failed(e, call)
            entry.used = self._hit_count()  # newer than every entry hit so far
            with self._stats_lock:
                self._cache.pop(key, None)  # a stale entry's key: now the newest
                self._cache[key] = entry
                self._fast.stamp()  # the entry the fast path serves was used last
                while len(self._cache) > self.max_cache_entries:
                    # least recently used; of equals, the oldest
                    victim = min(self._cache, key=lambda k: self._cache[k].used)
                    self._fast.forget(self._cache.pop(victim))
            if stale is not None:
                self._fast.forget(stale)
            return entry

    def _compiles_behind(self, leaves):
        """Whether a first call with these leaves runs eagerly while its kernels compile."""
        if self.backend != "cpu" or self.compile == "sync":
            return False
        return self.compile == "background" or sum(
            x.nbytes for x in leaves if isinstance(x, np.ndarray)) <= OVERLAP_MAX_BYTES

    def _failed(self, error, call):
        """The entry for a signature whose tracing or compiling raised `error`: a _Fallback,
        or `error` raised again when it is the user's to see."""
        if isinstance(error, TraceError):
            return self._fall_back(error)
        if isinstance(error, (TracejitError, Warning)):
            raise error  # the user's bug (operands that do not broadcast), or a warning as error
        if getattr(error, "location", None):
            raise error  # an error NumPy raises too, already naming the user's line
        return self._internal_failure(error, call)

    def _settle(self, key, pending, call):
        """The entry a finished background compile leaves: its Executable, or what a failed
        compile gives synchronously (a fallback with its warning, or the error raised here,
        in the calling thread)."""
        with self._lock:
            try:
                if pending.error is None:
                    entry = pending.result
                else:
                    if isinstance(pending.error, CompileCancelled):
                        raise InternalError("tracejit stopped compiling at interpreter exit")
                    entry = self._failed(pending.error, call)
            except BaseException:
                with self._stats_lock:
                    if self._cache.get(key) is pending:  # the next call traces again
                        del self._cache[key]
                raise
            entry.used = pending.used
            with self._stats_lock:
                if self._cache.get(key) is pending:
                    self._cache[key] = entry
            return entry

    def _trace_by_value(self, treedef, needed):
        """Python scalar arguments used as Python values become static: keyed by value."""
        names = [name for i, (name, _) in enumerate(leaf_names(self.fn, treedef))
                 if i in needed.leaves]
        if not names or set(names) <= self._value_scalars:
            raise TraceError(str(needed)) from None  # cannot happen twice; never loop
        self._value_scalars.update(names)
        self._fast = self._fast_paths()  # which leaves are keyed by value changed
        if _log_enabled("recompiles"):
            _emit(f"tracejit: {self.__name__} uses {', '.join(names)} as a Python value, so it "
                  f"is static from now on (each new value traces again): {needed}")

    def _fall_back(self, error, result=_Fallback._NONE):
        if self.fallback == "raise":
            raise error
        if self.fallback == "warn":
            warnings.warn(f"tracejit: {self.__name__} runs eagerly for this signature: {error}",
                          FallbackWarning, stacklevel=user_stacklevel())
        return _Fallback(error, result)

    def _internal_failure(self, cause, call):
        """An exception tracejit did not raise on purpose, while tracing or compiling. If the
        function raises eagerly too, that is the user's exception; otherwise tracejit failed."""
        result = _Fallback._NONE
        if call is not None:
            args, kwargs = call
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FallbackWarning)  # nested traced functions
                result = self.fn(*args, **kwargs)  # raises what eager NumPy raises
        loc = traceback_location(cause.__traceback__) or fn_location(self.fn)
        error = with_location(
            InternalError, f"tracejit failed internally on this code ({type(cause).__name__}: "
            f"{_first_line(cause)}); eager NumPy runs it. Please report this with the "
            "function and its argument types", loc)
        error.__cause__ = cause
        return self._fall_back(error, result)

    def _check_arity(self, treedef):
        """Wrong numbers of arguments fail here with the caller's line, not inside the trace."""
        sig = self._signature()
        if sig is None:
            return
        args, kwargs = pytree.unflatten(treedef, [None] * pytree.num_leaves(treedef))
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise with_location(TypeError, f"{self.__name__}(): {e}") from None

    @functools.cache  # noqa: B019 (one entry per TracedFunction, which lives as long)
    def _signature(self):
        try:
            return inspect.signature(self.fn)
        except (TypeError, ValueError):
            return None

    def _log_miss(self, leaves, treedef, static):
        if not _log_enabled("recompiles"):
            return
        signature = (self._names(treedef), [_describe(leaf, s) for leaf, s in zip(leaves, static)])
        if self._last_signature is None:
            _emit(f"tracejit: compiling {self.__name__} for "
                  f"{', '.join(f'{n}: {d}' for n, d in zip(*signature))}")
        else:
            _emit(f"tracejit: recompiling {self.__name__} because "
                  f"{_signature_change(self._last_signature, signature)}")
        self._last_signature = signature

    def _trace(self, leaves, treedef, static):
        self._count("traces")
        names = self._names(treedef)
        graph = trace(self.fn, leaves, treedef, names, static)
        graph.name = self.__name__
        graph.meta["num_leaves"] = len(leaves) + len(graph.meta["captured"])
        return graph

    def _plan(self, leaves, treedef, static):
        """Trace and schedule: (graph, steps, input layouts), what _build compiles."""
        graph = simplify(strip_stop_gradients(self._trace(leaves, treedef, static)))
        if self.fuse:  # CSE again: the rewrite may rebuild a value the graph already has
            graph = simplify(fuse_unit_views(graph))
        steps = schedule(graph, self.fuse)
        values = leaves + graph.meta["captured"]
        return graph, steps, [_layout(values[n.attrs["index"]]) for n in graph.inputs]

    def _build(self, graph, steps, layouts, cancelled=None):
        exe = build(graph, steps, layouts, self.parallel, self.backend, cancelled)
        exe.guard = graph.meta["guard"]  # captured state, checked before each call
        exe.writes = graph.meta["writes"]  # arguments written back into
        self._count("kernels_compiled", exe.kernels_compiled)
        return exe

    def _executable(self, args, kwargs):
        leaves, treedef, static = self._flatten(args, kwargs)
        key = self._key(leaves, treedef, static)
        entry = self._entry(key, leaves, treedef, static)[0]
        if isinstance(entry, _Fallback):
            raise entry.error
        return entry

    # -- inspection ----------------------------------------------------------------------------

    def eager(self, *args, **kwargs):
        """Run the undecorated function as plain NumPy (for print debugging and pdb):
        `f.eager(x)` is what `f(x)` computes, without tracing or compiling."""
        return self.fn(*args, **kwargs)

    def graph(self, *args, **kwargs):
        """The Graph compiled for these arguments' signature (after simplification), tracing
        and compiling first if this signature is new. `print(f.graph(x))` shows one line per
        op with the file:line that made it; in Jupyter the graph is drawn, each fused kernel a
        box. Raises the fallback's error if this signature could not be traced."""
        return self._executable(args, kwargs).graph

    def explain(self, *args, **kwargs):
        """What runs for these arguments: an Explain report. `print(f.explain(x))` shows the
        graph, each kernel with the ops it fuses and the Python source Numba compiles, the
        memory plan and the cache state; in Jupyter it is drawn. Its attributes: `kernels`
        (each with `.ops` and `.source`), `memory` (`naive_bytes`: one new array per op as
        eager NumPy allocates, `planned_bytes`, `buffers`), `graph`."""
        from .explain import Explain
        return Explain(self._executable(args, kwargs), self.cache_info())

    def symbolic(self, *args, **kwargs):
        """The program traced for these arguments' signature as symbols (tracejit.Variable
        named after each array argument, shaped and typed as it), with the structure of the
        function's results; arrays it reads from globals or closures become constants."""
        from .symbolic import symbols_of
        return symbols_of(self._program(args, kwargs))

    def save(self, path, *args, **kwargs):
        """Save the program traced for these arguments as `path`.json and `path`.npz (load it
        with tracejit.load)."""
        from .serialize import save_graph
        save_graph(path, self._program(args, kwargs))

    def _program(self, args, kwargs):
        """The traced graph, not simplified, as a standalone program (symbolic.standalone)."""
        from .symbolic import standalone
        leaves, treedef, static = self._flatten(args, kwargs)
        self._check_arity(treedef)
        try:
            graph = trace(self.fn, leaves, treedef, self._names(treedef), static)
        except ScalarValueNeeded as e:  # a scalar used as a Python value: traced by value
            self._trace_by_value(treedef, e)
            static = self._static(leaves, treedef)
            graph = trace(self.fn, leaves, treedef, self._names(treedef), static)
        graph.name = self.__name__
        return standalone(graph)

    def cache_info(self):
        """CacheInfo(hits, misses, traces, kernels_compiled, entries, fallbacks): calls served
        by compiled code, calls that had to trace and compile, traces made, kernels Numba
        compiled for this function, signatures cached now, and calls that ran eagerly."""
        with self._stats_lock:  # one consistent snapshot, even while other threads call
            return CacheInfo(hits=self._hit_count(), entries=len(self._cache), **self._stats)

    def cache_clear(self):
        """Forget every compiled signature and zero the counters; the next call traces again.
        Compiled kernels stay in the process-wide kernel cache, so it recompiles nothing."""
        with self._lock, self._stats_lock:
            self._cache.clear()
            self._last_signature = None
            for k in self._stats:
                self._stats[k] = 0
            self._hits = itertools.count()
            self._fast = self._fast_paths()

    def __repr__(self):
        return f"<traced function {self.__name__}>"


def trace_decorator(fn=None, **options):
    """Compile a NumPy function: traced once per input signature, fused, run as Numba kernels.

        @tj.trace
        def f(a, b):
            return np.exp(-a * b) + 1

        @tj.trace(fuse=False, fallback="raise", static_argnames="mode")
        def g(x, mode):
            return np.tanh(x) if mode == "tanh" else np.maximum(x, 0)

    The first call with a new signature (each array argument's shape, dtype and memory layout,
    each Python scalar's type) runs the function once on placeholders that record a graph,
    which is simplified, fused, memory-planned and compiled; later calls with that signature
    run the compiled code. Results are NumPy's: the same types, dtypes, shapes and values.

    Options:
      fuse: True (default) fuses elementwise ops, reductions and row-wise patterns (softmax)
        into as few kernels as it can; False runs one kernel per op, the unfused baseline.
      fallback: what happens when the function cannot be traced or compiled (a Python `if` on
        an array's value, an unsupported NumPy function). "warn" (default) runs it as plain
        NumPy for that signature and warns once with tj.FallbackWarning naming the line;
        "raise" raises the error (a tj.TracejitError); "eager" runs NumPy silently.
      static_argnames: argument names (a string or a tuple) whose values, not just types,
        select the compiled code, for Python control flow on them. Strings, None and other
        non-array arguments are static anyway, and so is a Python number the function uses
        as a Python value (`range(n)`, `if k > 0`).
      backend: "cpu" (default) compiles kernels with numba.njit; "cuda" with numba.cuda.
      parallel: None (default) runs kernels over large arrays on all cores (Numba's prange);
        True or False forces it on or off.
      max_cache_entries: signatures kept per function (default 64), least recently used
        dropped first.
      compile: how a new signature's kernels compile (TRACEJIT_COMPILE sets the default).
        "overlap" (default): its first call traces, then runs the plain function (NumPy's
        results, no warning) while the kernels compile in a background thread; the next call
        waits for them. "sync": the first call compiles and returns compiled results.
        "background": like "overlap", but every call runs the plain function until the
        kernels are ready. When every kernel is already in memory (a new shape), the first
        call runs them in every mode. A failed background compile warns or raises on the next
        call, as a synchronous one does.

    The result is a TracedFunction. Besides calling it: `f.eager(...)` runs the plain function,
    `f.graph(...)` and `f.explain(...)` show what was compiled for these arguments,
    `f.cache_info()` counts hits, traces and compiled kernels, `f.cache_clear()` empties the
    cache. TRACEJIT_DISABLE=1 (or `with tj.disable():`) runs traced functions eagerly;
    TRACEJIT_LOG=recompiles logs why a call compiled again.
    """
    if fn is None:
        return lambda f: TracedFunction(f, **options)
    return TracedFunction(fn, **options)


def _transformed(kind, fn, argnums, make):
    """The traced function for (kind, fn, argnums), made once and kept on fn: calling
    tj.grad(loss)(...) in a loop traces once, like reusing one tj.grad(loss)."""
    check_argnums(argnums)
    key = (kind, argnums)
    try:
        attrs = fn.__dict__
    except AttributeError:  # no attributes on this callable: nothing to keep
        return make()
    with _transform_lock:
        cache = attrs.get("_tracejit_transforms")
        if cache is None or cache.get("owner") is not fn:  # functools.wraps copies attributes
            cache = attrs["_tracejit_transforms"] = {"owner": fn}
        if key not in cache:
            cache[key] = make()
        return cache[key]


_transform_lock = threading.Lock()


def value_and_grad(fn, argnums=0):
    """A traced function returning (fn(*args), gradient of fn with respect to args[argnums]).

        def loss(w, x, y):
            return np.mean((x @ w - y) ** 2)

        value, dw = tj.value_and_grad(loss)(w, x, y)
        value, (dw, dx) = tj.value_and_grad(loss, argnums=(0, 1))(w, x, y)

        params = {"w": w, "b": b}          # containers work: grads has the same keys
        value, grads = tj.value_and_grad(lambda p, x: np.sum(x @ p["w"] + p["b"]))(params, x)

    fn must return one float scalar. argnums is an int or a tuple of ints; each gradient has the
    structure of its argument (an array, or a list/tuple/dict of arrays), and with a tuple the
    gradients come as a tuple. The forward and backward passes compile together, once per
    signature, and the result can be differentiated again. Integer and boolean arguments have no
    gradient (TraceError); see tj.stop_gradient and tj.no_grad for constants.
    """
    def make():
        @functools.wraps(fn)
        def value_and_grad_fn(*args, **kwargs):
            return value_and_grad_call(fn, argnums, args, kwargs)

        value_and_grad_fn.__name__ = f"value_and_grad_{getattr(fn, '__name__', 'f')}"
        return TracedFunction(value_and_grad_fn, fallback="raise")

    return _transformed("value_and_grad", fn, argnums, make)


def grad(fn, argnums=0):
    """A traced function returning the gradient of fn, which returns one float scalar, with
    respect to args[argnums] (an int, or a tuple of ints: then a tuple of gradients).

        dw = tj.grad(lambda w, x: np.sum(np.tanh(x @ w)))(w, x)   # dw.shape == w.shape
        d2 = tj.grad(tj.grad(lambda t: np.sin(t) * t))(1.0)       # derivatives of derivatives

    Each gradient has its argument's structure, shape and dtype; see tj.value_and_grad for the
    value too, and tj.stop_gradient / tj.no_grad for values treated as constants."""
    def make():
        @functools.wraps(fn)
        def grad_fn(*args, **kwargs):
            return value_and_grad_call(fn, argnums, args, kwargs)[1]

        grad_fn.__name__ = f"grad_{getattr(fn, '__name__', 'f')}"
        return TracedFunction(grad_fn, fallback="raise")

    return _transformed("grad", fn, argnums, make)


__all__ = ["trace_decorator", "TracedFunction", "CacheInfo", "disable",
           "grad", "value_and_grad"]
