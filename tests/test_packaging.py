"""`pip install .` (not only editable) must ship every subpackage and every suite file."""
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def declared_packages() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_python_package_in_the_tree_is_declared():
    roots = {"llsbench": "llsbench", "methods": "llsbench_methods", "suites": "llsbench_suites"}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    assert found <= declared_packages(), f"missing from pyproject packages: {sorted(found - declared_packages())}"


def test_suite_files_ship_as_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.yaml" in config["tool"]["setuptools"]["package-data"]["llsbench_suites"]
    assert list((REPO / "suites").glob("*.yaml"))
