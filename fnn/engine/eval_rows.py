"""Rows per evaluation call, from the network's activations, so that evaluation temporaries stay
below the training step's.

    rows = clamp(EVAL_CHUNK_BYTES / (A × b), 1, cap)

with A the values each example's forward pass produces (every layer's output) and b the bytes
per value. XLA's temporaries of one evaluation grow with its rows: on configs/fashion_cnn.toml
the 3,000 validation images evaluated at once inside the scanned run took 1.29 GB of the
program's 1.29 GB of temporaries (conv2's im2col patches, 14·14·288 values per image), and
2,048-row test chunks 882 MB, against ~88 MB for the training step itself. At ~32 MB of layer
outputs per call (~156 rows for that CNN) evaluation stays below the step; an MLP keeps its cap.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from fnn.nn.adapter import input_dtype

EVAL_CHUNK_BYTES = 32 << 20


def activations_per_example(net) -> int:
    """Values one example's forward pass produces: every layer's output (the ``a`` of
    ``net.layer_views``; a network without layers to show: its output), from shapes alone.

    Args: net: a :class:`~fnn.nn.protocol.Network`. Returns: the count per example.
    """
    params = jax.eval_shape(net.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, *net.input_shape), input_dtype(net))

    def outputs(p, xx):
        y, caches, _ = net.forward_state(p, net.init_state(), xx, training=False)
        return [v.a for v in net.layer_views(caches)] or [y]

    return int(sum(math.prod(a.shape) for a in jax.eval_shape(outputs, params, x)))


def eval_chunk(net, *, cap: int = 2048) -> int:
    """Rows per compiled evaluation or prediction call (the formula above).

    Args:
      net: a :class:`~fnn.nn.protocol.Network`.  cap: the most rows.
    Returns:
      the rows per call, between 1 and ``max(cap, 1)``.
    """
    per_row = activations_per_example(net) * np.dtype(net.dtype).itemsize
    return max(1, min(cap, EVAL_CHUNK_BYTES // max(per_row, 1)))
