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

import numpy as np

EVAL_CHUNK_BYTES = 32 << 20


def activations_per_example(net) -> int:
    """Values each example's forward pass keeps: every layer's output (MLP: its widths)."""
    shapes = getattr(net, "shapes", None)
    if shapes is not None:  # Sequential: input shape then each layer's output shape
        return int(sum(math.prod(s) for s in shapes[1:]))
    sizes = getattr(net, "sizes", None)
    return int(sum(sizes[1:])) if sizes is not None else 0


def eval_chunk(net, *, cap: int = 2048) -> int:
    """Rows per compiled evaluation or prediction call (the formula above).

    Args:
      net: the network (its ``shapes`` or ``sizes``, and ``dtype``).  cap: the most rows.
    Returns:
      the rows per call, between 1 and ``max(cap, 1)``.
    """
    per_row = activations_per_example(net) * np.dtype(getattr(net, "dtype", np.float32)).itemsize
    return max(1, min(cap, EVAL_CHUNK_BYTES // max(per_row, 1)))
