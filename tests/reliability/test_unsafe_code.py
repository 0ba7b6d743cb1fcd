"""Nothing in the package can run code it is sent: no pickle (nor marshal, shelve, dill), no
eval, exec or compile, and no YAML loader but the safe one.

The package is read as Python syntax trees, not as text, so a docstring saying "never
pickle" is not a finding, and an import hidden in a function is. This test is static and
fast: it runs in the default suite as well as under ``-m reliability``.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import treadle

from .ledger import emit_line

PACKAGE = Path(treadle.__file__).parent
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
UNSAFE_YAML = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "UnsafeLoader",
    "FullLoader",
    "CLoader",
}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}
GENERATOR = ("core/records.py", "generated_function")
"""The one function that runs text as code: it defines the functions the package generates at
import from its own class definitions (a record class's ``__init__``, the history
events' JSON encoders), as :mod:`dataclasses` does; see
test_generated_code_is_made_at_import_from_class_definitions."""


def _findings(source: str, where: str) -> list[str]:
    """What in ``source`` (a module's text, ``where`` names it) can run code it is sent."""
    tree = ast.parse(source, filename=where)
    found: list[str] = []
    allowed: set[int] = set()  # (the line of the one exec in GENERATOR)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and (where, node.name) == GENERATOR:
            allowed |= {
                call.lineno
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "exec"
            }

    def note(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    note(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in UNSAFE_MODULES:
                note(node, f"from {node.module} import ...")
            if module == "yaml":
                for alias in node.names:
                    if alias.name in UNSAFE_YAML:
                        note(node, f"from yaml import {alias.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            sanctioned = isinstance(func, ast.Name) and func.id == "exec" and node.lineno in allowed
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS and not sanctioned:
                note(node, f"{func.id}(...)")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "yaml"
                and func.attr in UNSAFE_YAML
            ):
                loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                safe = isinstance(loader, ast.Attribute) and loader.attr in SAFE_LOADERS
                if func.attr not in {"load", "load_all"} or not safe:
                    note(node, f"yaml.{func.attr}(...) without a safe loader")
    return found


def test_the_package_never_unpickles_evaluates_or_loads_unsafe_yaml() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, f"only {len(files)} modules found under {PACKAGE}"
    findings = [
        f for path in files for f in _findings(path.read_text(), str(path.relative_to(PACKAGE)))
    ]
    line = json.dumps(
        {"test": "unsafe_code", "modules_read": len(files), "findings": len(findings)}
    )
    emit_line(line)
    assert findings == [], "\n".join(findings)


def test_the_check_finds_what_it_looks_for() -> None:
    # the checker itself, on a module holding each finding once (and one safe YAML load)
    text = (
        "import pickle\nfrom marshal import loads\nimport yaml\n"
        "eval('1')\nexec('x = 1')\nyaml.load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
        "yaml.unsafe_load(s)\n"
    )
    found = _findings(text, "sample.py")
    assert len(found) == 6, found


def test_generated_code_is_made_at_import_from_class_definitions() -> None:
    # generated_function is called only by the two generators, each at import, from a
    # module-level loop or decorator over the package's own classes
    callers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            for call in ast.walk(func):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "generated_function"
                ):
                    callers.append((str(path.relative_to(PACKAGE)), func.name))
    assert sorted(callers) == [
        ("core/history.py", "_json_encoder"),
        ("core/records.py", "_init_of"),
    ]
    # ... and the generators take classes, nothing else
    from treadle.core import history
    from treadle.core.records import _init_of

    for generator in (_init_of, history._json_encoder):
        assert list(inspect.signature(generator).parameters) == ["cls"]
