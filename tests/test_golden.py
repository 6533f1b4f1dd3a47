"""Our generators against outputs computed by the official ASAPNet and pix2pixHD code (no official code needed).

Each golden file (format: ``MANIFEST.md`` beside them) holds a randomly initialised official
generator's state dict in the official key layout, an input and the official output. The state
dict goes through :mod:`lib.models.official` into our generator, built from the file's config.

Where the files are: ``--golden DIR`` or ``$ASAPNET_GOLDEN`` (:data:`lib.paths.GOLDEN_ENV`;
``.ci/run`` points it at ``../shared/golden``). Without either the tests are skipped on a
developer machine and fail under ``CI=true``. Every file is checked against
``tests/golden.sha256`` before it is read.

Tolerances. The files were made on another CPU: there, our reference path matched the official
output exactly and pix2pixHD too. Float32 convolutions and GEMMs sum in an order that depends on
the CPU's vector width (oneDNN/MKL pick the kernel at run time), so on another CPU the official
code itself does not reproduce its own golden output bit for bit (on a 2-core AVX-512 EPYC:
ASAPNet up to 9.8e-7, pix2pixHD 6e-8; our reference path 9.8e-7, our pix2pixHD 6e-8, i.e. the
same). Hence: reference path within :data:`REFERENCE_ATOL` (about 30 float32 ulps at 1.0; the
outputs' standard deviations are 0.08-0.76, so a wrong key mapping or layer is off by orders of
magnitude more), fast path within :data:`FAST_ATOL`, pix2pixHD within :data:`PIX2PIXHD_ATOL`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lib.data.fetch import read_checksums, sha256_file
from lib.data.transforms import one_hot
from lib.models import build
from lib.models.official import convert_official_asapnet, convert_official_pix2pixhd
from lib.paths import GOLDEN_ENV

CHECKSUMS = Path(__file__).with_name("golden.sha256")
ASAPNET_FILES = ("asapnet_official_facades128.pt", "asapnet_official_tent256.pt", "asapnet_official_cityscapes256x512.pt")
PIX2PIXHD_FILES = ("pix2pixhd_official_cityscapes128x256.pt",)
REFERENCE_ATOL = 4e-6  # max |ours - official|, impl="reference" (module docstring: CPU-dependent summation order)
FAST_ATOL = 1e-5  # impl="fast": a different summation order by design
PIX2PIXHD_ATOL = 1e-6
MIN_OUTPUT_STD = 0.05  # a near-constant golden output would make any comparison pass


@pytest.fixture(scope="session")
def golden_dir(request: pytest.FixtureRequest) -> Path:
    """The folder of golden files: ``--golden`` wins over ``$ASAPNET_GOLDEN``."""
    value = request.config.getoption("--golden") or os.environ.get(GOLDEN_ENV)
    if not value:
        msg = (f"golden outputs of the official generators not configured: set ${GOLDEN_ENV} (or pass --golden DIR) "
               f"to the folder holding {', '.join(read_checksums(CHECKSUMS))} (the shared golden/ folder)")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.fail(f"golden folder {path} (from {'--golden' if request.config.getoption('--golden') else '$' + GOLDEN_ENV}) "
                    "is not a folder")
    return path


_CACHE: dict[Path, dict] = {}  # loaded files, by path


def _load(golden_dir: Path, name: str) -> dict:
    """Checks ``name`` against tests/golden.sha256, then loads it (weights only)."""
    path = golden_dir / name
    if path not in _CACHE:
        if not path.is_file():
            pytest.fail(f"golden file missing: {path}")
        expected = read_checksums(CHECKSUMS)[name]
        actual = sha256_file(path)
        if actual != expected:
            pytest.fail(f"golden file {path}: sha256 {actual} != {expected} (tests/golden.sha256)")
        _CACHE[path] = torch.load(path, map_location="cpu", weights_only=True)
    return _CACHE[path]


def _inputs(d: dict, label_nc: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    onehot = one_hot(d["label_ids"].long(), label_nc)  # (1, label_nc, H, W)
    edge = d["instance_edge"]
    return onehot, (None if edge is None else edge.float())  # edge: (1, 1, H, W)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("name", ASAPNET_FILES + PIX2PIXHD_FILES)
def test_golden_file_checksum_and_contents(golden_dir, name):
    d = _load(golden_dir, name)
    assert {"official_state_dict", "label_ids", "instance_edge", "official_output", "config"} <= set(d)
    cfg = json.loads(d["config"])
    _, _, h, w = d["official_output"].shape
    assert tuple(d["label_ids"].shape) == (1, h, w) and int(d["label_ids"].max()) < cfg["label_nc"]
    assert (d["instance_edge"] is not None) == cfg["use_instance_edge"]
    assert float(d["official_output"].std()) > MIN_OUTPUT_STD


def test_checksum_mismatch_names_the_file(tmp_path):
    name = ASAPNET_FILES[0]
    (tmp_path / name).write_bytes(b"not the golden file")
    with pytest.raises(pytest.fail.Exception, match=name):
        _load(tmp_path, name)


@pytest.mark.parametrize("name", ASAPNET_FILES)
@pytest.mark.parametrize("impl, atol", [("reference", REFERENCE_ATOL), ("fast", FAST_ATOL)])
def test_asapnet_matches_official_output(golden_dir, name, impl, atol, record_property):
    d = _load(golden_dir, name)
    cfg = json.loads(d["config"])
    model = build("asapnet", cfg).eval()
    model.load_state_dict(convert_official_asapnet(d["official_state_dict"]), strict=True)
    onehot, edge = _inputs(d, cfg["label_nc"])
    with torch.inference_mode():
        out = model(onehot, edge, impl=impl)  # (1, 3, H, W)
    diff = _max_diff(out, d["official_output"])
    record_property("max_abs_diff", diff)
    assert diff <= atol, f"{name} impl={impl}: max |ours - official| = {diff:.3g} > {atol:g}"


@pytest.mark.parametrize("name", PIX2PIXHD_FILES)
def test_pix2pixhd_matches_official_output(golden_dir, name, record_property):
    d = _load(golden_dir, name)
    cfg = json.loads(d["config"])
    model = build("pix2pixhd", cfg).eval()
    model.load_state_dict(convert_official_pix2pixhd(d["official_state_dict"]), strict=True)
    onehot, edge = _inputs(d, cfg["label_nc"])
    with torch.inference_mode():
        out = model(onehot, edge)  # (1, 3, H, W)
    diff = _max_diff(out, d["official_output"])
    record_property("max_abs_diff", diff)
    assert diff <= PIX2PIXHD_ATOL, f"{name}: max |ours - official| = {diff:.3g} > {PIX2PIXHD_ATOL:g}"
