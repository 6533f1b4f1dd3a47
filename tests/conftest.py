"""Shared fixtures.

Real data and weights come from the mirrors named by ``$ASAPNET_DATA`` and
``$ASAPNET_WEIGHTS`` (``.ci/run`` sets both). Tests that need them are skipped when the
variables are unset on a developer machine, and fail under ``CI=true`` so CI cannot pass
by skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests share two cores; keeps timings stable


def _mirror(env: str) -> Path:
    value = os.environ.get(env)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"${env} must be set in CI (see .ci/run)")
        pytest.skip(f"${env} not set: real-data test skipped")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"${env}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """The local data mirror (layout: bsd68/, set12/, cbsd68/, train400/, cbsd432/, facades/, cityscapes_subset/)."""
    return _mirror("ASAPNET_DATA")


@pytest.fixture(scope="session")
def weights_mirror() -> Path:
    """The local weights mirror (layout: pt_inception-...pth, dncnn/cszn_DnCNN/model/..., dncnn/KAIR/...)."""
    return _mirror("ASAPNET_WEIGHTS")
