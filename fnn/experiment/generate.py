"""``fnn generate`` and ``RunHandle.generate``: text from a finished run trained on token data.

The run directory's ``vocab.json`` (written when it trained, :class:`fnn.data.text.Vocabulary`)
turns the prompt into ids and the sampled ids back into characters; the sampling itself is one
compiled loop (:func:`fnn.engine.sampling.sample`). An empty prompt starts from a newline when
the vocabulary has one (nanoGPT's ``start = "\\n"``), else from its first character; the text
returned is the continuation only. The same seed gives the same text.
"""

from __future__ import annotations

from pathlib import Path

from fnn.data.text import VOCAB_FILE, Vocabulary
from fnn.experiment.rundir import UsageError

SEED_MAX = 2**32 - 1


def read_vocab(run_dir) -> Vocabulary:
    """The run's vocabulary. Raises UsageError (one line) for a run without one."""
    path = Path(run_dir) / VOCAB_FILE
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r}: no {VOCAB_FILE}; generate needs a run trained on"
                         " token data (data.name = 'text' or 'adder')")
    return Vocabulary.load(path)


def generate(handle, prompt: str = "", *, tokens: int = 200, temperature: float = 1.0,
             top_k: int = 0, seed: int = 0) -> str:
    """The continuation of ``prompt`` by a trained member (:class:`RunHandle`).

    Args:
      handle: a :class:`fnn.experiment.handle.RunHandle` of a token-data run.
      prompt: the text to continue (every character in the vocabulary).
      tokens: characters to sample.  temperature: ≥ 0 (0: greedy).
      top_k: sample among the k most likely characters (0: all).  seed: the PRNG seed.
    Returns:
      the ``tokens`` sampled characters.
    Raises:
      ValueError: a character outside the vocabulary, bad options (one line each).
    """
    import jax

    from fnn.engine import sampling

    if not isinstance(prompt, str):
        raise ValueError(f"--prompt: {prompt!r}; expected text")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"--seed: {seed!r}; expected an integer in [0, {SEED_MAX}]")
    vocab = read_vocab(handle.run_dir)
    sampling.check_options(handle.net, tokens=tokens, temperature=temperature, top_k=top_k)
    if prompt:
        context = vocab.encode(prompt, field="--prompt")
    else:
        context = vocab.encode("\n" if "\n" in vocab.chars else vocab.chars[0])
    ids = sampling.sample(handle.net, handle.params, context, tokens=tokens,
                          key=jax.random.key(seed), temperature=float(temperature),
                          top_k=top_k, state=handle.net_state)
    return vocab.decode(ids)
