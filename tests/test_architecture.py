"""The pipeline stays visible: stages never import each other, only the store knows SQL."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"
STAGES = ("sources", "fetch", "parse", "clean", "dedupe", "store", "render", "serve")
SQL_PACKAGES = ("sqlmodel", "sqlalchemy", "alembic")


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _stage_of(path: Path) -> str | None:
    relative = path.relative_to(PACKAGE)
    name = relative.parts[0].removesuffix(".py")
    return name if name in STAGES else None


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = ("aggregator", *path.relative_to(PACKAGE).parent.parts)
    found: set[str] = set()
    for node in ast.walk(tree):
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
    if relative.parts[0] in ("store.py", "store", "migrations"):
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
