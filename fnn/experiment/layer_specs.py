"""``[[model.layers]]``: a network's layers as TOML tables, validated and built into fnn.layers.

    [[model.layers]]
    type = "conv2d"
    filters = 32
    kernel_size = 3
    activation = "relu"

Each table has a ``type`` (the snake_case name of an :mod:`fnn.layers` class) and that layer's
constructor arguments. Every field is checked here with the config's one-line errors
(``model.layers[2].pool_size: 0 out of range; expected >= 1``); an unknown type or field gets a
did-you-mean hint. A ``residual`` table holds its inner layers in ``layers = [...]`` (inline
tables), a ``repeat`` table its one repeated layer in ``layer = {...}`` and ``n``. Sequence
layers: ``embedding`` (``vocab_size`` defaults to the data's vocabulary), ``positional_embedding``
(``max_len`` defaults to ``data.block_size``), ``causal_self_attention``,
``transformer_block``, ``lstm``, ``simple_rnn``. Shapes are not known here: they are checked when the network is built from the data's
input shape (:func:`build`), again naming ``model.layers[i]``.

The listed layers are the hidden stack: the output layer (``dense`` with one unit per class or
target, activation ``model.output``) is appended by the build, as for ``model.hidden``.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from fnn.nn import names

# The checks read only fnn.nn.names (no JAX); the layer classes are imported by build_layer.
ACTIVATION_NAMES = (*names.ACTIVATIONS, *names.ACTIVATION_ALIASES)
INITIALIZER_NAMES = (*names.INITIALIZERS, *names.INITIALIZER_ALIASES)
# Bounds on what cannot be useful and would compile for minutes (issue 23): every layer is
# unrolled into the one compiled program, so depth is compile time.
MAX_UNITS = 1 << 16   # filters / units per layer (65,536); 2**20 is a typo, not a network
MAX_WINDOW = 1 << 12
MAX_DEPTH = 8         # residual blocks nested deeper than this are refused
MAX_LAYERS = 100      # layers in all (inner layers of residual blocks counted)


def _int(lo, hi):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return None, "an integer"
        if not lo <= v <= hi:
            return None, f"an integer in [{lo}, {hi}]"
        return v, None
    return check


def _window(v):
    """An int or a pair of ints in [1, MAX_WINDOW]; normalized to an int or a 2-tuple."""
    ok = _int(1, MAX_WINDOW)
    if isinstance(v, list) and len(v) == 2:
        out = [ok(x) for x in v]
        if all(e is None for _, e in out):
            return tuple(x for x, _ in out), None
        return None, f"an integer or a pair of integers in [1, {MAX_WINDOW}]"
    got, err = ok(v)
    return (got, None) if err is None else (None, f"an integer or a pair of integers in [1, {MAX_WINDOW}]")


def _optional_window(v):
    return (None, None) if v is None else _window(v)


def _float(lo, hi, *, lo_open=False, hi_open=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None, "a number"
        v = float(v)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            return None, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        return v, None
    return check


def _bool(v):
    return (v, None) if isinstance(v, bool) else (None, "true or false")


def _choice(options, *, optional=False):
    def check(v):
        if optional and v in (None, ""):
            return None, None
        if not isinstance(v, str) or v not in options:
            return None, "one of: " + ", ".join(repr(o) for o in options)
        return v, None
    return check


# type -> (class name in fnn.layers, {field: (checker, required)})
SPECS: dict[str, tuple[str, dict[str, tuple[Callable, bool]]]] = {
    "dense": ("Dense", {"units": (_int(1, MAX_UNITS), True),
                        "activation": (_choice(ACTIVATION_NAMES), False),
                        "initializer": (_choice(INITIALIZER_NAMES, optional=True), False)}),
    "conv2d": ("Conv2D", {"filters": (_int(1, MAX_UNITS), True),
                          "kernel_size": (_window, False), "strides": (_window, False),
                          "padding": (_choice(names.PADDINGS), False),
                          "activation": (_choice(ACTIVATION_NAMES), False),
                          "initializer": (_choice(INITIALIZER_NAMES, optional=True), False)}),
    "max_pool2d": ("MaxPool2D", {"pool_size": (_window, False),
                                 "strides": (_optional_window, False)}),
    "avg_pool2d": ("AvgPool2D", {"pool_size": (_window, False),
                                 "strides": (_optional_window, False)}),
    "global_avg_pool2d": ("GlobalAvgPool2D", {}),
    "flatten": ("Flatten", {}),
    "dropout": ("Dropout", {"rate": (_float(0.0, 1.0, hi_open=True), True)}),
    "batch_norm": ("BatchNorm", {"momentum": (_float(0.0, 1.0, hi_open=True), False),
                                 "eps": (_float(0.0, 1.0, lo_open=True), False)}),
    "layer_norm": ("LayerNorm", {"eps": (_float(0.0, 1.0, lo_open=True), False)}),
    "activation": ("Activation", {"name": (_choice(ACTIVATION_NAMES), True)}),
    "residual": ("Residual", {"layers": (None, True)}),
    "embedding": ("Embedding", {"features": (_int(1, MAX_UNITS), True),
                                "vocab_size": (_int(1, MAX_UNITS), False)}),
    "positional_embedding": ("PositionalEmbedding", {"max_len": (_int(1, MAX_UNITS), False)}),
    "causal_self_attention": ("CausalSelfAttention", {
        "num_heads": (_int(1, MAX_WINDOW), True),
        "dropout": (_float(0.0, 1.0, hi_open=True), False)}),
    "transformer_block": ("TransformerBlock", {
        "num_heads": (_int(1, MAX_WINDOW), True), "mlp_ratio": (_int(1, MAX_WINDOW), False),
        "dropout": (_float(0.0, 1.0, hi_open=True), False)}),
    "repeat": ("Repeat", {"layer": (None, True), "n": (_int(1, MAX_WINDOW), True)}),
    "lstm": ("LSTM", {"units": (_int(1, MAX_UNITS), True),
                      "return_sequences": (_bool, False)}),
    "simple_rnn": ("SimpleRNN", {"units": (_int(1, MAX_UNITS), True),
                                 "activation": (_choice(ACTIVATION_NAMES), False),
                                 "return_sequences": (_bool, False)}),
}
TYPES = tuple(SPECS)


def _hint(word, options) -> str:
    close = difflib.get_close_matches(str(word), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check(value: Any, key: str = "model.layers", depth: int = 0) -> tuple[Any, list[str]]:
    """Validate a raw ``model.layers`` value (a list of tables).

    Args:
      value: what TOML (or ``--set``) gave.  key: its dotted key, for the messages.
    Returns:
      (normalized tuple of dicts — each with its ``type`` and the fields given —, error lines).
    """
    if not isinstance(value, (list, tuple)):
        return None, [f"{key}: {_describe(value)}; expected an array of tables like "
                      "[[model.layers]] with type = \"conv2d\", ..."]
    if depth > MAX_DEPTH:
        return None, [f"{key}: residual blocks nested more than {MAX_DEPTH} deep"]
    out, errors = [], []
    for i, spec in enumerate(value):
        at = f"{key}[{i}]"
        if not isinstance(spec, dict):
            errors.append(f"{at}: {_describe(spec)}; expected a table with a 'type'")
            continue
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in SPECS:  # ["conv2d"] is not a name either
            shown = "missing" if kind is None else f"{_describe(kind)} is not a layer type"
            hint = _hint(kind, TYPES) if isinstance(kind, str) and kind else ""
            errors.append(f"{at}.type: {shown}{hint}; expected one of: {', '.join(TYPES)}")
            continue
        fields = SPECS[kind][1]
        norm = {"type": kind}
        for name in spec:
            if name != "type" and name not in fields:
                allowed = ", ".join(fields) or "no fields"
                errors.append(f"{at}.{name}: unknown field for {kind}{_hint(name, tuple(fields))};"
                              f" expected {allowed}")
        for name, (checker, required) in fields.items():
            if name not in spec:
                if required:
                    errors.append(f"{at}.{name}: missing; {kind} needs it")
                continue
            if name == "layer":  # a repeat's one layer
                inner, errs = check([spec[name]] if isinstance(spec[name], dict) else spec[name],
                                    f"{at}.layer", depth + 1)
                errors += [e.replace(f"{at}.layer[0]", f"{at}.layer") for e in errs]
                if not errs:
                    if len(inner) != 1:
                        errors.append(f"{at}.layer: {len(inner)} layers; expected one table")
                    else:
                        norm[name] = inner[0]
                continue
            if name == "layers":  # a residual's inner stack
                inner, errs = check(spec[name], f"{at}.layers", depth + 1)
                errors += errs
                if not errs and not inner:
                    errors.append(f"{at}.layers: empty; expected at least one inner layer")
                norm[name] = inner
                continue
            got, expected = checker(spec[name])
            if expected is not None:
                errors.append(f"{at}.{name}: {_describe(spec[name])}; expected {expected}")
            elif got is not None:
                norm[name] = got
        out.append(norm)
    if depth == 0 and not errors and count_layers(out) > MAX_LAYERS:
        errors.append(f"{key}: {count_layers(out)} layers; expected at most {MAX_LAYERS} (each "
                      "layer is compiled into the one training program)")
    return (tuple(out) if not errors else None), errors


def count_layers(specs) -> int:
    """Layers in a normalized stack, the inner layers of residual blocks included."""
    return sum(1 + (count_layers(s["layers"]) if s["type"] == "residual" else 0) for s in specs)


def build_layer(spec: dict, data: dict = None):
    """One fnn.layers object from a normalized table (see :func:`check`); ``data`` fills the
    sizes the data decide when the table leaves them out (``vocab_size``, ``max_len``)."""
    from fnn.nn import layers as L

    cls = getattr(L, SPECS[spec["type"]][0])
    kw = {k: v for k, v in spec.items() if k != "type"}
    data = data or {}
    if spec["type"] == "residual":
        return cls(tuple(build_layer(s, data) for s in kw["layers"]))
    if spec["type"] == "repeat":
        return cls(build_layer(kw["layer"], data), kw["n"])
    for name in DATA_SIZES.get(spec["type"], ()):
        if name not in kw:
            if name not in data:
                raise ValueError(f"{name}: missing; {spec['type']} needs it (token data give it)")
            kw[name] = data[name]
    if spec["type"] == "activation":
        return cls(kw["name"])
    return cls(**kw)


DATA_SIZES = {"embedding": ("vocab_size",), "positional_embedding": ("max_len",)}


def build(specs, *, vocab_size=None, max_len=None) -> tuple:
    """The layer objects of a validated ``model.layers``. Raises ValueError naming the entry.

    Args:
      specs: from :func:`check`.  vocab_size, max_len: the token data's vocabulary size and
        block size, for tables that leave them out.
    """
    data = {k: v for k, v in (("vocab_size", vocab_size), ("max_len", max_len)) if v is not None}
    out = []
    for i, spec in enumerate(specs):
        try:
            out.append(build_layer(spec, data))
        except ValueError as err:
            raise ValueError(f"model.layers[{i}]: {err}") from None
    return tuple(out)


IMAGE_FIRST = ("conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "flatten", "residual")
NEUTRAL = ("dropout", "activation", "batch_norm", "layer_norm")


def takes_images(specs) -> bool:
    """Whether the stack takes (H, W, C) images: its first shape-changing layer is spatial.

    A stack that starts with ``dense`` takes flat vectors (images flattened, as for an MLP).
    """
    for spec in specs:
        if spec["type"] in NEUTRAL:
            continue
        return spec["type"] in IMAGE_FIRST
    return False


def to_toml_value(specs) -> list:
    """The normalized tables as TOML-ready dicts (tuples to lists), for the resolved config."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return [plain(s) for s in specs]
