"""The package's layering: data flows one way, audio -> ... -> submission -> reports.

Every ``from .x import`` / ``from ..x import`` inside ``emo_utils`` (also the lazy ones
inside functions; ``if TYPE_CHECKING:`` blocks excepted) must point to a layer at or below
the importing module's layer, as ``docs/design.md`` says.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import emo_utils

PACKAGE = Path(emo_utils.__file__).parent

#: Layer of every top-level module or sub-package (docs/design.md, "Layout").
LAYERS = {
    "_console": 0,
    "errors": 0,
    "fileio": 0,
    "locks": 0,
    "tables": 0,
    "config": 1,
    "runs": 2,
    "audio": 2,
    "metrics": 2,
    "verification": 2,
    "thresholds": 2,
    "features": 3,
    "datasets": 3,
    "data": 4,
    "tasks": 5,
    "models": 6,
    "infer": 7,
    "train": 8,
    "ensemble": 9,
    "submission": 9,
    "reports": 10,
    "endgame": 10,
    "timeline": 10,
    "pipeline": 11,
    "pipeline_demo": 11,
    "pipeline_verification": 11,
    "serving": 11,
    "cli": 12,
    "__main__": 13,
    "__init__": 13,
}


def _unit(module_parts: tuple[str, ...]) -> str:
    return module_parts[0] if module_parts else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(target unit, line)`` of every relative import outside ``TYPE_CHECKING`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                skipped.add(id(child))
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = parts[:-1]
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0 or id(node) in skipped:
            continue
        base = package[: len(package) - (node.level - 1)]
        target = (*base, *(node.module.split(".") if node.module else ()))
        if not node.module:  # from . import x
            target = (*base, node.names[0].name)
        out.append((_unit(target), node.lineno))
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_imports_a_later_stage(path):
    unit = _unit(path.relative_to(PACKAGE).with_suffix("").parts)
    assert unit in LAYERS, f"{unit} has no layer in docs/design.md / LAYERS"
    for target, line in _imports(path):
        assert target in LAYERS, f"{path.name}:{line} imports unknown unit {target}"
        assert LAYERS[target] <= LAYERS[unit], (
            f"{path.relative_to(PACKAGE)}:{line} imports {target} (layer {LAYERS[target]}) "
            f"from layer {LAYERS[unit]}: a back-edge"
        )


def test_every_unit_of_the_package_has_a_layer():
    units = {p.relative_to(PACKAGE).with_suffix("").parts[0] for p in MODULES}
    assert units <= set(LAYERS)


#: File and folder names of the run folder, which only ``runs.py`` may spell.
RUN_FOLDER_NAMES = {
    "classes.json",
    "folds.csv",
    "done.json",
    "oof.csv",
    "checkpoint.pth",
    "summary.json",
    "cv_report.json",
    "cv_report.md",
    "ensemble_report.json",
    "ensemble_report.md",
}


def _string_constants(tree: ast.AST) -> list[tuple[str, int]]:
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_runs_spells_run_folder_names(path):
    if path.name == "runs.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for value, line in _string_constants(tree):
        assert value not in RUN_FOLDER_NAMES, (
            f"{path.relative_to(PACKAGE)}:{line} spells the run-folder name {value!r}; "
            "ask emo_utils.runs.RunDir"
        )
