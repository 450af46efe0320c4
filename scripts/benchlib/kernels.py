"""How many kernels one scanned train step runs: counted in the compiled program's HLO text.

XLA:CPU runs a compiled program as a sequence of thunks, one per instruction of a scheduled
computation that emits code: a fusion (a loop fusion, or a custom fusion around a library dot),
a copy, a custom call, a sort, a dot that was not fused. Parameters, tuple plumbing, constants
and bitcasts emit nothing. Inside a ``while`` (``lax.scan``) the body's thunks run once per
iteration, so for a scanned epoch the count of the body's kernels is the count per step; a
``conditional`` (``lax.cond``) runs one branch, counted here as its costliest branch (a
training step's update, not the skipped step's copy of the old state).
"""

from __future__ import annotations

import collections
import re

FREE = frozenset({"parameter", "get-tuple-element", "tuple", "constant", "bitcast",
                  "after-all", "opt-barrier"})  # no code of their own
CONTROL = frozenset({"while", "conditional", "call"})  # counted through what they run

_HEADER = re.compile(r"^(ENTRY )?%(\S+) .*\{\s*$")
_INSTR = re.compile(r"^\s*(ROOT )?%(\S+) = (.*)$")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"')


def parse(text: str) -> dict:
    """Computations of an HLO module's text: name -> [(instruction, opcode, line)]."""
    comps, cur = {}, None
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head and not line.startswith(" "):
            cur = head.group(2)
            comps[cur] = []
        elif line.startswith("}"):
            cur = None
        elif cur is not None and (m := _INSTR.match(line)):
            comps[cur].append((m.group(2), _opcode(m.group(3)), line))
    return comps


def _opcode(rest: str) -> str:
    """The opcode after an instruction's shape (a tuple shape has parentheses of its own)."""
    i = 0
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                break
        i += 1
    else:
        i = rest.index(" ")
    m = re.match(r"\s*([a-z][\w.-]*)\(", rest[i:])
    return m.group(1) if m else "?"


def _refs(line: str, key: str) -> list:
    many = re.search(key + r"=\{([^}]*)\}", line)
    if many:
        return [s.strip().lstrip("%") for s in many.group(1).split(",")]
    one = re.search(key + r"=%([\w.\-]+)", line)
    return [one.group(1)] if one else []


def _kind(op: str, line: str) -> str:
    if op != "fusion":
        return op
    kind = re.search(r"kind=(k\w+)", line)
    return {"kLoop": "loop fusion", "kInput": "reduction fusion", "kOutput": "output fusion",
            "kCustom": "custom fusion (dot)"}.get(kind.group(1) if kind else "", "fusion")


def _count(comps: dict, name: str, out: collections.Counter) -> None:
    for _, op, line in comps[name]:
        if op in FREE:
            continue
        if op == "conditional":
            best = collections.Counter()
            for branch in _refs(line, "branch_computations") + _refs(
                    line, "true_computation") + _refs(line, "false_computation"):
                sub = collections.Counter()
                _count(comps, branch, sub)
                if sum(sub.values()) > sum(best.values()):
                    best = sub
            out["conditional"] += 1
            out.update(best)
        elif op == "call":
            _count(comps, _refs(line, "to_apply")[0], out)
        else:
            out[_kind(op, line)] += 1


def kernel_count(hlo_text: str, trip_count=None) -> dict:
    """The kernels of one iteration of a compiled program's step loop.

    Args:
      hlo_text: ``jax.jit(f).lower(...).compile().as_text()``.
      trip_count: the loop's known trip count (the steps of an epoch); None: the ``while``
        with the largest known trip count.
    Returns:
      {"trip_count": int, "kernels": the body's kernels per iteration (control flow not
      counted), "by_kind": {kind: count} ("loop fusion", "custom fusion (dot)", "copy", ...),
      "control": conditionals run per iteration}.
    Raises:
      ValueError: the text has no loop of that trip count.
    """
    comps = parse(hlo_text)
    loops = []
    for instrs in comps.values():
        for _, op, line in instrs:
            if op == "while":
                trips = _TRIPS.search(line)
                loops.append((int(trips.group(1)) if trips else 0, _refs(line, "body")[0]))
    if trip_count is not None:
        loops = [lp for lp in loops if lp[0] == trip_count]
    if not loops:
        raise ValueError(f"kernel_count: no while loop with trip count {trip_count}")
    trips, body = max(loops)
    out = collections.Counter()
    _count(comps, body, out)
    control = sum(v for k, v in out.items() if k in CONTROL)
    kinds = {k: v for k, v in sorted(out.items()) if k not in CONTROL}
    return {"trip_count": trips, "kernels": sum(kinds.values()), "by_kind": kinds,
            "control": control}


def scanned_epoch_kernels(trainer, state) -> dict:
    """:func:`kernel_count` of one ``trainer.run(state)`` (compiled, not run; nothing donated).

    Args:
      trainer: an ``fnn.Trainer``.  state: a ``TrainState`` for it.
    Returns:
      the count for the loop over the epoch's ``trainer.batches_per_epoch`` steps.
    """
    import jax

    jax.block_until_ready(trainer.data)  # placed once, outside the trace (the Trainer caches it)
    text = jax.jit(lambda s: trainer.run(s)).lower(state).compile().as_text()
    return kernel_count(text, trainer.batches_per_epoch)
