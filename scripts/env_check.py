"""Stops a pipeline script early, in one line, when the Python running it lacks the project's packages.

DVC runs each stage's ``python ...`` with the first ``python`` on PATH. Started as ``.venv/bin/dvc repro``
without the environment activated, that is the system Python, and the stage would fail deep inside
papermill's import. :func:`missing_packages_message` names the interpreter and the fix instead.
Standard library only: it runs in exactly the interpreter that lacks the packages.
"""
from __future__ import annotations

import importlib.util
import sys

FIX = "activate the environment first (`source .venv/bin/activate`, created by `make setup`) or run `make report`"


def missing_packages_message(*modules: str) -> str | None:
    """One line naming this interpreter, the first of ``modules`` it cannot import and the fix; None when all import."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"error: {sys.executable} has no module {module!r} (not the project's environment): {FIX}"
    return None
