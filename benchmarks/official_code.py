"""Builds the official ASAPNet and pix2pixHD generators from local checkouts, through their own option parsers.

Nothing of the official code is part of this project: it is read from local checkouts named by
environment variables (or arguments):

- ``ASAPNET_OFFICIAL_REPO``: https://github.com/tamarott/ASAPNet (``options.test_options``,
  ``models.networks.define_G``);
- ``PIX2PIXHD_OFFICIAL_REPO``: https://github.com/NVIDIA/pix2pixHD (``options.test_options``,
  ``models.networks.define_G``);
- ``SYNC_BN_REPO``: https://github.com/vacancy/Synchronized-BatchNorm-PyTorch (``sync_batchnorm``,
  which ASAPNet imports as ``models.networks.sync_batchnorm``; not needed when the ASAPNet
  checkout already has that folder).

Runtime shims, none of which edits an official file:

- both repositories have top-level packages named ``models``, ``options``, ``util`` and
  ``data``: :class:`RepoImports` swaps each repository's modules in and out of ``sys.modules``
  (and its folder in and out of ``sys.path``), so both live in one process;
- ASAPNet's ``models.networks.sync_batchnorm`` is the ``sync_batchnorm`` package of
  ``SYNC_BN_REPO`` registered under that name;
- ``dill`` (ASAPNet's ``util.util``) and ``dominate`` (both ``util.html``/visualizers) are
  stood in for by empty modules when they are not installed: only option files and HTML pages
  use them, never a generator;
- the option parsers read ``sys.argv``: it is replaced for the call; ``--gpu_ids -1`` selects
  the CPU; pix2pixHD's parser creates ``checkpoints_dir/name``, pointed at a temporary folder;
- the official test scripts load trained weights inside the model wrapper (``Pix2PixModel``,
  ``InferenceModel``), which also moves inputs to CUDA: the generator is built with the same
  ``define_G`` call the wrapper makes, and weights are set by the caller.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from lib.models.asapnet import LOWRES_ROWS
from lib.models.lowres import split_tile

__all__ = [
    "ASAPNET_REPO_ENV",
    "PIX2PIXHD_REPO_ENV",
    "SYNC_BN_REPO_ENV",
    "OfficialCodeMissing",
    "OfficialRepos",
    "resolve_repos",
    "missing_message",
    "RepoImports",
    "OfficialCode",
    "asapnet_argv",
    "pix2pixhd_argv",
    "randomise_",
]

ASAPNET_REPO_ENV = "ASAPNET_OFFICIAL_REPO"
PIX2PIXHD_REPO_ENV = "PIX2PIXHD_OFFICIAL_REPO"
SYNC_BN_REPO_ENV = "SYNC_BN_REPO"

# variable -> (repository, command-line option, a file that proves the checkout)
_REPOS = {
    ASAPNET_REPO_ENV: ("tamarott/ASAPNet", "--asapnet-repo", "models/networks/generator.py"),
    PIX2PIXHD_REPO_ENV: ("NVIDIA/pix2pixHD", "--pix2pixhd-repo", "models/networks.py"),
    SYNC_BN_REPO_ENV: ("vacancy/Synchronized-BatchNorm-PyTorch", "--sync-bn-repo", "sync_batchnorm/__init__.py"),
}
_TOP_LEVEL = ("models", "options", "util", "data")  # package names both official repositories use
_SYNC_BN_IN_ASAPNET = "models/networks/sync_batchnorm/__init__.py"  # where ASAPNet's README puts it


class OfficialCodeMissing(RuntimeError):
    """A local checkout of an official repository is not configured or not valid."""


@dataclass(frozen=True)
class OfficialRepos:
    """Folders of the local checkouts; ``sync_bn`` is None when ASAPNet already contains it."""

    asapnet: Path
    pix2pixhd: Path
    sync_bn: Path | None


def missing_message(problems: Mapping[str, str]) -> str:
    """The message for unusable checkouts: per variable, the repository to clone and the problem.

    Args:
        problems: environment variable -> what is wrong (e.g. "not set").
    """
    lines = ["this benchmark needs local checkouts of the official code (never copied into this project):"]
    for env, problem in problems.items():
        repo, option, _ = _REPOS[env]
        lines.append(f"  {env} ({problem}): git clone https://github.com/{repo}, then "
                     f"export {env}=/path/to/{repo.split('/')[1]}  (or {option} PATH)")
    if SYNC_BN_REPO_ENV in problems:
        lines.append(f"  (ASAPNet imports models.networks.sync_batchnorm, the sync_batchnorm folder of "
                     f"vacancy/Synchronized-BatchNorm-PyTorch in the SPADE set-up it inherits; {SYNC_BN_REPO_ENV} "
                     f"is not needed when the ASAPNet checkout has {_SYNC_BN_IN_ASAPNET.rsplit('/', 1)[0]}/)")
    return "\n".join(lines)


def resolve_repos(
    asapnet: str | os.PathLike | None = None,
    pix2pixhd: str | os.PathLike | None = None,
    sync_bn: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> OfficialRepos:
    """Finds the checkouts: an argument wins over its environment variable.

    Raises:
        OfficialCodeMissing: one or more are unset or not a checkout (:func:`missing_message`).
    """
    env = os.environ if environ is None else environ
    given = {ASAPNET_REPO_ENV: asapnet, PIX2PIXHD_REPO_ENV: pix2pixhd, SYNC_BN_REPO_ENV: sync_bn}
    found: dict[str, Path | None] = {}
    problems: dict[str, str] = {}
    for name, value in given.items():
        value = value or env.get(name) or None
        found[name] = None
        if value is None:
            problems[name] = "not set"
            continue
        path = Path(value).expanduser()
        marker = _REPOS[name][2]
        if not (path / marker).is_file():
            problems[name] = f"{path} has no {marker}"
            continue
        found[name] = path.resolve()
    asap = found[ASAPNET_REPO_ENV]
    if asap is not None and (asap / _SYNC_BN_IN_ASAPNET).is_file():
        problems.pop(SYNC_BN_REPO_ENV, None)  # the checkout carries its own copy
        found[SYNC_BN_REPO_ENV] = None
    if problems:
        raise OfficialCodeMissing(missing_message(problems))
    return OfficialRepos(asap, found[PIX2PIXHD_REPO_ENV], found[SYNC_BN_REPO_ENV])  # type: ignore[arg-type]


def _is_repo_module(name: str) -> bool:
    return name.split(".", 1)[0] in _TOP_LEVEL


class RepoImports:
    """Context in which ``import models`` (``options``, ``util``, ``data``) means one repository's.

    On entry, modules of those names (another repository's) are set aside, this repository's
    earlier modules are put back and its folder is put first on ``sys.path``; on exit the
    reverse. Objects built inside keep working outside: their functions hold their own module
    globals.

    Args:
        root: the repository folder.
        aliases: extra ``sys.modules`` entries while inside (name -> module).
    """

    def __init__(self, root: Path, aliases: Mapping[str, types.ModuleType] | None = None) -> None:
        self.root = str(root)
        self.aliases = dict(aliases or {})
        self._own: dict[str, types.ModuleType] = {}
        self._others: dict[str, types.ModuleType] = {}
        self._shadowed: dict[str, types.ModuleType | None] = {}

    def __enter__(self) -> "RepoImports":
        self._others = {n: sys.modules.pop(n) for n in list(sys.modules) if _is_repo_module(n)}
        self._shadowed = {n: sys.modules.get(n) for n in self.aliases if not _is_repo_module(n)}
        sys.modules.update(self._own)
        sys.modules.update(self.aliases)
        sys.path.insert(0, self.root)
        return self

    def __exit__(self, *exc) -> None:
        self._own = {n: sys.modules.pop(n) for n in list(sys.modules) if _is_repo_module(n)}
        sys.modules.update(self._others)
        for name, previous in self._shadowed.items():  # stand-ins leave no trace outside
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        if self.root in sys.path:
            sys.path.remove(self.root)


def _stand_in_modules() -> dict[str, types.ModuleType]:
    """Empty modules for optional dependencies that generator construction never uses."""
    out = {}
    for name in ("dill", "dominate", "dominate.tags"):
        try:
            __import__(name)
        except ImportError:
            out[name] = types.ModuleType(name)
    if "dill" in out:  # ASAPNet's util.util: ``import dill as pickle`` (option files only)
        import pickle

        out["dill"].__dict__.update({k: getattr(pickle, k) for k in ("dump", "load", "HIGHEST_PROTOCOL")})
    if "dominate" in out:
        out["dominate"].tags = out["dominate.tags"]  # type: ignore[attr-defined]
        out["dominate.tags"].__all__ = []  # ``from dominate.tags import *``
    return out


@contextlib.contextmanager
def _argv(argv: Sequence[str]) -> Iterator[None]:
    old = sys.argv
    sys.argv = ["test.py", *argv]
    try:
        yield
    finally:
        sys.argv = old


_ASAPNET_OPTIONS = ("lr_width", "lr_max_width", "lr_depth", "hr_width", "hr_depth")
_PIX2PIXHD_OPTIONS = {"ngf": "--ngf", "n_downsampling": "--n_downsample_global", "n_blocks": "--n_blocks_global",
                      "norm": "--norm"}


def asapnet_argv(cfg: Mapping, width: int, init_variance: float = 0.5) -> list[str]:
    """Official ASAPNet test-script options for our ``ASAPNetConfig`` fields ``cfg`` at ``width``.

    ``--dataset_mode cityscapes`` (instance edges to the low-res stream only, as ours);
    ``crop_size`` = width and ``aspect_ratio`` = width / height give the official tile size
    ``crop_size / (16 aspect_ratio) = height / 16``; the other fields have the same names as the
    official options. ``init_variance`` is the xavier gain of the official init.
    ``--learned_ds_factor`` is always given, derived as ours when unset (:func:`split_tile`).

    Raises:
        ValueError: a field the official options cannot express.
    """
    height = int(cfg["height"])
    argv = ["--gpu_ids", "-1", "--batchSize", "1", "--dataset_mode", "cityscapes",
            "--crop_size", str(width), "--load_size", str(width), "--aspect_ratio", repr(width / height),
            "--init_variance", repr(init_variance),
            "--learned_ds_factor", str(split_tile(height // LOWRES_ROWS, cfg.get("learned_ds_factor"))[0])]
    for key, value in cfg.items():
        if key == "label_nc":
            argv += ["--label_nc", str(value)]
        elif key == "use_instance_edge":
            argv += [] if value else ["--no_instance_edge"]
        elif key in _ASAPNET_OPTIONS:
            argv += [f"--{key}", str(value)]
        elif key == "hr_coor" and value != "cosine":  # the official default; "none" has no working option
            raise ValueError(f"hr_coor={value!r}: only the official default 'cosine' is supported")
        elif key not in ("height", "init_gain", "hr_coor", "learned_ds_factor"):
            raise ValueError(f"ASAPNet config field {key!r} has no official option")
    return argv


def pix2pixhd_argv(cfg: Mapping) -> list[str]:
    """Official pix2pixHD test-script options (global generator) for our ``Pix2PixHDConfig`` fields ``cfg``.

    Raises:
        ValueError: a field the official options cannot express.
    """
    argv = ["--gpu_ids", "-1", "--netG", "global", "--batchSize", "1"]
    for key, value in cfg.items():
        if key == "label_nc":
            argv += ["--label_nc", str(value)]
        elif key == "use_instance_edge":
            argv += [] if value else ["--no_instance"]
        elif key in _PIX2PIXHD_OPTIONS:
            argv += [_PIX2PIXHD_OPTIONS[key], str(value)]
        else:
            raise ValueError(f"pix2pixHD config field {key!r} has no official option")
    return argv


def randomise_(module: nn.Module, seed: int, shift: float = 0.1) -> nn.Module:
    """Shifts every 1-D parameter (norm affine terms, biases) by ``shift`` x N(0, 1), in place.

    The official initialisations leave these at 0 (biases) or 1 (norm scales); shifting them
    (seeded) makes the outputs of two implementations differ wherever their use differs
    (the recipe of ``/work/shared/golden/MANIFEST.md``).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == 1:
                p.add_(shift * torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype))
    return module


class OfficialCode:
    """Builds official generators (random weights, eval mode, CPU) from the checkouts.

    Args:
        repos: :func:`resolve_repos` result.
        quiet: swallow what the official code prints (option tables, network summaries).
    """

    def __init__(self, repos: OfficialRepos, quiet: bool = True) -> None:
        self.repos = repos
        self.quiet = quiet
        stand_ins = _stand_in_modules()
        self._tmp = tempfile.TemporaryDirectory(prefix="pix2pixhd_checkpoints_")
        asap_aliases = dict(stand_ins)
        if repos.sync_bn is not None:
            asap_aliases.update(self._sync_bn_modules(repos.sync_bn))
        self._asapnet = RepoImports(repos.asapnet, asap_aliases)
        self._pix2pixhd = RepoImports(repos.pix2pixhd, stand_ins)

    @staticmethod
    def _sync_bn_modules(root: Path) -> dict[str, types.ModuleType]:
        """``sync_batchnorm`` and its submodules, also under ``models.networks.sync_batchnorm``."""
        sys.path.insert(0, str(root))
        try:
            import importlib

            pkg = importlib.import_module("sync_batchnorm")
        finally:
            sys.path.remove(str(root))
        mods = {n: m for n, m in sys.modules.items() if n == "sync_batchnorm" or n.startswith("sync_batchnorm.")}
        mods.update({"models.networks." + n: m for n, m in list(mods.items())})
        assert pkg is mods["sync_batchnorm"]
        return mods

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Swallows the official code's prints (when ``quiet``) and the warnings its imports
        raise under a newer Python, SciPy or torch (deprecations, assert-on-tuple)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()) if self.quiet else contextlib.nullcontext():
                yield

    def asapnet_options(self, argv: Sequence[str]):
        """The official ASAPNet ``TestOptions().parse()`` result for ``argv``."""
        with self._asapnet, _argv(argv), self._quiet():
            from options.test_options import TestOptions

            return TestOptions().parse()

    def asapnet(self, argv: Sequence[str], seed: int = 0) -> nn.Module:
        """``models.networks.define_G(opt)`` (builds, then applies the official init), eval mode.

        The forward of the result returns ``(image, low-res parameters)``.
        """
        opt = self.asapnet_options(argv)
        with self._asapnet, self._quiet():
            import models.networks as networks

            torch.manual_seed(seed)
            net = networks.define_G(opt)
        return net.eval()

    def pix2pixhd_options(self, argv: Sequence[str]):
        """The official pix2pixHD ``TestOptions().parse(save=False)`` (as its ``test.py``)."""
        with self._pix2pixhd, _argv([*argv, "--checkpoints_dir", self._tmp.name]), self._quiet():
            from options.test_options import TestOptions

            return TestOptions().parse(save=False)

    def pix2pixhd(self, argv: Sequence[str], seed: int = 0) -> nn.Module:
        """The generator ``Pix2PixHDModel.initialize`` builds for these options, eval mode."""
        opt = self.pix2pixhd_options(argv)
        if opt.instance_feat or opt.label_feat:
            raise ValueError("feature-encoder inputs (--instance_feat/--label_feat) are not supported")
        input_nc = opt.label_nc if opt.label_nc != 0 else opt.input_nc  # as Pix2PixHDModel.initialize
        if not opt.no_instance:
            input_nc += 1
        with self._pix2pixhd, self._quiet():
            import models.networks as networks

            torch.manual_seed(seed)
            net = networks.define_G(input_nc, opt.output_nc, opt.ngf, opt.netG, opt.n_downsample_global,
                                    opt.n_blocks_global, opt.n_local_enhancers, opt.n_blocks_local, opt.norm,
                                    gpu_ids=opt.gpu_ids)
        return net.eval()
