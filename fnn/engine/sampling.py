"""Sampling a continuation from a network over token ids: one compiled ``lax.scan``.

The context is a fixed buffer of T = ``net.input_shape[0]`` ids holding the last (up to T) ids,
left-aligned, with n of them valid. Each of the N steps runs the network on the whole buffer
(evaluation mode) and reads the logits at position n − 1; a causal network's outputs there
depend only on positions < n, so the unused tail is harmless and the result is what cropping
the context to its last T ids (nanoGPT's ``idx[:, -block_size:]``) gives::

    z = Z(L)[n − 1] / temperature;  z_v = −∞ where z_v < (k-th largest z)   (top-k, k > 0)
    id ~ softmax(z)            (temperature 0: id = argmax z, greedy)
    buffer ← buffer with id written at n (n < T), or shifted left by one with id last (n = T)

The shapes never change, so the whole continuation is one program (no Python loop per token);
the step keys are ``split(key, N)``, so the same key gives the same ids. No KV cache: each step
recomputes the buffer's T positions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def check_options(net, *, tokens, temperature, top_k) -> None:
    """One-line ValueErrors for sampling options that do not fit ``net``."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or \
            not 1 <= tokens <= 1_000_000:
        raise ValueError(f"--tokens: {tokens!r}; expected an integer in [1, 1000000]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"--temperature: {temperature!r}; expected a finite number >= 0"
                         " (0: greedy)")
    vocab = int(net.output_shape[-1])
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or \
            not 0 <= top_k <= vocab:
        raise ValueError(f"--top-k: {top_k!r}; expected an integer in [0, {vocab}] (0: all"
                         f" {vocab} ids)")
    if len(net.input_shape) != 1 or not net.integer_inputs:
        raise ValueError(f"network: {net.describe()}; sampling needs a network over token ids"
                         " (T,) (an Embedding first)")


@functools.partial(jax.jit, static_argnames=("net", "tokens", "top_k", "greedy"))
def _sample(net, params, state, buffer, n, key, temperature, *, tokens: int, top_k: int,
            greedy: bool):
    t = buffer.shape[0]

    def step(carry, k):
        buf, valid = carry
        _, caches, _ = net.forward_state(params, state, buf[None, :], training=False)
        z = net.output_logits(caches)[0, valid - 1]
        if greedy:
            tok = jnp.argmax(z).astype(jnp.int32)
        else:
            z = z / temperature.astype(z.dtype)
            if top_k:
                kth = jax.lax.top_k(z, top_k)[0][-1]
                z = jnp.where(z < kth, -jnp.inf, z)
            tok = jax.random.categorical(k, z).astype(jnp.int32)
        placed = buf.at[jnp.minimum(valid, t - 1)].set(tok)
        shifted = jnp.roll(buf, -1).at[t - 1].set(tok)
        buf = jnp.where(valid < t, placed, shifted)
        return (buf, jnp.minimum(valid + 1, t)), tok

    keys = jax.random.split(key, tokens)
    _, out = jax.lax.scan(step, (buffer, jnp.asarray(n, jnp.int32)), keys)
    return out


def sample(net, params, context, *, tokens: int, key: Array, temperature: float = 1.0,
           top_k: int = 0, state=None) -> np.ndarray:
    """Continue ``context`` by ``tokens`` ids sampled from the network (module docstring).

    Args:
      net: a :class:`~fnn.nn.protocol.Network` over token ids, input shape (T,), outputs
        (T, V) (e.g. a GPT or an LSTM language model).
      params: its parameters.  state: its state (None: ``net.init_state()``).
      context: int ids (n0,), n0 ≥ 1; only the last T are kept.
      tokens: N, the ids to sample.  key: PRNG key.
      temperature: logits are divided by it; 0 is greedy (argmax).
      top_k: sample among the k most likely ids only (0: all).
    Returns:
      int32 (N,) NumPy array of the sampled ids (the context not included).
    Raises:
      ValueError: bad options or an empty context (one line).
    """
    check_options(net, tokens=tokens, temperature=temperature, top_k=top_k)
    ctx = np.asarray(context, np.int32).reshape(-1)
    if ctx.size == 0:
        raise ValueError("context: empty; expected at least one token id")
    t = int(net.input_shape[0])
    ctx = ctx[-t:]
    buffer = np.zeros((t,), np.int32)
    buffer[:ctx.size] = ctx
    state = net.init_state() if state is None else state
    out = _sample(net, params, state, jnp.asarray(buffer), ctx.size, key,
                  jnp.asarray(temperature or 1.0, jnp.float32), tokens=int(tokens),
                  top_k=int(top_k), greedy=temperature == 0)
    return np.asarray(out)
