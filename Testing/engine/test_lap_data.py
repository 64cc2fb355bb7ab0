"""Frame IO, the DSAD layout (generated fixture), the generic folder layout and the synthetic scene generator."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from distillseg.contract.errors import UserError
from distillseg.contract.frames import read_frame, read_mask, write_index_png
from distillseg.common.frame_views import black_border_box, write_overlay
from distillseg.lap.classes import DSAD_STRUCTURES
from distillseg.lap.data import find_records, load_frameset
from distillseg.lap.dsad import list_dsad, select_patients
from distillseg.contract.frames import SYNTHETIC_MARKER, is_synthetic_folder
from distillseg.lap.synthetic_scenes import write_demo_data


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsad") / "demo"
    summary = write_demo_data(root, patients=3, frames_per_patient=3, size=(60, 80), seed=3)
    return root, summary


def test_generator_writes_the_dsad_layout_and_says_it_is_synthetic(demo):
    root, summary = demo
    assert is_synthetic_folder(root) and "SYNTHETIC" in (root / SYNTHETIC_MARKER).read_text()
    assert json.loads((root / "dataset.json").read_text())["synthetic"] is True
    for number in ("01", "02", "03"):
        for index in range(3):
            assert (root / "multilabel" / number / f"image{index:02d}.png").is_file()
            for name in DSAD_STRUCTURES:
                mask = read_mask(root / "multilabel" / number / f"mask{index:02d}_{name}.png")
                assert set(np.unique(mask)) <= {0, 255}
    liver = sorted((root / "liver").glob("*/image*.png"))
    assert len(liver) == summary["frames_showing_structure"]["liver"] > 0
    for image in liver:  # a structure folder holds only frames that show it
        assert read_mask(image.with_name(image.name.replace("image", "mask"))).max() == 255


def test_structure_folders_are_merged_per_frame(demo):
    root, _ = demo
    records = list_dsad(root, ["liver", "stomach"], source="structures")
    names = {r.image.parent.parent.name for r in records}
    assert names <= {"liver", "stomach"}
    # Every frame showing both structures appears once, with both masks.
    both = [r for r in records if r.masks["liver"] and r.masks["stomach"]]
    shows = sum(1 for p in (root / "liver").glob("*/image*.png")
                if (root / "stomach" / p.parent.name / p.name).is_file()
                and (root / "stomach" / p.parent.name / p.name).read_bytes() == p.read_bytes())
    assert len(both) == shows
    multi = list_dsad(root, ["liver", "stomach"], source="multilabel")
    assert len(multi) == 9 and all(r.all_annotated for r in multi)


def test_masks_0_1_and_0_255_give_the_same_labels_and_border_is_cropped(demo, tmp_path):
    root, _ = demo
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for mask in (copy / "liver").glob("*/mask*.png"):   # re-save as 0/1
        write_index_png(mask, (read_mask(mask) > 0).astype(np.uint8))
    values = {"liver": 1}
    a = load_frameset(list_dsad(root, ["liver"]), values, (32, 32))
    b = load_frameset(list_dsad(copy, ["liver"]), values, (32, 32))
    assert a.labels.max() == 1 and np.array_equal(a.labels.numpy(), b.labels.numpy())
    frame = read_frame(list_dsad(root, ["liver"])[0].image)
    rows, cols = black_border_box(frame)
    assert cols.start > 0 and frame[:, : cols.start].max() == 0          # the generator draws a black border
    assert a.images[:, :, :, 0].float().mean() > 20                      # ... and loading crops it away


def test_bad_mask_values_and_size_mismatch(demo, tmp_path):
    root, _ = demo
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    mask = sorted((copy / "liver").glob("*/mask*.png"))[0]
    write_index_png(mask, np.full(read_mask(mask).shape, 7, dtype=np.uint8))
    with pytest.raises(UserError, match="0/255 or 0/1"):
        load_frameset(list_dsad(copy, ["liver"]), {"liver": 1}, (32, 32))
    write_index_png(mask, np.zeros((10, 12), dtype=np.uint8))
    with pytest.raises(UserError, match=f"{mask.name}.*12x10 pixels but its frame"):
        load_frameset(list_dsad(copy, ["liver"]), {"liver": 1}, (32, 32))


def test_standard_split_by_surgery(tmp_path):
    for number in ("01", "02", "03", "04", "07", "21"):
        folder = tmp_path / "liver" / number
        folder.mkdir(parents=True)
        frame = np.full((16, 16, 3), int(number) * 10, dtype=np.uint8)
        Image.fromarray(frame).save(folder / "image00.png")
        Image.fromarray(np.full((16, 16), 255, np.uint8)).save(folder / "mask00.png")
    patients = lambda split: sorted({r.patient for r in list_dsad(tmp_path, ["liver"], split=split)})
    assert patients("test") == ["02", "07"]
    assert patients("val") == ["03", "21"]
    assert patients("train") == ["01", "04"]
    assert patients("all") == ["01", "02", "03", "04", "07", "21"]
    assert select_patients(["01", "02"], patients=["1"]) == {"01"}


def test_missing_structure_and_unknown_name(demo):
    root, _ = demo
    with pytest.raises(UserError, match="liverr"):
        list_dsad(root, ["liverr"], source="structures")
    shutil.rmtree(root.parent / "nospleen", ignore_errors=True)
    shutil.copytree(root, root.parent / "nospleen", ignore=shutil.ignore_patterns("multilabel"))
    shutil.rmtree(root.parent / "nospleen" / "spleen")
    with pytest.raises(UserError, match="spleen: structure folder is missing"):
        find_records(root.parent / "nospleen", ["spleen"])


def test_frame_io_refuses_grey_and_colour_masks(tmp_path):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(UserError, match="grey.png.*colour \\(RGB\\) frame is needed"):
        read_frame(tmp_path / "grey.png")
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_frame(tmp_path / "rgba.png").shape == (20, 20, 3)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "colour_mask.png")
    with pytest.raises(UserError, match="mask must hold one label value"):
        read_mask(tmp_path / "colour_mask.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match="broken.png: cannot be read as an image"):
        read_frame(tmp_path / "broken.png")
    out = write_overlay(tmp_path / "o.png", rgba[..., :3], np.eye(20, dtype=np.uint8), {1: (0, 255, 0)},
                        caption="SYNTHETIC")
    assert read_frame(out).shape == (20, 20, 3)


def test_generic_folder_layout(tmp_path):
    (tmp_path / "images" / "p1").mkdir(parents=True)
    (tmp_path / "masks" / "p1").mkdir(parents=True)
    frame = np.random.default_rng(0).integers(30, 255, (40, 48, 3), dtype=np.uint8)
    mask = np.zeros((40, 48), np.uint8)
    mask[5:15, 5:20] = 4
    mask[20:30, 10:40] = 9
    Image.fromarray(frame).save(tmp_path / "images" / "p1" / "f1.jpg")
    write_index_png(tmp_path / "masks" / "p1" / "f1.png", mask)
    (tmp_path / "labels.json").write_text(json.dumps({"4": "liver", "9": "colon"}))
    records, table = find_records(tmp_path, ["colon"])
    assert table.values == {"colon": 9} and table.known == {4, 9} and records[0].patient == "p1"
    frames = load_frameset(records, {"colon": 2}, (40, 48), table)
    assert set(np.unique(frames.labels.numpy())) == {0, 2}        # liver is background here
    with pytest.raises(UserError, match="unknown structure name 'spleen'"):
        find_records(tmp_path, ["spleen"])
