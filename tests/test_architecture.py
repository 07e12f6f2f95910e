"""The architecture as a test: no import cycle anywhere in the tree (module-level or function-level
imports alike), perfmodel's subpackages import only downward (specs ← latency, specdec ← optimize),
and no package imports upward (cli → {profiler, calibration, plots} → perfmodel)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("perfmodel", "profiler", "calibration", "plots", "cli")
# who may import whom, by top-level package (perfmodel's jsonsafe/__init__ count as perfmodel)
ALLOWED = {"perfmodel": {"perfmodel"}, "profiler": {"perfmodel", "profiler"},
           "calibration": {"perfmodel", "calibration"}, "plots": {"perfmodel", "plots"},
           "cli": set(PACKAGES)}
# perfmodel subpackages: what each may import ('' = perfmodel's top-level modules)
SUB_ALLOWED = {"specs": {"specs", ""}, "latency": {"latency", "specs", ""},
               "specdec": {"specdec", "specs", ""},
               "optimize": {"optimize", "specdec", "latency", "specs", ""},
               "serving": {"serving", "specdec", "latency", "specs", ""},
               "data_build": {"data_build", "latency", "specs", ""}, "": {""}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (absolute and relative), resolved to module names."""
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    out = {m.removeprefix("specperf.") for m in out}  # the distribution's namespace (pyproject.toml)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def graph(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    mods = {module_name(f): f for f in files}
    return {m: {i for i in imports_of(f) if i in mods and i != m} for m, f in mods.items()}


def find_cycle(g: dict[str, set[str]]):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(g):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def _sub(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) >= 2 and (ROOT / "perfmodel" / parts[1]).is_dir() else ""  # else a top module


def test_no_import_cycle_anywhere_in_the_tree():
    """Over every package at once (perfmodel, profiler, calibration, plots, cli), function-level
    imports included: a cycle between two cli modules (operator_cmd ↔ profile_cmds) counts too."""
    files = {module_name(f): f for package in PACKAGES for f in sorted((ROOT / package).rglob("*.py"))}
    g = {m: {i for i in imports_of(f) if i in files and i != m and not (ROOT / Path(*i.split("."))).is_dir()}
         for m, f in files.items()}
    assert find_cycle(g) is None, " → ".join(find_cycle(g))
    assert "cli.measuring" in g["cli.operator_cmd"] and "cli.profile_cmds" not in g["cli.operator_cmd"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_upward_import_between_packages(package):
    bad = [(module_name(f), i) for f in sorted((ROOT / package).rglob("*.py")) for i in imports_of(f)
           if i.split(".")[0] not in ALLOWED[package]]
    assert not bad, bad


def test_perfmodel_subpackages_import_only_downward():
    bad = []
    for f in sorted((ROOT / "perfmodel").rglob("*.py")):
        me = _sub(module_name(f))
        for i in imports_of(f):
            if i.startswith("perfmodel") and _sub(i) not in SUB_ALLOWED[me]:
                bad.append((module_name(f), i))
    assert not bad, bad


def test_the_checker_finds_planted_cycles_and_upward_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    planted = ROOT / "perfmodel" / "specs" / "_planted_probe.py"
    planted.write_text("def f():\n    from specperf.perfmodel.optimize import search\n    from specperf.cli import main\n")
    try:
        mods = imports_of(planted)
        assert "perfmodel.optimize.search" in mods and "cli" in mods
        assert _sub(module_name(planted)) == "specs" and _sub("perfmodel.optimize.search") == "optimize"
    finally:
        planted.unlink()



def bare_imports(source: str) -> list[str]:
    """Absolute imports of a package by its bare folder name (`import perfmodel`, `from cli import x`)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        out += [n for n in names if n.split(".")[0] in PACKAGES]
    return out


def test_every_import_of_the_packages_goes_through_the_namespace():
    """The packages install as specperf.<folder>; a bare `import perfmodel` in a checkout would load a
    second copy of every module it touches (two LatencyTable classes), so nothing in the tree uses one."""
    tops = ("specperf",) + PACKAGES + ("scripts", "tests", "studies", "notebooks", "evidence")
    bad = [(str(f.relative_to(ROOT)), b) for top in tops for f in sorted((ROOT / top).rglob("*.py"))
           for b in bare_imports(f.read_text())]
    assert bad == []
    assert bare_imports("def f():\n    from perfmodel.specs import catalog\n    import cli.main\n") == \
        ["perfmodel.specs", "cli.main"]  # the check can fire
    assert bare_imports("from specperf.perfmodel import specs\nfrom . import x\n") == []
