"""What a package and a deployment need: declared dependencies, a documented .env, and code that passes ruff."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"config", "bot", "membership", "segments", "webhooks", "campaigns", "miniprogram_api", "console", "siyu",
               "tests", "bench"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported_modules() -> dict[str, str]:
    """Top-level module → a file importing it, over every Python file of the repository."""
    found = {}
    for path in REPO.rglob("*.py"):
        if {".venv", "var", "build"} & set(path.relative_to(REPO).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_third_party_module_imported_anywhere_is_declared():
    project = _pyproject()["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    dists = packages_distributions()
    # when every import of the repository is traced to the distribution that provides it
    missing = {}
    for module, where in _imported_modules().items():
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module == "__future__":
            continue
        provided_by = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not provided_by & declared:
            missing[module] = where
    # then each is a dependency of pyproject.toml (not merely a dependency of a dependency)
    assert missing == {}


def test_the_license_is_a_pep_639_expression_with_its_file():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License\n")


def test_env_example_documents_every_setting():
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(SIYU_[A-Z0-9_]+)=", text, re.M))
    # then every setting Siyu reads is there, and nothing that Siyu does not read
    assert documented == {f"SIYU_{name.upper()}" for name in Settings.model_fields}


def test_the_code_passes_ruff():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
