"""The installed layout: the top-level folders are subpackages of one name, `lookalike`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.support.data import REPO


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_installs_under_lookalike():
    config = _setuptools()
    found = set()
    for name, folder in config["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found.add(".".join((name, *relative)))
    assert found == set(config["packages"])
    assert all(p == "lookalike" or p.startswith("lookalike.") for p in config["packages"])


def test_the_installed_modules_import_by_their_namespaced_names():
    import lookalike.classifier.clustering.review
    import lookalike.indexer.store.catalog
    import lookalike.search
    import lookalike.webapp

    assert Path(lookalike.indexer.store.catalog.__file__) == REPO / "indexer/store/catalog.py"
    assert Path(lookalike.webapp.__file__).parent == REPO / "webapp"
    assert hasattr(lookalike.search, "open_library")
    assert hasattr(lookalike.classifier.clustering.review, "accept")
