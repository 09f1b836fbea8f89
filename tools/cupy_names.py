"""Write tests/cupy_functions.json: the names CuPy provides, read from CuPy's own sources.

    python tools/cupy_names.py CUPY_GIT_DIR [TAG ...]      # default tags: v13.0.0 v14.2.0

CuPy's NumPy-compatibility table (docs/source/reference/comparison.rst) is generated when the
docs are built: docs/source/_comparison_generator.py lists ``dir(cupy)``, ``dir(cupy.ndarray)``,
``dir(cupy.random)`` ... and marks each NumPy name that CuPy has. Building CuPy needs CUDA, so
this script reads the same namespaces statically from a CuPy git checkout instead:

* ``cupy``, ``cupy.random``, ``cupy.linalg``, ``cupy.fft``, ``cupy.cuda``, ``cupy.lib``,
  ``cupy.lib.stride_tricks``: every public name the module binds (imports, ``def``, ``class``,
  assignments, and the subpackages its imports load);
* ``cupy.ndarray``: the public methods, properties and readonly attributes of ``_ndarray_base``
  and ``ndarray`` in cupy/_core/core.pyx and core.pxd;
* ``cupy.cuda.runtime``: the public ``def``/``cpdef`` functions of cupy_backends' runtime.pyx.

A name is kept only when every given tag has it, so the list is what all of those versions
provide (pyproject asks for ``cupy-cuda12x>=13``; v13.0.0 is its oldest, v14.2.0 the newest
release in the checkout used). The tests' CuPy stand-in (tests/fake_cupy.py) exposes only these.
"""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_TAGS = ("v13.0.0", "v14.2.0")
OUT = Path(__file__).resolve().parent.parent / "tests" / "cupy_functions.json"
PACKAGES = {"cupy": "cupy/__init__.py", "cupy.random": "cupy/random/__init__.py",
            "cupy.linalg": "cupy/linalg/__init__.py", "cupy.fft": "cupy/fft/__init__.py",
            "cupy.cuda": "cupy/cuda/__init__.py", "cupy.lib": "cupy/lib/__init__.py",
            "cupy.lib.stride_tricks": "cupy/lib/stride_tricks.py"}


def show(repo, tag, path):
    return subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def bound_names(source, package):
    """Public names a module binds at its top level (also inside if/try blocks).

    ``from cupy.lib._shape_base import x`` in cupy/__init__.py also binds ``cupy.lib``: importing
    a submodule sets it as an attribute of its parent package.
    """
    names = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names if a.name != "*")
                if node.level == 0 and (node.module or "").startswith(package + "."):
                    names.add(node.module[len(package) + 1:].split(".")[0])
            elif isinstance(node, ast.Import):  # `import contextlib` is a helper, not CuPy's API
                names.update(a.asname or a.name for a in node.names if a.name.startswith("cupy"))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for h in getattr(node, "handlers", []):
                    visit(h.body)
    visit(ast.parse(source).body)
    return {n for n in names if not n.startswith("_")}


def ndarray_names(core_pyx, core_pxd):
    """Public members of cupy.ndarray: def/cpdef methods, properties and readonly attributes."""
    names = set(re.findall(r"^    (?:cpdef|def)\s+(?:[\w.]+\s+)*?(\w+)\s*\(", core_pyx, re.M))
    names |= set(re.findall(r"^    property\s+(\w+)\s*:", core_pyx, re.M))
    names |= set(re.findall(r"^\s+readonly\s+[\w.]+\s+(\w+)\s*$", core_pxd, re.M))
    return {n for n in names if not n.startswith("_")}


def runtime_names(runtime_pyx):
    return {n for n in re.findall(r"^(?:cpdef|def)\s+(?:[\w.]+\s+)*?(\w+)\s*\(", runtime_pyx, re.M)
            if not n.startswith("_")}


def names_at(repo, tag):
    out = {ns: bound_names(show(repo, tag, path), ns) for ns, path in PACKAGES.items()}
    out["cupy.ndarray"] = ndarray_names(show(repo, tag, "cupy/_core/core.pyx"), show(repo, tag, "cupy/_core/core.pxd"))
    out["cupy.cuda.runtime"] = runtime_names(show(repo, tag, "cupy_backends/cuda/api/runtime.pyx"))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.exit(__doc__.split("\n\n")[1])
    repo, tags = Path(argv[0]), tuple(argv[1:]) or DEFAULT_TAGS
    per_tag = [names_at(repo, t) for t in tags]
    common = {ns: sorted(set.intersection(*(p[ns] for p in per_tag))) for ns in per_tag[0]}
    data = {
        "cupy_versions": [t.lstrip("v") for t in tags],
        "what": "public names every listed CuPy version provides, per namespace; read statically from "
                "CuPy's sources by tools/cupy_names.py (the namespaces CuPy's comparison table is generated from)",
        "source": "https://github.com/cupy/cupy at tags " + ", ".join(tags),
        "namespaces": common,
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{OUT}: " + ", ".join(f"{ns} {len(v)}" for ns, v in common.items()))


if __name__ == "__main__":
    main()
