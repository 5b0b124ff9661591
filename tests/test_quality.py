"""Pixel checks on digits and on degraded copies the test makes (blurred, darkened, noised, flattened)."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from curate.data.pixels import jpeg_quality, measure_files, measure_image, noise_sigma
from curate.science.quality import CHECKS, quality_severity


def _rgb(path):
    with Image.open(path) as image:
        return image.convert("RGB")


def degraded(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    x = np.asarray(image, dtype=np.float64)
    if kind == "blurred":
        return image.filter(ImageFilter.GaussianBlur(3))
    if kind == "darkened":
        x = x * 0.08
    elif kind == "brightened":
        x = 255 - (255 - x) * 0.02
    elif kind == "noised":
        x = x + rng.normal(0, 60, x.shape)
    elif kind == "washed_out":
        x = 0.4 * x + 0.6 * 255
    elif kind == "flattened":
        x = np.full_like(x, x.mean())
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def clean_and_degraded(digits_images):
    rng = np.random.default_rng(0)
    clean = [_rgb(p) for p in digits_images.filepaths[:200]]
    kinds = ["blurred", "darkened", "brightened", "noised", "washed_out", "flattened"]
    images = clean + [degraded(clean[i], kind, rng) for kind in kinds for i in range(4)]
    names = ["clean"] * len(clean) + [kind for kind in kinds for _ in range(4)]
    raw = pd.DataFrame([measure_image(image) for image in images])
    return names, quality_severity(raw)


@pytest.mark.parametrize("kind, check", [("blurred", "blurry"), ("darkened", "dark"), ("brightened", "light"),
                                         ("noised", "noisy"), ("washed_out", "low_contrast"),
                                         ("washed_out", "washed_out"),
                                         ("flattened", "low_information"), ("flattened", "low_contrast")])
def test_each_degradation_fires_its_check(clean_and_degraded, kind, check):
    names, severity = clean_and_degraded
    rows = np.array(names) == kind
    assert (severity.loc[rows, check] > 0).all(), severity.loc[rows]


def test_clean_digits_are_mostly_unflagged(clean_and_degraded):
    names, severity = clean_and_degraded
    clean = severity[np.array(names) == "clean"]
    assert list(severity.columns) == list(CHECKS)
    assert ((clean > 0).any(axis=1)).mean() < 0.05
    assert severity.min().min() >= 0 and severity.max().max() <= 1


def test_jpeg_quality_is_estimated_from_the_quantisation_table(digits_images):
    image = _rgb(digits_images.filepaths[0])
    for quality in (10, 50, 90):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as jpeg:
            assert abs(jpeg_quality(jpeg) - quality) <= 2
    assert np.isnan(jpeg_quality(image))  # not a JPEG


def test_heavy_jpeg_and_odd_size_are_flagged(tmp_path, digits_images):
    paths = []
    for i, path in enumerate(digits_images.filepaths[:30]):
        out = tmp_path / f"{i}.jpg"
        _rgb(path).save(out, "JPEG", quality=95)
        paths.append(str(out))
    _rgb(digits_images.filepaths[30]).save(tmp_path / "heavy.jpg", "JPEG", quality=8)
    _rgb(digits_images.filepaths[31]).resize((400, 400)).save(tmp_path / "huge.png")
    _rgb(digits_images.filepaths[32]).resize((128, 16)).save(tmp_path / "wide.png")
    paths += [str(tmp_path / n) for n in ("heavy.jpg", "huge.png", "wide.png", "missing.png")]
    severity = quality_severity(measure_files(paths, progress=False))
    assert severity.iloc[30]["heavy_compression"] > 0.5
    assert severity.iloc[:30]["heavy_compression"].eq(0).all()
    assert severity.iloc[31]["odd_size"] > 0
    assert severity.iloc[32]["odd_aspect_ratio"] > 0
    assert severity.iloc[33].isna().all()  # unreadable: no scores, no crash


def test_noise_sigma_recovers_the_added_noise():
    rng = np.random.default_rng(1)
    flat = np.full((64, 64), 128.0)
    assert noise_sigma(flat) == 0
    assert abs(noise_sigma(flat + rng.normal(0, 10, flat.shape)) - 10) < 1.0


def _photo_like(rng: np.random.Generator, side: int = 32) -> np.ndarray:
    """Smooth random structure plus grain, like a small photograph (grey, 0..255)."""
    coarse = rng.random((side // 8 + 1, side // 8 + 1)) * 200
    smooth = np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize((side, side), Image.BICUBIC))
    return np.clip(smooth + rng.normal(0, 12, (side, side)) + 28, 0, 255)


def _enlarged(x: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by ``factor`` (block means), then enlarge back by repeating pixels."""
    side = x.shape[0]
    small = x.reshape(side // factor, factor, side // factor, factor).mean(axis=(1, 3))
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)


def test_block_variance_is_zero_for_enlargements_and_large_for_photographs():
    from curate.data.pixels import block_variance

    rng = np.random.default_rng(0)
    photo = _photo_like(rng)
    assert block_variance(photo) > 0.01  # smooth photographs keep a few percent; enlargements none
    for factor in (2, 4, 8):
        assert block_variance(_enlarged(photo, factor)) < 1e-9
    # An enlargement that does not start on a block edge is found at its offset too.
    shifted = np.roll(_enlarged(photo, 4), (1, 3), axis=(0, 1))
    assert block_variance(shifted) < 1e-9
    assert block_variance(np.full((32, 32), 90.0)) == 1.0


def test_pixelated_images_are_flagged_relative_to_the_dataset():
    rng = np.random.default_rng(1)
    photos = [_photo_like(rng) for _ in range(120)]
    enlarged = [_enlarged(photos[i], 4) for i in range(6)]
    images = [Image.fromarray(np.rint(x).astype(np.uint8)).convert("RGB") for x in photos + enlarged]
    severity = quality_severity(pd.DataFrame([measure_image(image) for image in images]))["pixelated"].to_numpy()
    assert (severity[120:] > 0.9).all() and (severity[:120] == 0).all()
    # A dataset whose every image is enlarged the same way (digits stored at 4x, say) flags none of them.
    all_enlarged = [Image.fromarray(np.rint(_enlarged(x, 4)).astype(np.uint8)).convert("RGB") for x in photos]
    severity = quality_severity(pd.DataFrame([measure_image(image) for image in all_enlarged]))["pixelated"]
    assert (severity == 0).all()


def test_washed_out_photos_are_flagged_and_bright_datasets_are_not():
    rng = np.random.default_rng(2)
    photos = [_photo_like(rng) for _ in range(120)]
    washed = [0.4 * x + 0.6 * 255 for x in photos[:6]]
    images = [Image.fromarray(np.rint(x).astype(np.uint8)).convert("RGB") for x in photos + washed]
    severity = quality_severity(pd.DataFrame([measure_image(image) for image in images]))
    assert (severity["washed_out"].to_numpy()[120:] > 0).all() and (severity["washed_out"].to_numpy()[:120] == 0).all()
    # Every image pale alike (snowfields, say): the dataset's own fence keeps them all unflagged.
    pale = [Image.fromarray(np.rint(0.4 * x + 0.6 * 255).astype(np.uint8)).convert("RGB") for x in photos]
    assert (quality_severity(pd.DataFrame([measure_image(image) for image in pale]))["washed_out"] == 0).all()


def test_batched_measurements_equal_the_per_image_definitions():
    from PIL import Image

    from curate.data.pixels import block_variance, block_variances, measure_images, noise_sigma, noise_sigmas

    rng = np.random.default_rng(3)
    gray = rng.integers(0, 255, (5, 20, 24)).astype(np.float64)
    gray[1] = np.kron(rng.integers(0, 255, (5, 6)), np.ones((4, 4)))  # an enlargement
    gray[2] = 90.0  # flat
    np.testing.assert_allclose(noise_sigmas(gray), [noise_sigma(g) for g in gray], rtol=1e-12)
    np.testing.assert_allclose(block_variances(gray), [block_variance(g) for g in gray], rtol=1e-9, atol=1e-12)
    # Images of several sizes and modes measured together equal each measured alone.
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in
              ((32, 32), (40, 24), (32, 32), (150, 200))]
    images.append(Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8), mode="L"))
    together = pd.DataFrame(measure_images(images))
    alone = pd.DataFrame([measure_images([image])[0] for image in images])
    pd.testing.assert_frame_equal(together, alone, rtol=1e-9)


def test_brightness_percentiles_equal_numpys_on_the_float_image():
    from curate.data.pixels import _brightness, brightness_percentiles

    rng = np.random.default_rng(3)
    for shape in [(4, 8, 8, 3), (3, 33, 17, 3), (2, 1, 1, 3), (2, 120, 90, 3)]:
        rgb = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = np.percentile(_brightness(rgb).reshape(len(rgb), -1), [99, 5, 50], axis=1)
        np.testing.assert_allclose(brightness_percentiles(rgb, (99, 5, 50)), expected, rtol=1e-12, atol=1e-15)


def test_noise_is_immerkaers_nine_term_kernel():
    from curate.data.pixels import noise_sigmas

    gray = np.random.default_rng(4).integers(0, 256, (3, 9, 7)).astype(np.float64)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])
    response = np.array([[[np.sum(kernel * g[i:i + 3, j:j + 3]) for j in range(5)] for i in range(7)] for g in gray])
    expected = np.sqrt(np.pi / 2) * np.abs(response).sum(axis=(1, 2)) / (6 * 5 * 7)
    np.testing.assert_allclose(noise_sigmas(gray), expected, rtol=1e-12)
