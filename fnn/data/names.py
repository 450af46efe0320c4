"""The datasets' names, tasks and default options, in plain Python (no NumPy, no JAX).

The config checks read these (``fnn train BAD.toml`` answers without importing NumPy); the
loaders are built from them: :data:`fnn.data.synthetic.SYNTHETIC` pairs each generator with its
entry here and is checked against this table when it is imported, so there is one list.
"""

from __future__ import annotations

from typing import Any

MAX_CLASSES = 100_000  # more classes is a mistake, not a data set (10**9 labels: a 32 GB one-hot)

_SPLIT = {"val_fraction": 0.0, "test_fraction": 0.2, "standardize": False}

#: The built-in generated sets: name -> (task, {option: default}).
SYNTHETIC_SETS: dict[str, tuple[str, dict[str, Any]]] = {
    "xor": ("classification", {"n_samples": 4, "noise": 0.0, "seed": 0, "val_fraction": 0.0,
                               "test_fraction": 0.0, "standardize": False}),
    "moons": ("classification", {"n_samples": 1000, "noise": 0.1, "seed": 0, **_SPLIT}),
    "circles": ("classification", {"n_samples": 1000, "noise": 0.05, "seed": 0, "factor": 0.5,
                                   **_SPLIT}),
    "spirals": ("classification", {"n_samples": 1000, "noise": 0.05, "seed": 0, "num_classes": 3,
                                   "turns": 1.0, **_SPLIT}),
    "blobs": ("classification", {"n_samples": 1000, "noise": 1.0, "seed": 0, "num_classes": 3,
                                 "num_features": 2, **_SPLIT}),
    "sine": ("regression", {"n_samples": 1000, "noise": 0.1, "seed": 0, **_SPLIT}),
    "polynomial": ("regression", {"n_samples": 1000, "noise": 0.1, "seed": 0, "num_features": 2,
                                  **_SPLIT}),
}

IMAGE_NAMES = ("fashion_mnist", "mnist")
FILE_NAMES = ("csv", "npz")
TOKEN_NAMES = ("text", "adder")  # character-level sequence data (fnn.data.text)
NAMES: tuple[str, ...] = tuple(SYNTHETIC_SETS) + ("shapes",) + IMAGE_NAMES + FILE_NAMES \
    + TOKEN_NAMES
