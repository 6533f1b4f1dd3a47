"""What the project can fetch: the datasets and weights, their pinned download locations, and how
to provide the ones that cannot be downloaded (the catalogue :mod:`lib.data.fetch` reads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DATASETS", "Entry", "RemoteFiles", "RemoteZip", "IdList"]

# Pinned sources (commits as recorded for the data mirror).
_GH = "https://raw.githubusercontent.com"
_DNCNN = f"{_GH}/cszn/DnCNN/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a"
_FFDNET = f"{_GH}/cszn/FFDNet/e787f46df2f374ff3591186706229cb9a0591fea"
_SURE = f"{_GH}/Magauiya/Extended_SURE/1bcec3b61d7c3687f0fc906d684cc7d29e59aab4"
_ASAPNET = f"{_GH}/tamarott/ASAPNet/f27f2022968810527603e2bcc51ea3e5f50c1c06"
_CMP_TOOL = f"{_GH}/Thunderwisking/CMP_facade_Toolf4InstanceSegmentation/016215164fe18104172c15d829f3cfaa8e0cbc8f"
_CMP_BASE_ZIP = "https://cmp.felk.cvut.cz/~tylecr1/facade/CMP_facade_DB_base.zip"
_FID_RELEASE = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights"
_DNCNN_SPECIFIC = f"{_GH}/cszn/DnCNN/1d4355ac1917355e744201d7b209e538f5170567/model/specifics"
_DNCNN_BLIND = f"{_GH}/cszn/DnCNN/55fdeb2ac82c8c8cae6e281dae2b8e87e2d47a4d/model"
_KAIR_ZOO = f"{_GH}/cszn/KAIR/f9888a094a01fd2fdb47155d6f60ab498484beff/model_zoo"


@dataclass(frozen=True)
class RemoteFiles:
    """One URL per file: ``f"{url_dir}/{path relative to local_dir}"``.

    Attributes:
        url_dir: URL of the remote folder.
        local_dir: folder of the files inside the dataset ("" = top level).
        names: file names (relative to ``local_dir``); ``None`` takes every listed file under
            ``local_dir`` not already taken by an earlier source.
    """

    url_dir: str
    local_dir: str = ""
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RemoteZip:
    """An archive; listed files under ``local_dir`` are taken from it, matched by file name."""

    url: str
    local_dir: str


@dataclass(frozen=True)
class IdList:
    """A derived list: the file stems of the paths in ``source`` (already fetched), one a line."""

    path: str
    source: str


@dataclass(frozen=True)
class Entry:
    """A registry entry.

    Attributes:
        name: registry name (also the checksum file stem; the mirror/dest folder for data).
        kind: ``"data"`` (``<mirror>/<name>/`` -> ``<dest_root>/<name>/``) or ``"weights"``
            (``<weights mirror>/<path>`` -> ``<dest_root>/weights/<path>``).
        description: one line for messages.
        sources: download recipe; empty when there is no download.
        no_download: what to do instead, when ``sources`` is empty.
        one_of: the listed files are alternatives; at least one is required.
    """

    name: str
    kind: Literal["data", "weights"]
    description: str
    sources: tuple[RemoteFiles | RemoteZip | IdList, ...] = ()
    no_download: str = ""
    one_of: bool = False


_CITYSCAPES_HOWTO = (
    "Cityscapes cannot be downloaded automatically (a login is required): download "
    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com, "
    "unpack both into one folder (it then holds leftImg8bit/ and gtFine/) and give that folder as the "
    "Cityscapes root"
)

DATASETS: dict[str, Entry] = {
    "bsd68": Entry(
        "bsd68", "data", "BSD68 grayscale test set (68 png)",
        sources=(RemoteFiles(f"{_DNCNN}/testsets/BSD68"),),
    ),
    "set12": Entry(
        "set12", "data", "Set12 grayscale test set (12 png)",
        sources=(RemoteFiles(f"{_DNCNN}/testsets/Set12"),),
    ),
    "cbsd68": Entry(
        "cbsd68", "data", "CBSD68 color test set (68 png)",
        sources=(RemoteFiles(f"{_FFDNET}/testsets/CBSD68"),),
    ),
    "train400": Entry(
        "train400", "data", "DnCNN Train400 grayscale training set (400 png)",
        sources=(RemoteFiles(f"{_DNCNN}/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400"),),
    ),
    "cbsd432": Entry(
        "cbsd432", "data", "CBSD432 color training set (432 jpg)",
        sources=(RemoteFiles(f"{_SURE}/Dataset/CBSD432"),),
    ),
    "facades": Entry(
        "facades", "data", "CMP Facade Database base set (378 photo/label pairs) with the ASAPNet split",
        sources=(
            RemoteFiles(
                f"{_ASAPNET}/data",
                "splits_asapnet",
                (
                    "facades_train_img.txt",
                    "facades_train_label.txt",
                    "facades_test_img.txt",
                    "facades_test_label.txt",
                ),
            ),
            IdList("splits_asapnet/train_ids.txt", "splits_asapnet/facades_train_img.txt"),
            IdList("splits_asapnet/test_ids.txt", "splits_asapnet/facades_test_img.txt"),
            RemoteFiles(_CMP_TOOL, "", ("label_names.txt",)),
            RemoteZip(_CMP_BASE_ZIP, "base"),
        ),
    ),
    "cityscapes_subset": Entry(
        "cityscapes_subset", "data", "Cityscapes subset (8 train pairs, 15 val label maps, 512x256)",
        no_download=_CITYSCAPES_HOWTO,
    ),
    "fid_inception": Entry(
        "fid_inception", "weights", "pytorch-fid InceptionV3 weights (FID feature extractor)",
        sources=(RemoteFiles(_FID_RELEASE, "", ("pt_inception-2015-12-05-6726825d.pth",)),),
        one_of=True,
    ),
    "dncnn_official": Entry(
        "dncnn_official", "weights", "official DnCNN weights (5 MatConvNet .mat files, KAIR dncnn_25.pth)",
        sources=(
            RemoteFiles(_DNCNN_SPECIFIC, "dncnn/cszn_DnCNN/model/specifics"),
            RemoteFiles(_DNCNN_BLIND, "dncnn/cszn_DnCNN/model", ("GD_Gray_Blind.mat", "GD_Color_Blind.mat")),
            RemoteFiles(_KAIR_ZOO, "dncnn/KAIR/model_zoo"),
        ),
    ),
}
