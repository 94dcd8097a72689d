"""Data flows one way: a module imports only from its own or earlier stages (DESIGN.md)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "chattune"
STAGES = ["errors", "held_messages", "files", "labels", "tokens", "config_paths", "config", "data",
          "templates", "batching", "prepare", "model", "datacheck", "train", "outputs", "generate",
          "eval", "export", "engine", "pipeline", "compat", "cli", "__init__", "__main__"]


def stage_of(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else STAGES.index("__init__")


def test_imports_point_backwards():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        me = (".".join(rel.parts).removesuffix(".__init__")
              if rel.name == "__init__" and len(rel.parts) > 2 else ".".join(rel.parts))
        mine = stage_of(me)
        for node in ast.walk(ast.parse(path.read_text())):
            is_ours = (isinstance(node, ast.ImportFrom)
                       and (node.module or "").startswith("chattune."))
            if is_ours and stage_of(node.module) > mine:
                problems.append(f"{me} imports {node.module}")
    assert not problems, problems


def test_modules_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 500, sizes


FRONT_ENDS = ("chattune.pipeline", "chattune.compat", "chattune.cli")


def test_front_ends_share_the_engine_not_each_other():
    """`chattune train` (pipeline), SFTTrainer (compat) and the CLI each call chattune.engine; none
    leans on another front end (the CLI may call the two it exposes)."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        me = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        mine = next((f for f in FRONT_ENDS if me.startswith(f)), None)
        if mine in (None, "chattune.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            other = next((f for f in FRONT_ENDS if module and module.startswith(f) and f != mine),
                         None)
            if other:
                problems.append(f"{me} imports {module}")
    assert not problems, problems


def test_median_module_is_small():
    sizes = sorted(len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py"))
    assert sizes[len(sizes) // 2] < 200, sizes[len(sizes) // 2]


def test_functions_fit_a_screen():
    """No function in the package is over 60 lines (decorators and docstring included)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > 60:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not long, long


def test_tests_mirror_the_package():
    """A test folder is named after the package folder it tests (tests/templates/ for
    chattune/templates/)."""
    tests = PACKAGE.parent / "tests"
    folders = ({p.name for p in tests.iterdir() if p.is_dir()}
               - {"assets", "trl_suite", "__pycache__"})
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert folders and folders <= packages, folders - packages
