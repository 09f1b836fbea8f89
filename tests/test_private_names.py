"""A leading underscore means "this file only": no module of minirso uses another module's private names.

The oracle is the source itself, read with ``ast``: every ``from X import _name`` and every
``X._name`` where X is an imported minirso module is a violation (dunder names excepted).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minirso"


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(package=PACKAGE):
    """[(file, line, what)] of every use of another minirso module's private name."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        modules = set()  # names bound to minirso modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                internal = node.level > 0 or (node.module or "").startswith("minirso")
                for alias in node.names:
                    if internal and _private(alias.name):
                        found.append((path.name, node.lineno, f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
                    elif internal:
                        modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("minirso"):
                        modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in modules):
                found.append((path.name, node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_no_module_uses_another_modules_private_names():
    assert private_imports() == []


def test_the_scan_finds_a_private_import(tmp_path):
    (tmp_path / "a.py").write_text("from .b import _helper\nfrom . import c\nx = c._secret\nfrom .d import public\n")
    assert private_imports(tmp_path) == [("a.py", 1, "from .b import _helper"), ("a.py", 3, "c._secret")]
