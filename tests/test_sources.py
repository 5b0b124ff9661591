"""Sources: folder trees, CSV manifests, FiftyOne datasets; unreadable images; clear errors."""

import os

import numpy as np
import pytest
from PIL import Image

from curate.science.crossfit import check_fold_support, stratified_folds
from curate.data.images import decode_images
from curate.data.sources import SourceError, from_csv, from_folder
from curate.fiftyone.source import load_source


def write_png(path, value=128, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1] + (3,), value, np.uint8)).save(path)


def test_folder_source_lists_classes_and_images(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(3):
            write_png(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    images = from_folder(tmp_path)
    assert images.classes == ["cat", "dog"]
    assert len(images) == 6 and images.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        from_folder(tmp_path / "nope")
    with pytest.raises(SourceError, match="No images found"):
        from_folder(tmp_path)


def test_csv_relative_paths_and_split(tmp_path):
    write_png(tmp_path / "imgs" / "a.png")
    write_png(tmp_path / "imgs" / "b.png")
    (tmp_path / "m.csv").write_text("filepath,label,split\nimgs/a.png,cat,train\nimgs/b.png,dog,\n")
    images = from_csv(tmp_path / "m.csv")
    assert images.filepaths == [str(tmp_path / "imgs" / "a.png"), str(tmp_path / "imgs" / "b.png")]
    assert images.splits == ["train", None]
    assert images.fields == {}


def test_csv_extra_columns_become_fields_and_follow_subsets(tmp_path):
    for name in ("a", "b", "c"):
        write_png(tmp_path / f"{name}.png")
    (tmp_path / "m.csv").write_text("filepath,label,annotator,batch\na.png,cat,ann1,3\nb.png,dog,,4\nc.png,dog,ann2,5\n")
    images = from_csv(tmp_path / "m.csv")
    assert images.fields == {"annotator": ["ann1", None, "ann2"], "batch": ["3", "4", "5"]}
    assert images.subset(np.array([False, True, True])).fields == {"annotator": [None, "ann2"], "batch": ["4", "5"]}
    for bad, why in (("ground_truth", "already uses"), ("curate_note", "curate_"), ("a.b", "contain")):
        (tmp_path / "bad.csv").write_text(f"filepath,label,{bad}\na.png,cat,x\n")
        with pytest.raises(SourceError, match=rf"column '{bad}' cannot become a FiftyOne field \(.*{why}"):
            from_csv(tmp_path / "bad.csv")


def test_csv_errors_name_the_problem(tmp_path):
    (tmp_path / "bad.csv").write_text("path,class\na.png,cat\n")
    with pytest.raises(SourceError, match=r"lacks column\(s\) \['filepath', 'label'\]"):
        from_csv(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("filepath,label\na.png,\n")
    with pytest.raises(SourceError, match=r"row\(s\) \[2\]"):
        from_csv(tmp_path / "empty.csv")
    with pytest.raises(SourceError, match="neither 'digits'"):
        load_source(str(tmp_path / "missing-dir-or-dataset"))


def test_unreadable_images_are_reported_and_left_out(tmp_path):
    write_png(tmp_path / "ok.png", 10)
    write_png(tmp_path / "ok2.png", 200, size=(40, 20))
    good = (tmp_path / "trunc.png")
    write_png(good, 50, size=(64, 64))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("hello")
    paths = [str(tmp_path / n) for n in ("ok.png", "trunc.png", "missing.png", "text.jpg", "ok2.png")]
    pixels, ok, bad = decode_images(paths, 8, tmp_path / "cache" / "img.u8", progress=False)
    assert ok.tolist() == [True, False, False, False, True]
    assert [b.path for b in bad] == paths[1:4]
    assert "file not found" in bad[1].reason
    assert pixels.shape == (2, 3, 8, 8)
    assert pixels[0].max() == 10 and pixels[1].min() == 200
    # A second call reads the cache rather than decoding again.
    again, ok2, bad2 = decode_images(paths, 8, tmp_path / "cache" / "img.u8", progress=False)
    np.testing.assert_array_equal(again, pixels)
    assert len(bad2) == 3


def test_small_class_error_names_it():
    with pytest.raises(ValueError, match=r"'rare' \(1 image\)"):
        check_fold_support(np.array([0, 0, 0, 1]), 2, ["common", "rare"])


def test_stratified_folds_balance_each_class():
    labels = np.repeat([0, 1, 2], [10, 7, 4])
    folds = stratified_folds(labels, 3, seed=1)
    for c in range(3):
        counts = np.bincount(folds[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(folds, stratified_folds(labels, 3, seed=2))


def test_no_readable_image_is_a_clear_error(tmp_path):
    from curate.population.config import CurateConfig
    from curate.population.pipeline import prepare_images
    from curate.data.sources import LabeledImages
    from curate.data.store import RunStore

    (tmp_path / "a.png").write_text("not a png")
    images = LabeledImages([str(tmp_path / "a.png"), str(tmp_path / "b.png")], [0, 1], ["x", "y"], description="t")
    with pytest.raises(SourceError, match="None of the 2 images of t could be read"):
        prepare_images(images, CurateConfig(), RunStore(tmp_path / "run"), progress=False)


def test_a_class_short_of_images_because_some_are_unreadable_says_so(tmp_path):
    from curate.population.config import CurateConfig
    from curate.population.pipeline import prepare_images
    from curate.data.sources import LabeledImages
    from curate.data.store import RunStore

    for name in ("a1", "a2", "b1"):
        write_png(tmp_path / f"{name}.png")
    paths = [str(tmp_path / n) for n in ("a1.png", "a2.png", "b1.png", "b2.png")]  # b2.png does not exist
    images = LabeledImages(paths, [0, 0, 1, 1], ["a", "b"], description="t")
    with pytest.raises(ValueError, match=r"'b' \(1 image\).*1 of the 4 images could not be read.*b2\.png"):
        prepare_images(images, CurateConfig(), RunStore(tmp_path / "run"), progress=False)


def test_decoding_turns_exif_rotated_photos_upright(tmp_path):
    from curate.data.images import decode_one

    # A landscape-stored photo whose EXIF says "rotate 90": left half dark, right half light as stored.
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:, 30:] = 220
    upright = tmp_path / "upright.png"
    Image.fromarray(stored).transpose(Image.Transpose.ROTATE_270).save(upright)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates the stored pixels 90 degrees clockwise
    Image.fromarray(stored).save(rotated, quality=95, exif=exif)
    got, want = decode_one(str(rotated), 16).astype(int), decode_one(str(upright), 16).astype(int)
    assert np.abs(got - want).mean() < 4
    # Turned clockwise, the stored right half (light) is the bottom half; rows are axis 1 of (3, H, W).
    assert got[:, 8:].mean() > 150 and got[:, :8].mean() < 50


def test_large_jpegs_decode_at_reduced_scale_to_the_same_square(tmp_path):
    from curate.data.images import decode_one

    y, x = np.mgrid[0:1200, 0:1600]
    photo = np.stack([x * 255 // 1600, y * 255 // 1200, (x + y) * 255 // 2800], axis=-1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(photo).save(path, quality=95)
    with Image.open(path) as image:
        image.load()
        full = np.asarray(image.convert("RGB").resize((43, 32), Image.BILINEAR).crop((5, 0, 37, 32)))
    got = decode_one(str(path), 32).transpose(1, 2, 0).astype(int)
    assert got.shape == (32, 32, 3) and np.abs(got - full.astype(int)).mean() < 3


def test_decoding_on_processes_gives_what_threads_give(tmp_path, monkeypatch):
    """Enough work decodes on a process per core, each writing its rows of the cache: same pixels, same
    unreadable files in the same order, as the threads that decode less work."""
    import curate.data.images as images

    rng = np.random.default_rng(0)
    paths = []
    for i in range(600):  # three chunks of DECODE_CHUNK
        path = tmp_path / "src" / f"{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    paths[300] = str(tmp_path / "missing.png")
    (tmp_path / "src" / "010.png").write_text("not an image")
    on_threads = decode_images(paths, 8, tmp_path / "threads.u8", progress=False)
    monkeypatch.setattr(images, "POOL_MIN_WORK", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def no_threads(*args):
        raise AssertionError("decoded on threads here, not on the processes")

    monkeypatch.setattr(images, "ThreadPoolExecutor", no_threads)
    on_processes = decode_images(paths, 8, tmp_path / "processes.u8", progress=False)
    np.testing.assert_array_equal(on_processes[0], on_threads[0])
    np.testing.assert_array_equal(on_processes[1], on_threads[1])
    assert on_processes[2] == on_threads[2] and [b.path for b in on_processes[2]] == [paths[10], paths[300]]
