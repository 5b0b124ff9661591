"""A corpus of bad manifests, folders, images and options, made here: each gets a clear error or a
loud note, never a silent change of meaning (issue 24, findings 4, 5 and 7)."""

import numpy as np
import pytest
from PIL import Image

from curate.data.images import decode_one
from curate.population.config import CurateConfig
from curate.data.sources import SourceError, from_csv, from_folder
from curate.population.train import TrainSettings
from helpers import invoke


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


def _csv(tmp_path, rows, header="filepath,label,split"):
    for row in rows:
        _png(tmp_path / row.split(",")[0])
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_repeated_csv_rows_of_one_image_are_merged_and_said(tmp_path):
    path = _csv(tmp_path, ["a.png,cat,train", "b.png,dog,train", "a.png,cat,train", "./a.png,cat,train"])
    images = from_csv(path)
    assert len(images) == 2 and len(set(images.filepaths)) == 2
    assert any("2 repeated rows" in note and "4, 5" in note for note in images.notes)


@pytest.mark.parametrize("rows", [["a.png,cat,train", "a.png,dog,train"], ["a.png,cat,train", "a.png,cat,test"]])
def test_one_image_with_two_labels_or_splits_is_refused(tmp_path, rows):
    with pytest.raises(SourceError, match=r"more than once with different labels or splits: .*a.png \(row 2"):
        from_csv(_csv(tmp_path, rows))


@pytest.mark.parametrize("label", ["NaN", "nan", "None", "null", "N/A"])
def test_missing_value_labels_are_not_classes(tmp_path, label):
    with pytest.raises(SourceError, match=rf"\['{label}'\] on data row\(s\) \[3\] look like missing values"):
        from_csv(_csv(tmp_path, ["a.png,cat,", f"b.png,{label},"]))


def test_split_values_are_case_folded_and_unknown_ones_refused(tmp_path):
    images = from_csv(_csv(tmp_path, ["a.png,cat,TRAIN", "b.png,cat,Validation", "c.png,dog,test", "d.png,dog,"]))
    assert images.splits == ["train", "val", "test", None]
    with pytest.raises(SourceError, match=r"split value\(s\) \['bogus'\] on data row\(s\) \[3\]"):
        from_csv(_csv(tmp_path, ["a.png,cat,train", "b.png,cat,bogus"]))


def test_nested_folders_and_empty_classes_are_reported(tmp_path):
    _png(tmp_path / "cat" / "1.png")
    _png(tmp_path / "cat" / "kittens" / "2.png")
    _png(tmp_path / "dog" / "3.png")
    (tmp_path / "bird").mkdir()
    images = from_folder(tmp_path)
    assert images.classes == ["cat", "dog"] and len(images) == 3
    assert any("1 image in folders nested" in n and "cat/kittens/2.png" in n for n in images.notes)
    assert any("1 class folder without images left out: bird" in n for n in images.notes)
    assert images.root == str(tmp_path.resolve())


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "F01"])
def test_wide_pixels_decode_scaled_not_white(tmp_path, mode):
    """Issue 24, finding 5: 16-bit PNGs decoded as solid white."""
    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    if mode == "I;16":
        image, path = Image.fromarray((ramp * 65535).astype(np.uint16)), tmp_path / "x.png"
    elif mode == "I":
        image, path = Image.fromarray((ramp * 65535).astype(np.int32)), tmp_path / "x.tif"
    elif mode == "F":
        image, path = Image.fromarray((ramp * 4000 - 500).astype(np.float32)), tmp_path / "x.tif"
    else:
        image, path = Image.fromarray(ramp.astype(np.float32)), tmp_path / "x.tif"
    image.save(path)
    assert Image.open(path).mode == ("I;16" if mode == "I;16" else "F" if mode.startswith("F") else "I")
    pixels = decode_one(str(path), 32)
    assert pixels.min() <= 5 and pixels.max() >= 250, "the full range survives"
    assert 110 <= pixels.mean() <= 145, "a ramp stays a ramp, not white"


def test_an_8_bit_range_image_stored_wide_keeps_its_values(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.int32)).save(tmp_path / "x.tif")
    assert set(np.unique(decode_one(str(tmp_path / "x.tif"), 8))) == {77}


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "0 is not in the range x>=1"),
    ("--epochs", "-1", "-1 is not in the range x>=1"),
    ("--finetune-epochs", "0", "x>=1"),
    ("--batch-size", "0", "0 is not in the range x>=2"),
    ("--image-size", "0", "0 is not in the range x>=8"),
    ("--members", "1", "x>=2"),
    ("--folds", "1", "x>=2"),
    ("--device", "tpu", "Unknown device 'tpu'; choose auto (CUDA when available), cpu, cuda or cuda:N"),
])
def test_options_out_of_range_name_the_allowed_range(option, value, message):
    result = invoke("run", "digits", "--dataset", "never-made", option, value)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_python_api_checks_the_same_ranges():
    with pytest.raises(ValueError, match="epochs must be an integer of at least 1, got 0"):
        TrainSettings(epochs=0)
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 2"):
        TrainSettings(batch_size=1)
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        CurateConfig(device="tpu")
