"""``fnn.load_run``: a Python handle on a finished run directory.

    run = fnn.load_run("runs/quickstart")             # a sweep: load_run(dir, member=3 or label)
    run.predict(x_raw)          # (n, *input_shape) raw inputs -> outputs (probabilities, ...)
    run.evaluate("test")        # {"loss": ..., "accuracy": ...}
    run.generate("ROMEO:", tokens=200, seed=0)        # a run on token data: the continuation
    run.net, run.params, run.config, run.summary, run.history

Prediction needs no data: the preprocessing of training (1/255 for uint8 images, the
standardization statistics) comes from the run's ``preprocessing.json``. ``evaluate`` loads the
dataset (it needs the labels) and an evaluator of the network; no trainer is built.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Union

import jax
import numpy as np

from fnn.experiment import memory
from fnn.experiment import config as config_mod
from fnn.experiment import members as members_mod


class RunHandle:
    """One trained member of a run directory (see the module docstring).

    Attributes:
      run_dir: the directory.  member: flat member index.  label: its label ("0" for a run).
      net: the network (:class:`fnn.MLP`, or any container of :mod:`fnn.nn.protocol`).
      params: its trained parameters.  net_state: network state (BatchNorm), or None.
      config: the resolved config this member trained with (its swept values set).
      spec: the :class:`fnn.experiment.preprocessing.DataSpec` (task, classes, statistics).
    """

    def __init__(self, run_dir, *, ref, config, run_config, groups, net, params, net_state,
                 spec):
        self.run_dir = Path(run_dir)
        self.member, self.label = ref.index, ref.label
        self._ref, self._run_config, self._groups = ref, run_config, groups
        self.config, self.net, self.params, self.net_state = config, net, params, net_state
        self.spec = spec
        self._fn = None

    # --- facts ---------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def classes(self) -> list[str]:
        """Class names (``classes[i]`` names output / class i); empty for regression."""
        return self.spec.class_names

    @property
    def vocab_size(self) -> int:
        """V, the number of token ids a sequence model takes (0 for other models)."""
        return int(self.spec.num_classes) if self.task == "sequence" else 0

    @property
    def vocabulary(self) -> list[str]:
        """The run's tokens (``vocab.json``: token i is the character ``vocabulary[i]``);
        empty for a run without one."""
        from fnn.data.text import VOCAB_FILE, Vocabulary

        path = self.run_dir / VOCAB_FILE
        return list(Vocabulary.load(path).chars) if path.is_file() else []

    @property
    def input_shape(self) -> tuple:
        """One example's raw input shape (``(features,)`` for an MLP)."""
        return members_mod.input_shape(self.net, self.spec)

    @property
    def summary(self) -> dict:
        """``summary.json``; for a sweep member the run's fields overlaid with the member's."""
        path = self.run_dir / "summary.json"
        if not path.is_file():
            return {}
        s = json.loads(path.read_text(encoding="utf-8"))
        ms = s.get("members") or []
        if len(ms) > 1 and self.member < len(ms):
            return {**{k: v for k, v in s.items() if k != "members"}, **ms[self.member]}
        return s

    @property
    def history(self) -> dict:
        """Per-epoch metrics of this member: name -> (epochs_trained,) NumPy array, with
        ``epoch`` (1-based); from ``metrics.csv``, else from the checkpoint."""
        path = self.run_dir / "metrics.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if r["member"] == self.label]
            if rows:
                return {k: np.asarray([float(r[k]) if r[k] != "" else np.nan for r in rows],
                                      np.int64 if k == "epoch" else np.float64)
                        for k in rows[0] if k != "member"}
        return self._checkpoint_history()

    def _checkpoint_history(self) -> dict:
        ref = self._ref
        path = members_mod.checkpoint_path(self.run_dir, ref.group_index, len(self._groups))
        with np.load(path, allow_pickle=False) as z:  # history entries only, no template
            hist = {k[len("history/"):]: z[k] for k in z.files if k.startswith("history/")}
        n = len(self._groups[ref.group_index].members)
        hist = {k: (v[ref.position] if n > 1 else v) for k, v in hist.items()}
        trained = np.asarray(hist.pop("trained", np.ones_like(next(iter(hist.values())), bool)),
                             bool)
        out = {"epoch": np.arange(1, trained.size + 1)[trained]}
        out.update({k: np.asarray(v, np.float64)[trained] for k, v in hist.items()})
        return out

    # --- use -----------------------------------------------------------------------------------
    def prediction_fn(self, *, logits: bool = False):
        """``f(x) -> y``: raw inputs (batch, *input_shape) to outputs, with the trained
        parameters and the preprocessing closed over (what ``fnn export`` serializes; with
        ``logits``, the output activation's input, as a sequence model is exported)."""
        fn = members_mod.prediction_fn(self.net, self.spec, logits=logits)
        params, state = self.params, self.net_state
        return lambda x: fn(params, state, x)

    def predict(self, x) -> np.ndarray:
        """Outputs of the trained network for raw inputs, preprocessed as in training.

        Args:
          x: (n, *input_shape) raw values (pixels 0..255 for images; unstandardized features),
            or (n, prod(input_shape)); for a sequence model (n, T) token ids.
        Returns:
          (n, outputs) NumPy array: class probabilities (softmax), P(class 1) (one sigmoid
          unit), or regression outputs; for a sequence model (n, T, V), the next token's
          probabilities at every position.
        Raises:
          ValueError: inputs of the wrong shape, or token ids outside the vocabulary (one line).
        """
        x = members_mod.check_inputs(x, self.input_shape, image_shape=self.spec.image_shape)
        if self.net.integer_inputs:
            from fnn.data.validate import token_ids

            x = token_ids(x, self.vocab_size)
        if self._fn is None:
            self._fn = jax.jit(members_mod.prediction_fn(self.net, self.spec))
        return members_mod.apply_chunked(self._fn, self.params, self.net_state, x,
                                         chunk=memory.eval_chunk(self.net))

    def predict_classes(self, x) -> np.ndarray:
        """Predicted class ids (n,) (classification only)."""
        if self.task != "classification":
            raise ValueError(f"predict_classes: the run is a {self.task} run")
        return members_mod.class_ids(self.predict(x))

    def evaluate(self, split: str = "test", *, dataset=None) -> dict:
        """Loss (and accuracy, exact match) of this member on a split of its dataset.

        Builds the member's data and an :class:`fnn.engine.evaluation.Evaluator` of its network
        and loss: no trainer, no optimizer, nothing compiled beyond the evaluation.

        Args:
          split: "test", "val" or "train".
          dataset: the member's dataset, if already loaded (``fnn evaluate`` loads it once for
            every member of a sweep); None: loaded from the member's config.
        Returns:
          {"loss": float, "accuracy": float (classification), "exact_match": float (a
          built-in sequence task), "examples": int}.
        Raises:
          ValueError: an unknown split or one the dataset lacks.
        """
        from fnn.engine.evaluation import Evaluator
        from fnn.experiment import build as exp

        if split not in ("train", "val", "test"):
            raise ValueError(f"split: {split!r}; expected one of test, val, train")
        if dataset is None:
            dataset = exp.load_dataset(self.config)
        arrays = dataset.split(split)
        if arrays is None:
            raise ValueError(f"split: {split!r}; dataset {dataset.name!r} has no {split} split")
        exact = int(getattr(dataset, "answer_len", 0)) if self.config.training.iterations else 0
        ev = Evaluator.of(self.net, config_mod.resolved_loss(self.config), y=arrays[1],
                          exact_last=exact)
        out = ev.evaluate(self.params, *arrays, state=self.net_state,
                          chunk=memory.eval_chunk(self.net))
        return {**out, "examples": int(arrays[0].shape[0])}

    def generate(self, prompt: str = "", *, tokens: int = 200, temperature: float = 1.0,
                 top_k: int = 0, seed: int = 0) -> str:
        """The continuation of ``prompt`` sampled from a run on token data (``text``,
        ``adder``): ``tokens`` characters; temperature 0 is greedy; top_k > 0 samples among
        the k most likely; the same seed gives the same text. See
        :mod:`fnn.experiment.generate`.

        Raises:
          ValueError: a prompt character outside the run's vocabulary, bad options, a run
            without a vocabulary (one line).
        """
        from fnn.experiment import generate

        return generate.generate(self, prompt, tokens=tokens, temperature=temperature,
                                 top_k=top_k, seed=seed)

    def __repr__(self) -> str:
        return (f"RunHandle({str(self.run_dir)!r}, member={self.member} ({self.label!r}), "
                f"task={self.task!r}, input_shape={self.input_shape}, outputs="
                f"{self.spec.num_outputs if self.task == 'regression' else len(self.classes)})")


def load_run(run_dir, member: Union[int, str, None] = None) -> RunHandle:
    """A handle on one trained member of a finished run directory.

    Args:
      run_dir: a directory written by ``fnn train`` / ``fnn sweep``.
      member: for a sweep, the member's index (summary order) or label; None for a single run.
    Returns:
      a :class:`RunHandle`.
    Raises:
      ValueError (RunDirError, CheckpointError): not a run directory, no checkpoint, no such
        member (one line each).
    """
    from fnn.experiment import build as exp

    cfg = members_mod.read_config(run_dir)
    groups = exp.plan(cfg)
    refs = members_mod.member_refs(groups)
    ref = members_mod.find_member(refs, member, run_dir)
    spec = members_mod.data_specs(run_dir, cfg, groups)[ref.group_index]
    net, params, state = members_mod.load_group(run_dir, cfg, groups, ref.group_index, spec)
    members_mod.check_outputs(net, spec, run_dir)
    n = len(groups[ref.group_index].members)
    return RunHandle(run_dir, ref=ref, config=members_mod.member_config(cfg, groups, ref),
                     run_config=cfg, groups=groups, net=net,
                     params=members_mod.select(params, ref.position, n),
                     net_state=members_mod.select(state, ref.position, n), spec=spec)


def member_labels(run_dir) -> list[str]:
    """The labels of every member of a run directory, in summary order."""
    from fnn.experiment import build as exp

    return [r.label for r in members_mod.member_refs(exp.plan(members_mod.read_config(run_dir)))]

