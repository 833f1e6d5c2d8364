"""A training step in one traced call: the loss and its gradient (value_and_grad) and an
in-place optimiser update of a pytree of parameters. Checked against the same step run
eagerly, step by step, and trained to a known loss."""

import numpy as np
import pytest

import tracejit as tj


def mlp_loss(params, x, labels):
    h = np.maximum(x @ params["W1"] + params["b1"], 0.0)
    logits = h @ params["W2"] + params["b2"]
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


def sgd_momentum_step(params, velocity, x, labels, lr=0.2, mu=0.9):
    loss, grads = tj.value_and_grad(mlp_loss)(params, x, labels)
    for k in params:
        velocity[k] *= mu
        velocity[k] -= lr * grads[k]
        params[k] += velocity[k]
    return loss


def adam_step(params, m, v, t, x, labels, lr=0.02, b1=0.9, b2=0.999, eps=1e-8):
    loss, grads = tj.value_and_grad(mlp_loss)(params, x, labels)
    for k in params:
        m[k] *= b1
        m[k] += (1 - b1) * grads[k]
        v[k] *= b2
        v[k] += (1 - b2) * grads[k] ** 2
        m_hat = m[k] / (1 - b1 ** t)
        v_hat = v[k] / (1 - b2 ** t)
        params[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return loss


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] + x[:, 2] > 0.5)  # 3 classes
    params = {"W1": (rng.standard_normal((10, 32)) * 0.3).astype(np.float32),
              "b1": np.zeros(32, np.float32),
              "W2": (rng.standard_normal((32, 3)) * 0.3).astype(np.float32),
              "b2": np.zeros(3, np.float32)}
    return x, labels, params


def _copy(tree):
    return {k: v.copy() for k, v in tree.items()}


def _assert_close(got, want):
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        np.testing.assert_allclose(got[k], want[k], rtol=2e-4, atol=2e-5, err_msg=k)


@pytest.mark.parametrize("optimiser", ["sgd-momentum", "adam"])
def test_a_training_step_in_one_call_trains_as_eager_numpy(optimiser):
    x, labels, params = _problem()
    state = [{k: np.zeros_like(p) for k, p in params.items()}
             for _ in range(1 if optimiser == "sgd-momentum" else 2)]
    eager_params, eager_state = _copy(params), [_copy(s) for s in state]
    step_fn = sgd_momentum_step if optimiser == "sgd-momentum" else adam_step
    step = tj.trace(step_fn, fallback="raise")
    arrays = {k: p for k, p in params.items()}  # the caller's arrays, updated in place
    losses = []
    for t in range(1, 61):
        extra = () if optimiser == "sgd-momentum" else (t,)
        loss = step(params, *state, *extra, x, labels)
        eager_loss = step_fn(eager_params, *eager_state, *extra, x, labels)
        assert isinstance(loss, np.float32)
        np.testing.assert_allclose(loss, eager_loss, rtol=1e-4, atol=1e-6)
        losses.append(float(loss))
    _assert_close(params, eager_params)
    for s, e in zip(state, eager_state):
        _assert_close(s, e)
    assert all(params[k] is arrays[k] for k in params)
    assert losses[0] > 1.0 and losses[-1] < 0.1  # trained: 3 classes start near log(3)
    info = step.cache_info()
    assert info.traces == 1 and info.fallbacks == 0


def test_weights_are_updated_in_the_callers_arrays_without_a_copy():
    x, labels, params = _problem()
    velocity = {k: np.zeros_like(p) for k, p in params.items()}
    step = tj.trace(sgd_momentum_step, fallback="raise")
    writes = str(step.explain(params, velocity, x, labels)).split("-- writes:")[1]
    for name in ("params_W1", "params_W2", "velocity_W1", "velocity_W2"):
        assert f"argument {name} written: holds the result, no copy" in writes
