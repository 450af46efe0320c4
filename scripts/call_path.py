#!/usr/bin/env python
"""Follow the call path of one ``fnn train``: how often does it go back into a module it is
already inside?

    python scripts/call_path.py [CONFIG] [--set KEY=VALUE ...] [--top 10]

Runs ``fnn train CONFIG --quiet`` in this process (into a temporary directory) under
``sys.setprofile`` and watches every call whose code lives in the ``fnn`` package. A call from
module A into module B is a *return* when B already has a frame lower on the stack: B called
(through A, perhaps through others) into A, and A now calls back into B, the round trip a
layered package avoids (e.g. report -> plots -> report). Such a call is either

* a *cycle*: A and B import each other (anywhere in their sources, local imports too), so
  neither is below the other; or
* a *callback*: B is above A, and A calls a function B handed down (a writer passed to
  ``fileio.atomic_write``, a transform's ``update`` run by ``optim.chain``, which then uses
  ``optim.base``'s helpers), which is how a lower layer is meant to call back.

Prints both counts, the distinct (caller, callee) module pairs, the cross-module calls in all,
and the most frequent pairs. Modules are counted by their dotted name; ``fnn.util.lazy`` (the
deferred-import machinery) is left out, as are calls inside one module.
"""

from __future__ import annotations

import argparse
import ast
import collections
import functools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE = str(ROOT / "fnn")
IGNORED = {"fnn.util.lazy"}


def _module(code) -> str | None:
    """The dotted fnn module of a code object, or None outside fnn."""
    path = code.co_filename
    if not path.startswith(PACKAGE) or not path.endswith(".py"):
        return None
    rel = Path(path).relative_to(ROOT).with_suffix("")
    name = ".".join(rel.parts)
    name = name[: -len(".__init__")] if name.endswith(".__init__") else name
    return None if name in IGNORED else name


@functools.lru_cache(maxsize=None)
def imports_of(module: str) -> frozenset:
    """The fnn modules that ``module``'s source imports (top-level and local imports; a
    ``from pkg import name`` counts ``pkg`` and ``pkg.name``)."""
    rel = Path(*module.split("."))
    path = ROOT / rel.with_suffix(".py")
    if not path.exists():
        path = ROOT / rel / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return frozenset(m for m in out if m == "fnn" or m.startswith("fnn."))


def follow(argv: list[str]) -> dict:
    """Run ``fnn`` with ``argv`` under the profiler: the counts of module re-entries."""
    from fnn.cli import main

    stack: list[str | None] = []  # the fnn module of each live Python frame (None: not fnn)
    depth = collections.Counter()  # module -> live frames of it
    returns, pairs, cross = 0, collections.Counter(), 0

    def profile(frame, event, _arg):
        nonlocal returns, cross
        if event == "call":
            mod = _module(frame.f_code)
            caller = next((m for m in reversed(stack) if m is not None), None)
            if mod is not None and caller is not None and mod != caller:
                cross += 1
                if depth[mod]:
                    returns += 1
                    pairs[(caller, mod)] += 1
            stack.append(mod)
            if mod is not None:
                depth[mod] += 1
        elif event == "return" and stack:
            mod = stack.pop()
            if mod is not None:
                depth[mod] -= 1

    sys.setprofile(profile)
    try:
        rc = main(argv)
    finally:
        sys.setprofile(None)
    return {"exit": rc, "returns": returns, "pairs": pairs, "cross_module_calls": cross}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip())
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / "quickstart.toml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cli = ["train", args.config, "--out", str(Path(tmp) / "run"), "--quiet"]
        for item in args.set:
            cli += ["--set", item]
        r = follow(cli)
    if r["exit"]:
        print(f"fnn train exited with {r['exit']}", file=sys.stderr)
        return 1
    up = {p: n for p, n in r["pairs"].items()
          if p[1] in imports_of(p[0]) and p[0] in imports_of(p[1])}
    print(f"{args.config}: {r['returns']} calls back into a module already on the stack, from"
          f" {len(r['pairs'])} (caller, callee) pairs; {sum(up.values())} of them between"
          f" modules that import each other ({len(up)} pairs), the rest callbacks; {r['cross_module_calls']} cross-module"
          f" calls in all")
    for (a, b), n in r["pairs"].most_common(args.top):
        kind = "cycle" if (a, b) in up else "callback"
        print(f"  {n:6d}  {a} -> {b}  ({kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
