"""Character-level token data: a UTF-8 text file (``data.name = "text"``) and minGPT's adder.

* :class:`Vocabulary`: the sorted set of a text's characters; ``encode`` / ``decode`` between
  strings and int32 ids, ``save`` / ``load`` as ``vocab.json`` in a run directory.
* :func:`load_text`: the first ``1 − val_fraction`` (90 %) of a file's characters for training,
  the rest for validation, as nanoGPT splits it. Each split is one row of ids; training batches
  are random windows of ``block_size + 1`` characters drawn on the device
  (:mod:`fnn.engine.windows`).
* :func:`adder`: every problem a+b=c on n-digit numbers as one row of 3n+1 digits — a, b, then
  c reversed (n+1 digits, minGPT's layout: the network writes the sum from its lowest digit) —
  split into training, validation and held-out test problems. The last n+1 targets of a row
  are its answer (``answer_len``): exact-match accuracy asks all of them to be right.

A :class:`TokenDataset` holds int32 rows ``(rows, length)``. Its ``split(name)`` gives fixed
(x, y) windows for full evaluation: consecutive non-overlapping windows x = ids[s : s + T],
y = ids[s + 1 : s + T + 1] of every row (one per adder problem). Host-side NumPy only.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from fnn.data.validate import DataError

MAX_VOCAB = 4096        # characters; a larger vocabulary is binary data, not text
MAX_BLOCK = 1 << 14     # positions per window
VOCAB_FILE = "vocab.json"
VOCAB_FORMAT = "fnn-vocabulary"
ADDER_MAX_DIGITS = 6
ADDER_DEFAULT_PROBLEMS = 10_000  # problems drawn when 10^(2n) is more than this


def _char(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X})"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Characters ``chars[i]`` for id i (sorted, distinct).

    Args:
      chars: the characters, as a string or a sequence of one-character strings.
    """

    chars: tuple

    def __post_init__(self):
        chars = tuple(self.chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise DataError(f"vocabulary: {self.chars!r}; expected one or more single characters")
        if list(chars) != sorted(set(chars)):
            raise DataError("vocabulary: characters not sorted and distinct")
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(chars)})

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """The sorted set of ``text``'s characters."""
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, *, field: str = "text") -> np.ndarray:
        """int32 (len(text),) ids of ``text``.

        Raises:
          DataError: a character outside the vocabulary (one line naming ``field``, the
            character and its position).
        """
        index = self._index
        try:
            return np.fromiter((index[c] for c in text), np.int32, len(text))
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in index)
            shown = "".join(self.chars) if len(self.chars) <= 40 else f"{len(self.chars)} characters"
            raise DataError(f"{field}: character {_char(text[pos])} at position {pos} is not in"
                            f" the vocabulary; expected characters of {shown!r}") from None

    def decode(self, ids) -> str:
        """The string of ids (any integer array-like of values in [0, size))."""
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))

    def save(self, path) -> Path:
        """Write the vocabulary as JSON, atomically (``{"format", "chars"}``)."""
        from fnn.util import fileio

        text = json.dumps({"format": VOCAB_FORMAT, "format_version": 1,
                           "chars": "".join(self.chars)}, ensure_ascii=True) + "\n"
        return fileio.atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Read a file written by :meth:`save`. Raises DataError (one line) otherwise."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: unreadable vocabulary ({type(err).__name__})") from None
        if not isinstance(raw, dict) or raw.get("format") != VOCAB_FORMAT or \
                not isinstance(raw.get("chars"), str):
            raise DataError(f"{path}: not an fnn vocabulary file")
        return cls(tuple(raw["chars"]))


@dataclasses.dataclass(frozen=True, eq=False)
class TokenDataset:
    """Token rows of one dataset (see the module docstring).

    Attributes:
      name: "text" or "adder".  vocab: the :class:`Vocabulary`.
      block_size: T, the positions the network sees.
      train, val: int32 (rows, length) ids, length ≥ T + 1.  test: held-out rows or None.
      answer_len: the last answer_len targets of a window are scored by exact match (0: none).
    """

    name: str
    vocab: Vocabulary
    block_size: int
    train: np.ndarray
    val: np.ndarray
    test: Optional[np.ndarray] = None
    answer_len: int = 0
    task = "sequence"
    image_shape = None
    x_mean = x_std = None

    def __post_init__(self):
        for split in ("train", "val", "test"):
            rows = getattr(self, split)
            if rows is None:
                continue
            rows = np.asarray(rows, np.int32)
            if rows.ndim != 2 or rows.shape[1] < self.block_size + 1 or rows.shape[0] < 1:
                raise DataError(f"{split}: token rows of shape {rows.shape}; expected (rows,"
                                f" length >= block_size + 1 = {self.block_size + 1})")
            rows.flags.writeable = False
            object.__setattr__(self, split, rows)

    @property
    def num_features(self) -> int:
        """T, one example's positions (what building a network reads as its input width)."""
        return int(self.block_size)

    @property
    def num_classes(self) -> int:
        """V, the vocabulary size (the output units)."""
        return self.vocab.size

    num_outputs = num_classes

    @property
    def classes(self):
        return None

    @property
    def num_train(self) -> int:
        """Training ids (all rows)."""
        return int(self.train.size)

    def split(self, split: str):
        """Fixed windows ``(x, y)``, int32 (n, T) each, of a split; None when absent."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split={split!r}: expected one of train, val, test")
        rows = getattr(self, split)
        return None if rows is None else windows(rows, self.block_size)

    x_train = property(lambda self: self.split("train")[0], doc="(n, T) training windows")
    y_train = property(lambda self: self.split("train")[1], doc="(n, T) their targets")
    x_val = property(lambda self: self.split("val")[0], doc="(n, T) validation windows")
    y_val = property(lambda self: self.split("val")[1], doc="(n, T) their targets")

    @property
    def x_test(self):
        s = self.split("test")
        return None if s is None else s[0]

    @property
    def y_test(self):
        s = self.split("test")
        return None if s is None else s[1]

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"vocab={self.vocab.size}", f"block_size={self.block_size}"]
        parts += [f"{s}={getattr(self, s).shape[0]}x{getattr(self, s).shape[1]}"
                  for s in ("train", "val", "test") if getattr(self, s) is not None]
        return f"TokenDataset({', '.join(parts)})"


def windows(rows: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive non-overlapping windows of every row: x = r[s:s+T], y = r[s+1:s+T+1],
    s = 0, T, 2T, ... while s + T + 1 <= length.

    Args: rows: int (rows, length).  block_size: T. Returns: (x, y) int32 (n, T) each.
    """
    t = int(block_size)
    rows = np.asarray(rows)
    n = (rows.shape[1] - 1) // t
    x = rows[:, :n * t].reshape(-1, t)
    y = rows[:, 1:n * t + 1].reshape(-1, t)
    return x.astype(np.int32), y.astype(np.int32)


def read_text(path) -> str:
    """The file's characters. Raises DataError (one line): missing, empty, not UTF-8."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise DataError(f"path={path!r}: expected the path of a UTF-8 text file")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"path={str(p)!r}: does not exist or is not a file; expected a UTF-8"
                        " text file")
    raw = p.read_bytes()
    if not raw:
        raise DataError(f"path={str(p)!r}: empty file; expected UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"path={str(p)!r}: not UTF-8 (byte 0x{raw[err.start]:02x} at offset"
                        f" {err.start}); expected a UTF-8 text file") from None


def check_block_size(block_size) -> int:
    from fnn.data.validate import check_int

    t = check_int(block_size, field="block_size", minimum=1)
    if t > MAX_BLOCK:
        raise DataError(f"block_size={t}: expected at most {MAX_BLOCK}")
    return t


def load_text(path, *, block_size: int = 64, val_fraction: float = 0.1) -> TokenDataset:
    """A UTF-8 file as character ids: the first ``1 − val_fraction`` for training, the rest
    for validation (one row each).

    Args:
      path: the file.  block_size: T.  val_fraction: the validation share (nanoGPT: 0.1).
    Returns:
      a :class:`TokenDataset` with ``train`` (1, n_train) and ``val`` (1, n_val).
    Raises:
      DataError: a missing, empty or non-UTF-8 file; a vocabulary over :data:`MAX_VOCAB`; a
        file shorter than two windows (each split must hold block_size + 1 characters).
    """
    from fnn.data.validate import check_float

    t = check_block_size(block_size)
    frac = check_float(val_fraction, field="val_fraction", minimum=0.0, maximum=1.0,
                       open_min=True, open_max=True)
    text = read_text(path)
    vocab_chars = sorted(set(text))
    if len(vocab_chars) > MAX_VOCAB:
        raise DataError(f"path={str(path)!r}: a vocabulary of {len(vocab_chars)} distinct"
                        f" characters; expected at most {MAX_VOCAB}")
    n = len(text)
    n_train = int(n * (1.0 - frac))
    if n_train < t + 1 or n - n_train < t + 1:
        need = 2 * (t + 1)
        while int(need * (1.0 - frac)) < t + 1 or need - int(need * (1.0 - frac)) < t + 1:
            need += 1
        raise DataError(f"path={str(path)!r}: {n} characters, shorter than two windows;"
                        f" expected at least {need} (block_size + 1 = {t + 1} characters in the"
                        f" training part and in the last {frac:g} for validation)")
    vocab = Vocabulary(tuple(vocab_chars))
    ids = vocab.encode(text)
    return TokenDataset("text", vocab, t, ids[None, :n_train], ids[None, n_train:])


def adder(*, digits: int = 2, n_samples: Optional[int] = None, val_fraction: float = 0.1,
          test_fraction: float = 0.1, seed: int = 0) -> TokenDataset:
    """minGPT's adder: a+b=c on ``digits``-digit numbers, one problem a row (module docstring).

    Args:
      digits: n, 1..6.  n_samples: problems (default all 10^(2n), at most 10,000 drawn).
      val_fraction, test_fraction: shares held out (never trained on).  seed: the draw and
        the split.
    Returns:
      a :class:`TokenDataset` with block_size 3n, rows of 3n + 1 digits and answer_len n + 1.
    """
    from fnn.data.validate import check_float, check_int

    n = check_int(digits, field="digits", minimum=1)
    if n > ADDER_MAX_DIGITS:
        raise DataError(f"digits={n}: expected at most {ADDER_MAX_DIGITS}")
    total = 10 ** (2 * n)
    count = min(total, ADDER_DEFAULT_PROBLEMS) if n_samples is None else \
        check_int(n_samples, field="n_samples", minimum=3)
    if count > total:
        raise DataError(f"n_samples={count}: expected at most {total} ({n}-digit problems)")
    fv = check_float(val_fraction, field="val_fraction", minimum=0.0, maximum=1.0,
                     open_min=True, open_max=True)
    ft = check_float(test_fraction, field="test_fraction", minimum=0.0, maximum=1.0,
                     open_min=True, open_max=True)
    rng = np.random.default_rng(check_int(seed, field="seed", minimum=0))
    if count == total:
        problems = rng.permutation(total)
    else:  # distinct problems without materialising all 10^(2n)
        problems = np.unique(rng.integers(0, total, size=2 * count))
        problems = rng.permutation(problems)[:count]
    n_val, n_test = max(1, int(count * fv)), max(1, int(count * ft))
    if n_val + n_test >= count:
        raise DataError(f"val_fraction={fv:g}, test_fraction={ft:g}: no training problems left"
                        f" of {count}; expected smaller fractions")
    a, b = problems // 10 ** n, problems % 10 ** n
    c = a + b
    cols = [(a // 10 ** (n - 1 - i)) % 10 for i in range(n)]
    cols += [(b // 10 ** (n - 1 - i)) % 10 for i in range(n)]
    cols += [(c // 10 ** i) % 10 for i in range(n + 1)]  # c reversed: lowest digit first
    rows = np.stack(cols, axis=1).astype(np.int32)       # digit d is id d ("0".."9" sorted)
    vocab = Vocabulary(tuple("0123456789"))
    return TokenDataset("adder", vocab, 3 * n, rows[n_val + n_test:], rows[:n_val],
                        rows[n_val:n_val + n_test], answer_len=n + 1)
