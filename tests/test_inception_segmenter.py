"""The frozen-feature segmenter (lib/models/inception_segmenter.py) and its training recipe
(lib/train/segmenter.py, arch inception / inception_unet): shapes, the backbone is pytorch-fid's
InceptionV3 and stays frozen, the checkpoint is self-contained, errors name the file or key."""
from __future__ import annotations

import pytest
import torch
from conftest import TwoColours

from lib.config import ConfigError, from_dict
from lib.models import build, load_model, model_name
from lib.models import inception_segmenter as inc
from lib.train import segmenter as trainer

WEIGHTS_NAME = "pt_inception-2015-12-05-reconstructed-fc-zeroed.pth"


@pytest.fixture(scope="module")
def weights(weights_mirror):
    return weights_mirror / WEIGHTS_NAME


@pytest.mark.parametrize("arch", inc.ARCHS)
def test_logits_have_the_image_size_for_any_aspect(arch):
    torch.manual_seed(0)
    net = build("inception_segmenter", {"arch": arch, "num_classes": 5, "decoder_width": 8, "width": 4, "depth": 2}).eval()
    for h, w in ((64, 88), (64, 64), (32, 44)):  # CamVid and Facades at the smoke size; 32 px: resized to 80 inside
        with torch.no_grad():
            out = net(torch.rand(2, 3, h, w) * 2 - 1)
        assert out.shape == (2, 5, h, w) and torch.isfinite(out).all()


def test_backbone_is_pytorch_fids_inception(weights):
    """With the FID weights, the backbone's Mixed_6e output equals pytorch-fid's block 2 (768 channels)."""
    from pytorch_fid.inception import InceptionV3

    from lib.metrics.fid import ensure_inception_weights

    ensure_inception_weights(weights)  # pytorch-fid then loads its hub file: no download
    net = inc.load_backbone(build("inception_segmenter", {"decoder_width": 4}), weights).eval()
    ref = InceptionV3([2], resize_input=False, normalize_input=False).eval()  # inputs in [-1, 1] as ours
    x = torch.rand(1, 3, 96, 128) * 2 - 1
    with torch.no_grad():
        feats = net.backbone(x)
        expected = ref(x)[0]
    assert [f.shape[1] for f in feats] == list(inc.LAYER_CHANNELS)
    assert torch.allclose(feats[2], expected, atol=1e-5)


def test_backbone_stays_frozen_through_training_steps(weights):
    """Only the decoder trains: after steps in train mode the backbone's weights and batch-norm
    statistics are unchanged, the decoder's are not."""
    torch.manual_seed(0)
    net = inc.load_backbone(build("inception_segmenter", {"arch": "inception", "num_classes": 3, "decoder_width": 8}), weights)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trained = [p for p in net.parameters() if p.requires_grad]
    assert trained and all(not p.requires_grad for p in net.backbone.parameters())
    opt = torch.optim.AdamW(trained, lr=1e-2)
    net.train()
    assert not net.backbone.training  # ImageNet batch-norm statistics are kept
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(net(torch.rand(2, 3, 64, 64) * 2 - 1), torch.randint(0, 3, (2, 64, 64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = net.state_dict()
    frozen = [k for k in after if k.startswith("backbone.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(("proj.", "fuse.", "head.")))


def test_bad_weight_files_are_named(tmp_path):
    net = build("inception_segmenter", {"decoder_width": 4})
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        inc.load_backbone(net, tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth.*Mixed_7c"):
        inc.load_backbone(net, tmp_path / "other.pth")


@pytest.mark.parametrize("bad, key", [({"arch": "resnet"}, "arch"), ({"input_scale": 8.0}, "input_scale"),
                                      ({"decoder_width": 0}, "decoder_width")])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=f"models.inception_segmenter.{key}"):
        build("inception_segmenter", bad)


def test_trainer_recipe_keys_are_checked():
    for bad, key in [(dict(arch="inception_v4"), "arch"), (dict(input_scale=0.1), "input_scale"),
                     (dict(train_splits=[]), "train_splits"), (dict(train_splits=["train", "train"]), "train_splits"),
                     (dict(decoder_width=0), "decoder_width")]:
        with pytest.raises(ConfigError, match=f"train_segmenter.{key}"):
            from_dict(trainer.SegmenterTrainConfig, bad, where="train_segmenter")


def test_two_steps_train_the_decoder_and_the_checkpoint_needs_no_weights_file(weights, tmp_path):
    """A short run of the recipe on two-colour photos: the checkpoint rebuilds the segmenter by
    itself (the frozen backbone is in it) and holds the FID weights unchanged."""
    cfg = dict(arch="inception", size=64, decoder_width=8, batch_size=2, epochs=1, max_steps=2, fid_weights=str(weights),
               checkpoint_every=0, log_every=1, precision="fp32", lr=1e-2)
    out = trainer.train_segmenter(cfg, TwoColours(4, size=64), tmp_path, labels="facades", progress=False)
    assert out["steps"] == 2 and out["arch"] == "inception"
    model = load_model(tmp_path / trainer.CHECKPOINT_NAME)
    assert model_name(model) == "inception_segmenter" and model.cfg.label_set == "facades" and model.cfg.num_classes == 12
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.Mixed_7c.branch1x1.conv.weight, state["Mixed_7c.branch1x1.conv.weight"])
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        trainer.train_segmenter({**cfg, "fid_weights": str(tmp_path / "nowhere.pth")}, TwoColours(4, size=64),
                                tmp_path / "b", labels="facades", progress=False)
