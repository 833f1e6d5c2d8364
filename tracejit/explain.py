"""The Explain report: what runs for one signature, readable as text."""

from .passes.fusion import describe


class Explain:
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
        lines += ["", "-- run:", self.executable.source.rstrip(), "", str(self.cache_info)]
        return "\n".join(lines)

    __repr__ = __str__
