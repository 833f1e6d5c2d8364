"""The on-disk kernel cache: a new process calling a function it has run before loads its
compiled kernels instead of compiling them again.

Numba's own cache does the work (it serialises the compiled object code, and its index keys
each entry by signature, target triple, CPU name and CPU features); this module only tells it
where kernels live and when they are stale. A kernel's entry is named and stamped by a content
hash: its generated source, whether it runs in parallel, the source of the helper modules
kernels call into (scalar helpers, vector math), and the Python, NumPy, Numba and llvmlite
versions. Never by a timestamp, so the same kernel finds its entry from any process and any
checkout. Files are written to a temporary name and renamed into place (Numba's atomic write),
so concurrent processes never read a half-written entry; an entry that cannot be read (corrupt,
truncated, from another Numba) is compiled again and overwritten.

The helper functions kernels call into (vector math, scalar helpers) are cached the same way,
in the folder's `library/`: a new kernel links their compiled code (Numba keeps its bitcode, so
LLVM still inlines and vectorises it) instead of typing and lowering them again, which was most
of a new kernel's compile time.

The folder is `TRACEJIT_CACHE_DIR` if set (empty or "0": no disk cache), else
`$XDG_CACHE_HOME/tracejit` (default `~/.cache/tracejit`).
"""

import contextlib
import hashlib
import os
import platform
import sys
from pathlib import Path

import llvmlite
import numba
import numpy as np
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.registry import CPUDispatcher
from numba.core.runtime.nrt import rtsys

from . import scalar_helpers, vecmath


def cache_dir():
    """The folder kernels are cached in, or None when the disk cache is off."""
    configured = os.environ.get("TRACEJIT_CACHE_DIR")
    if configured is not None:
        return None if configured.strip() in ("", "0") else Path(configured).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no home directory: no disk cache
        return None
    return Path(base) / "tracejit"


# the helper modules kernels call into: part of every kernel's key, and cached in library/
_LIBRARY = {m.__name__: m for m in (scalar_helpers, vecmath)}


def _environment_digest():
    """What a compiled kernel depends on besides its own source (CPU features are in Numba's
    index key)."""
    h = hashlib.sha256()
    for part in (sys.version, platform.machine(), np.__version__, numba.__version__,
                 llvmlite.__version__):
        h.update(part.encode() + b"\0")
    for module in _LIBRARY.values():
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


_ENVIRONMENT = _environment_digest()


def kernel_key(source, parallel):
    """The content hash naming a kernel's cache entry."""
    h = hashlib.sha256(_ENVIRONMENT.encode())
    h.update(f"parallel={bool(parallel)}\0".encode())
    h.update(source.encode())
    return h.hexdigest()


class _KernelLocator(_CacheLocator):
    """Places a kernel's entry in the cache folder, stamped by its content hash."""

    def __init__(self, key, folder):
        self._key = key
        self._folder = folder

    @classmethod
    def from_function(cls, py_func, py_file):
        key = getattr(py_func, "__tracejit_cache_key__", None)
        folder = cache_dir()
        if key is None or folder is None:
            return None
        return cls(key, folder / "library" if py_func.__module__ in _LIBRARY else folder)

    def get_cache_path(self):
        return str(self._folder / self._key[:2])

    def get_source_stamp(self):
        return self._key

    def get_disambiguator(self):
        return self._key[:32]


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_KernelLocator]


class _KernelCache(FunctionCache):
    _impl_class = _KernelCacheImpl

    def load_overload(self, sig, target_context):
        # Numba's load_overload first refreshes the target context: it installs every typing
        # and lowering registry, importing numba.np's modules and SciPy's BLAS (a second or
        # more). Rebuilding compiled code needs none of that, so a warm process skips it.
        rtsys.initialize(target_context)  # the part of refresh() loaded code needs
        try:
            return self._load_overload(sig, target_context)
        except Exception:  # corrupt or unreadable: drop the index, compile, save a new entry
            with contextlib.suppress(OSError):
                os.unlink(self._cache_file._index_path)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:  # a read-only or full disk: the kernel still runs, uncached
            pass


def attach(dispatcher, source, parallel):
    """Give a kernel's Numba dispatcher the disk cache (when one is configured)."""
    if cache_dir() is None:
        return dispatcher
    dispatcher.py_func.__tracejit_cache_key__ = kernel_key(source, parallel)
    # Numba re-creates a loaded kernel's environment by importing its globals' module: an
    # importable name (generated kernels run in a namespace of their own, named by nothing)
    dispatcher.py_func.__globals__.setdefault("__name__", __name__)
    try:
        dispatcher._cache = _KernelCache(dispatcher.py_func)
    except RuntimeError:  # no usable folder: run uncached
        pass
    return dispatcher


_library_attached = [False]


def attach_library():
    """Give every Numba function of the helper modules the disk cache, once per process (when
    one is configured)."""
    if _library_attached[0] or cache_dir() is None:
        return
    _library_attached[0] = True
    for name, module in _LIBRARY.items():
        for attr, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name:
                obj.py_func.__tracejit_cache_key__ = kernel_key(f"{name}.{attr}", False)
                try:
                    obj._cache = _KernelCache(obj.py_func)
                except RuntimeError:  # no usable folder: compiled in each process
                    pass


def loaded(dispatcher, sig):
    """True if the dispatcher's code for sig came from the disk instead of being compiled."""
    return dispatcher.stats.cache_hits.get(tuple(sig), 0) > 0
