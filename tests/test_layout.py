"""The package's architecture holds: layers only import downwards, no circle, no private names across modules,
modules of one idea (ltxic/README.md draws the layers; pyproject.toml's [tool.importlinter] writes them down)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ltxic"
MAX_LINES = 700
# Modules allowed past MAX_LINES, each with the reason it is still one idea.
LONG_MODULES: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_import_contracts_hold() -> None:
    """lint-imports checks the layer order and that no package's modules import each other in a circle."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports (the import-linter package, in the test extra) is not installed"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout


def test_the_contract_names_every_subpackage() -> None:
    """A new subpackage must be placed in a layer, or the contract would not see it."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    subpackages = {f"ltxic.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages <= named, sorted(subpackages - named)


def _private_imports(path: Path) -> list[str]:
    """``from ltxic.x import _name`` and ``module._name`` on an imported ltxic module, from another module."""
    me = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ltxic") and node.module != me:
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{me}:{node.lineno} imports {node.module}.{a.name}")
                elif f"{node.module}.{a.name}".startswith("ltxic."):
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ltxic") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{me}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    found = [hit for p in _modules() for hit in _private_imports(p)]
    found += [hit for p in sorted((ROOT / "benchmarks").glob("*.py")) for hit in _private_imports(p)]
    assert not found, "\n".join(found)


def test_modules_hold_one_idea() -> None:
    long = {_module_name(p): n for p in _modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    unexplained = {m: n for m, n in long.items() if m not in LONG_MODULES}
    assert not unexplained, f"modules past {MAX_LINES} lines (split them by idea): {unexplained}"


def test_each_subpackage_says_what_it_offers() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 10, f"{init.relative_to(ROOT)}: say in a few lines what this stage does"


@pytest.mark.parametrize("broken", ["upward", "circle"])
def test_the_checks_catch_a_violation(tmp_path: Path, broken: str) -> None:
    """The contracts are not vacuous: a copy of the package with one bad import fails them."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe
    shutil.copytree(PACKAGE, tmp_path / "ltxic", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if broken == "upward":  # the data layer reaching up to the trainer
        target, line = tmp_path / "ltxic/data/captions.py", "\nfrom ltxic.training import trainer  # noqa\n"
    else:  # two io modules importing each other
        target, line = tmp_path / "ltxic/io/figures.py", "\nfrom ltxic.io import media  # noqa\n"
        (tmp_path / "ltxic/io/media.py").write_text((tmp_path / "ltxic/io/media.py").read_text()
                                                    + "\nfrom ltxic.io import figures  # noqa\n")
    target.write_text(target.read_text() + line)
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    verdicts = {line.split(" > ")[0].split(" among")[0]: line.rstrip().endswith("BROKEN")
                for line in proc.stdout.splitlines() if line.rstrip().endswith(("KEPT", "BROKEN"))}
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if broken == "upward":
        assert verdicts["Layers: cli"], proc.stdout
    else:
        assert verdicts == {"Layers: cli": False, "No circle": True}, proc.stdout
