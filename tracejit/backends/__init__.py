"""Backends: turn scheduled kernels into callables and run a plan."""
