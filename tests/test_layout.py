"""The package's folders are its architecture: imports point only down the layer order.

Layer order (low to high); a module may import its own folder and any folder below it:

    version, util  <  nn, optim, data  <  analysis  <  engine  <  experiment  <  cli

``nn``, ``optim`` and ``data`` are one rank: siblings that never import each other. The facade
(``fnn/__init__.py``) and ``__main__`` sit above everything. The test reads every module's imports
from its AST (also the imports inside functions), so a lazy import cannot hide an upward arrow.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import conftest
from markers import slow_cases

PKG = Path(__file__).resolve().parents[1] / "fnn"
RANK = {"version": 0, "util": 0, "nn": 1, "optim": 1, "data": 1, "analysis": 2, "engine": 3,
        "experiment": 4, "cli": 5, "__main__": 6, "__init__": 6}
TOP_LEVEL_ALLOWED = {"__init__.py", "__main__.py", "version.py"}
MAX_LINES = 400  # no exceptions: a module past it holds more than one concept

# experiment/ has two halves. The pipeline trains a config and writes a run; the runs side reads a
# run back (evaluate, predict, export, compare, generate) and never imports the pipeline. Both
# use the model side: the config, building a network and its data from it, the memory estimate,
# the history's names, the pictures' common style.
EXPERIMENT_FAMILIES = {
    "model": {"config", "build", "layer_specs", "optimizer_config", "memory", "preprocessing",
              "history", "plot_style", "layer_selection"},
    "pipeline": {"runner", "cpu_devices", "chunks", "progress", "results", "report", "model_report",
                 "tensorboard_log", "curve_plots", "model_plots", "diagnostic_plots",
                 "misclassified", "lr_find", "lr_find_plot", "init_from"},
    "runs": {"rundir", "runlock", "members", "handle", "predict", "export", "compare",
             "generate", "checkpoint", "checkpoint_format", "weights", "model_summary",
             "extend"},
}
PLOTS = {"curve_plots", "model_plots", "diagnostic_plots", "misclassified", "lr_find_plot"}


def modules():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def folder(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(path: Path) -> set[str]:
    """Every fnn module/package name this file imports (``fnn.nn.losses``, ``fnn.engine``...)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "fnn"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fnn":
                out |= {f"fnn.{a.name}" for a in node.names}
            elif node.module.startswith("fnn."):
                out.add(node.module)
    return out


def target_folder(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) < 2:
        return "__init__"
    return parts[1] if parts[1] in RANK else None


def test_no_stray_top_level_modules():
    top = {p.name for p in PKG.glob("*.py")}
    assert top <= TOP_LEVEL_ALLOWED, f"top-level modules beyond the facade: {sorted(top - TOP_LEVEL_ALLOWED)}"
    assert {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"} <= set(RANK)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    here = folder(path)
    up = []
    for name in sorted(imported(path)):
        there = target_folder(name)
        assert there is not None, f"{path.relative_to(PKG)} imports unknown {name}"
        if there == here or (here == "cli" and there == "__init__"):
            continue  # own folder; the CLI is a user of the public facade
        if RANK[there] >= RANK[here]:
            up.append(f"{name} ({there}, rank {RANK[there]} >= {here}, rank {RANK[here]})")
    assert not up, f"{path.relative_to(PKG)} imports up or sideways: {up}"


def test_no_import_cycle():
    graph = {}
    for p in modules():
        rel = p.relative_to(PKG).with_suffix("")
        name = ".".join(("fnn",) + rel.parts).removesuffix(".__init__")
        graph[name] = {n for n in imported(p)}
    # resolve "from fnn.x import y" where y is a module
    names = set(graph)
    graph = {k: {d if d in names else d.rsplit(".", 1)[0] for d in v} & names - {k}
             for k, v in graph.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of concepts
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in graph[n]:
            if n.startswith(d + ".") or d == "fnn":
                continue  # a module importing its own package's facade
            if state.get(d) == 1:
                cyc = stack[stack.index(d):] + [d]
                if not all(c.startswith(d.rsplit(".", 1)[0]) for c in cyc) or True:
                    raise AssertionError(f"import cycle: {' -> '.join(cyc)}")
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_modules_are_small_and_say_what_they_hold(path):
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    rel = str(path.relative_to(PKG))
    assert ast.get_docstring(tree), f"{rel} has no module docstring stating its contract"
    lines = len(text.splitlines())
    assert lines <= MAX_LINES, f"{rel}: {lines} lines (> {MAX_LINES}); split it"


def test_no_private_names_across_modules():
    bad = []
    for p in modules():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fnn"):
                bad += [f"{p.relative_to(PKG)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id.endswith(("_mod", "runner", "config", "report", "exp",
                                                "checkpoint", "trainer"))):
                bad.append(f"{p.relative_to(PKG)}: {node.value.id}.{node.attr}")
    assert not bad, f"private names used across modules: {bad}"


TESTS = Path(__file__).resolve().parent
TEST_FOLDERS_BEYOND_PACKAGE = {"e2e": "end to end through the CLI and the README",
                               "scripts": "the benchmark scripts under scripts/"}


def test_tests_mirror_the_package():
    """tests/ is laid out like fnn/: one folder per package folder (tests/nn for fnn/nn, ...),
    plus e2e/ and scripts/; only this file, the conftest and the shared helpers sit at the top."""
    package = {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders == package | set(TEST_FOLDERS_BEYOND_PACKAGE), (
        f"tests/ folders {sorted(folders)}; expected fnn/'s {sorted(package)} plus "
        f"{sorted(TEST_FOLDERS_BEYOND_PACKAGE)}")
    stray = sorted(p.name for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    assert not stray, f"test modules at the top of tests/: {stray}; put each in its package folder"


def experiment_imports(name: str) -> set[str]:
    """The experiment modules (first name below fnn.experiment) that ``name`` imports."""
    path = PKG / "experiment" / name
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    out = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[:2] == ["fnn", "experiment"]:
                    out |= {parts[2]} if len(parts) > 2 else {a.name for a in node.names}
    return out - {name}


def test_every_experiment_module_is_in_one_family():
    found = {p.stem for p in (PKG / "experiment").glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in (PKG / "experiment").iterdir()
              if p.is_dir() and (p / "__init__.py").exists()}
    placed = [m for fam in EXPERIMENT_FAMILIES.values() for m in fam]
    assert len(placed) == len(set(placed)), "a module is in two families"
    assert found == set(placed), (f"unplaced: {sorted(found - set(placed))}; "
                                  f"gone: {sorted(set(placed) - found)}")


@pytest.mark.parametrize("name", sorted(EXPERIMENT_FAMILIES["runs"]))
def test_the_runs_side_never_imports_the_pipeline(name):
    bad = experiment_imports(name) & EXPERIMENT_FAMILIES["pipeline"]
    assert not bad, f"experiment/{name} (runs side) imports the pipeline: {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(EXPERIMENT_FAMILIES["model"]))
def test_the_model_side_imports_neither_half(name):
    bad = experiment_imports(name) & (EXPERIMENT_FAMILIES["pipeline"] | EXPERIMENT_FAMILIES["runs"])
    assert not bad, f"experiment/{name} (model side) imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_pictures_never_return_to_the_report(name):
    bad = experiment_imports(name) & {"report", "runner", "results", "chunks"}
    assert not bad, f"experiment/{name} (a picture) imports {sorted(bad)}"


# --- the suite's own plumbing: slow tests collected first, slow_cases marks what it names ---


class _Item:
    def __init__(self, name, slow):
        self.name, self.slow = name, slow

    def get_closest_marker(self, name):
        return object() if (name == "slow" and self.slow) else None


def test_slow_items_come_first_in_their_collected_order():
    items = [_Item("a", False), _Item("b", True), _Item("c", False), _Item("d", True)]
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.name for i in items] == ["b", "d", "a", "c"]


def _is_slow(case):
    return any(m.name == "slow" for m in getattr(case, "marks", ()))


@pytest.mark.parametrize("values,slow,want", [
    (["mlp", "gpt", "lstm"], {"gpt"}, [False, True, False]),
    ([5, 33000], {33000}, [False, True]),
    ([("gpt", 1), ("rnn", 2)], {"gpt"}, [True, False]),
])
def test_slow_cases_marks_the_named_cases_only(values, slow, want):
    got = slow_cases(values, slow)
    assert [_is_slow(c) for c in got] == want
    assert [tuple(c.values) if _is_slow(c) else c for c in got] == \
        [v if isinstance(v, tuple) else ((v,) if s else v) for v, s in zip(values, want)]


def test_slow_cases_refuses_a_name_that_is_not_a_case():
    with pytest.raises(ValueError, match=r"slow_cases: \['cnn'\] are not among the cases"):
        slow_cases(["mlp"], {"cnn"})
