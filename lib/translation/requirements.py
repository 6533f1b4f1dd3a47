"""External files the translation stages need and cannot fetch, checked before any work starts.

Two settings name files that no stage downloads (docs/design.md#scales, the paper scale):

- ``loss.vgg_weights`` of a model recipe: torchvision's VGG19 ImageNet weights for the
  perceptual loss (:func:`lib.models.losses.vgg19_features`); ``null`` switches the loss off.
- ``evaluate_translation.segmenter``: a TorchScript segmenter for mIoU, at the paper scale a
  scripted DRN-D-105 trained on Cityscapes (:func:`lib.models.segmentation.load_torchscript_segmenter`);
  ``trained`` uses the segmenter of the ``train_segmenter`` stage instead.

The training and evaluation notebooks call :func:`require_training_files` /
:func:`require_evaluation_files` right after loading their settings, so a missing file stops
the stage before it trains or writes anything, with a message naming the file, the params key
and where to get the file. Relative paths are taken from the project root, as the stages run.
"""
from __future__ import annotations

from lib.paths import project_path
from lib.train.gan import TranslationTrainStage, gan_config

__all__ = ["require_training_files", "require_evaluation_files", "VGG19_URL", "DRN_URL"]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # torchvision VGG19_Weights.IMAGENET1K_V1
DRN_URL = "https://github.com/fyu/drn"  # Yu et al. 2017; its README links drn-d-105_ms_cityscapes.pth


def _vgg_key(stage: TranslationTrainStage, model: str) -> str:
    """The params key that sets ``loss.vgg_weights`` of ``model`` (the recipe's, else ``common``'s)."""
    if "vgg_weights" in (stage.models[model].get("loss") or {}):
        return f"train_translation.models.{model}.loss.vgg_weights"
    return "train_translation.common.loss.vgg_weights"


def require_training_files(stage: TranslationTrainStage, model: str) -> None:
    """Checks that the files training ``model`` reads exist: the VGG19 weights when the VGG loss is on.

    Args:
        stage: the ``train_translation`` settings.
        model: a key of ``stage.models``.

    Raises:
        FileNotFoundError: the VGG19 file is missing; the message names the file, the params key
            and the torchvision URL (or setting the key to null to train without the VGG loss).
    """
    loss = gan_config(stage, model).loss
    if not (loss.use_vgg and loss.lambda_vgg > 0):
        return
    path = project_path(loss.vgg_weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG19 ImageNet weights not found: {path} (params key {_vgg_key(stage, model)}). "
            f"Download torchvision's VGG19 weights from {VGG19_URL} to that path, or set the key to null "
            f"to train without the VGG loss. Nothing was trained or written."
        )


def require_evaluation_files(segmenter: str) -> None:
    """Checks that the segmenter named by ``evaluate_translation.segmenter`` exists.

    Args:
        segmenter: ``"trained"`` (the ``train_segmenter`` checkpoint, made by the pipeline) or the
            path of a TorchScript segmenter.

    Raises:
        FileNotFoundError: the TorchScript file is missing; the message names the file, the
            params key and where to get DRN-D-105 (or setting the key to ``trained``).
    """
    if segmenter == "trained":
        return
    path = project_path(segmenter)
    if not path.is_file():
        raise FileNotFoundError(
            f"TorchScript segmenter not found: {path} (params key evaluate_translation.segmenter). "
            f"The paper's mIoU uses DRN-D-105 trained on Cityscapes: get the code and "
            f"drn-d-105_ms_cityscapes.pth from {DRN_URL}, script the model once as described in "
            f"lib.models.segmentation.load_torchscript_segmenter and save it to that path; or set the key "
            f"to 'trained' to use the segmenter of the train_segmenter stage. Nothing was evaluated or written."
        )
