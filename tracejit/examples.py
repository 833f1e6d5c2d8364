"""Sample NumPy functions for the demo, the notebooks and `python -m tracejit explain`.

They are ordinary user code, not part of the compiler: graphs and error messages name their
lines (`examples.py:17`) as they would name a user's own file. Try, for example,
`python -m tracejit explain tracejit.examples:softmax --args "f32[4096,1024]"`.
"""

import numpy as np


def chain(a, b, c):
    """Thirteen elementwise ops: eager NumPy makes a temporary array for each."""
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


def softmax(x):
    """Softmax over the last axis: a reduction broadcast back over each row."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layers(x, n=8):
    """n elementwise layers in a row; every intermediate dies at the next one."""
    for _ in range(n):
        x = np.tanh(x * 1.5 + 0.1)
    return x


def mlp(params, x):
    """A ReLU network: `params` is a list of (weight, bias) pairs."""
    for w, b in params[:-1]:
        x = np.maximum(x @ w + b, 0)
    w, b = params[-1]
    return x @ w + b
