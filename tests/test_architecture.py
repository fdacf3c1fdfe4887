"""The pipeline stays visible: stages never import each other, only pipeline/ composes them,
only the store knows SQL, the app layer sits in its packages, and no import goes in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"
STAGES = ("sources", "fetch", "parse", "clean", "dedupe", "store", "render", "serve")
# What the app layer (cli/, daemon/) may use besides pipeline/ and config/: the store to read
# and edit state, the server, and the schedule's pure functions (a source's health).
APP_USES = ("store", "serve", "sources")
APP_LAYER = ("cli", "daemon", "config")
SQL_PACKAGES = ("sqlmodel", "sqlalchemy", "alembic")
MAX_TOP_LEVEL_MODULES = 8


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _stage_of(path: Path) -> str | None:
    relative = path.relative_to(PACKAGE)
    name = relative.parts[0].removesuffix(".py")
    return name if name in STAGES else None


def _imported_modules(path: Path, *, at_import: bool = False) -> set[str]:
    """Every module `path` imports; `at_import`: only those it imports when it is imported
    (not inside functions, nor under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = ("aggregator", *path.relative_to(PACKAGE).parent.parts)
    found: set[str] = set()
    nodes = _top_level_nodes(tree) if at_import else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package_parts[: len(package_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _top_level_nodes(tree: ast.Module) -> list[ast.stmt]:
    nodes: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.Try | ast.With):
            pending.extend(node.body)
            pending.extend(getattr(node, "orelse", []))
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
        nodes.append(node)
    return nodes


def _module_name(path: Path) -> str:
    parts = ("aggregator", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stages_imported(path: Path) -> set[str]:
    stages = set()
    for module in _imported_modules(path):
        parts = module.split(".")
        if parts[0] == "aggregator" and len(parts) > 1 and parts[1] in STAGES:
            stages.add(parts[1])
    return stages


def test_the_package_has_every_stage() -> None:
    present = {_stage_of(path) for path in _modules()}
    missing = {"sources", "parse", "clean", "dedupe", "store", "render", "serve"} - present
    assert not missing


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_stages_do_not_import_each_other(path: Path) -> None:
    stage = _stage_of(path)
    if stage is None:
        return
    others = _stages_imported(path) - {stage}
    assert not others, f"stage {stage} ({path.name}) imports stage(s) {sorted(others)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_only_the_store_imports_sql_packages(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] == "store":
        return
    sql = {module for module in _imported_modules(path) if module.split(".")[0] in SQL_PACKAGES}
    assert not sql, f"{relative} imports {sorted(sql)}: only the store may"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # Guards against a checker that silently finds nothing.
    fake = PACKAGE / "clean" / "__init__.py"
    assert "aggregator.models" in _imported_modules(fake)
    pipeline = PACKAGE / "pipeline"
    composed = set().union(*(_stages_imported(path) for path in pipeline.glob("*.py")))
    assert {"fetch", "sources", "parse", "clean", "dedupe", "store", "render"} <= composed


def test_the_top_level_holds_shared_records_only() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_only_the_pipeline_composes_stages(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    home = relative.parts[0].removesuffix(".py")
    if home == "pipeline" or home in STAGES:
        return  # the composer, and the stages (checked above)
    stages = _stages_imported(path)
    if home in APP_LAYER:
        stages -= set(APP_USES)
    assert not stages, f"{relative} uses stage(s) {sorted(stages)}: only pipeline/ composes them"


def test_no_import_goes_in_a_circle() -> None:
    graph: dict[str, set[str]] = {}
    names = {_module_name(path): path for path in _modules()}
    for name, path in names.items():
        graph[name] = {
            imported for imported in _imported_modules(path, at_import=True) if imported in names
        } - {name}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or ())


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports, if any (depth first, colouring modules as they are visited). A
    package's __init__ importing its own submodules is no circle: Python loads it first."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph[module]):
            if module.startswith(imported + "."):
                continue  # a submodule naming its own package: the package is loading it
            if state.get(imported) == "open":
                return [*stack[stack.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_cycle_finder_sees_a_circle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "a.x": {"a"}}) is None


def test_the_architecture_doc_names_every_package_and_top_level_module() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = doc.split("```")[1]
    named = {line.split()[0] for line in tree.splitlines()[2:] if line.strip()}
    present = {
        f"{path.name}/" if path.is_dir() else path.name
        for path in PACKAGE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and not path.name.startswith("__"))
    }
    assert named == present
