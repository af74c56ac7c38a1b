"""pyproject.toml admits exactly the major versions the code is tested with (Optuna 5 removed and renamed 4.x APIs;
lightning 2.6.2/2.6.3 were malicious uploads; torch must stay satisfiable by the 2.13 CPU wheel CI installs)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return {Requirement(spec).name: Requirement(spec) for spec in project["dependencies"]}


@pytest.mark.parametrize(("name", "admitted", "refused"), [
    ("optuna", ["5.0.0", "5.9.1"], ["4.5.0", "6.0.0"]),
    ("lightning", ["2.6.4", "2.6.6"], ["2.6.2", "2.6.3"]),
    ("torch", ["2.13.0"], ["3.0.0"]),
])
def test_dependency_ranges(name: str, admitted: list[str], refused: list[str]) -> None:
    spec = _requirements()[name].specifier
    assert all(spec.contains(v) for v in admitted), (name, str(spec))
    assert not any(spec.contains(v) for v in refused), (name, str(spec))


@pytest.mark.parametrize("name", ["optuna", "lightning", "torch", "transformers", "mlflow"])
def test_installed_versions_satisfy_the_ranges(name: str) -> None:
    assert _requirements()[name].specifier.contains(version(name).split("+")[0]), (name, version(name))
