"""ImageNet-C-style corruptions and the robustness table, on images and arrays made here."""

import numpy as np
import pytest

from curate.population.robustness import CORRUPTION_NAMES, corrupt, corrupted_suite
from curate.science.findings import robustness_summary, robustness_table


@pytest.fixture(scope="module")
def images():
    """Digits at 32 px: real structure, so blur and pixelation have edges to destroy."""
    from PIL import Image
    from sklearn.datasets import load_digits

    raw = (load_digits().images[:40] * 255 / 16).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(d).resize((32, 32), Image.BILINEAR)) for d in raw])
    rgb = np.stack([big, (big * 0.7).astype(np.uint8), 255 - big], axis=1)
    return np.ascontiguousarray(rgb)


def _sharpness(x):
    x = x.astype(float)
    return np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean()


def test_every_corruption_keeps_shape_dtype_and_input(images):
    before = images.copy()
    for name in CORRUPTION_NAMES:
        out = corrupt(images, name, 3)
        assert out.shape == images.shape and out.dtype == np.uint8, name
        assert (out != images).any(), f"{name} changed nothing"
    assert np.array_equal(images, before)


def test_severity_makes_each_corruption_worse(images):
    x = images.astype(float)
    noise = [np.std(corrupt(images, "gaussian_noise", s, np.random.default_rng(0)) - x) for s in (1, 3, 5)]
    assert noise[0] < noise[1] < noise[2]
    contrast = [corrupt(images, "contrast", s).astype(float).std() for s in (1, 3, 5)]
    assert x.std() > contrast[0] > contrast[1] > contrast[2]
    brightness = [corrupt(images, "brightness", s).astype(float).mean() for s in (1, 3, 5)]
    assert x.mean() < brightness[0] < brightness[1] < brightness[2]
    blur = [_sharpness(corrupt(images, "gaussian_blur", s)) for s in (1, 3, 5)]
    assert _sharpness(images) > blur[0] > blur[1] > blur[2]
    for name in ("jpeg", "pixelate"):
        error = [np.abs(corrupt(images, name, s).astype(float) - x).mean() for s in (1, 3, 5)]
        assert error[0] < error[2], name


def test_brightness_keeps_hue_and_lifts_black_to_grey():
    pixels = np.array([[[[200]], [[100]], [[50]]], [[[0]], [[0]], [[0]]]], dtype=np.uint8)  # (2, 3, 1, 1)
    out = corrupt(pixels, "brightness", 5).astype(float)[:, :, 0, 0]  # adds 0.3 to V
    # V 200/255 -> 200/255 + 0.3 = 1.084, clipped to 1: RGB scaled by 255/200.
    assert out[0] == pytest.approx([255, 127.5, 63.75], abs=1)
    assert out[1] == pytest.approx([76.5, 76.5, 76.5], abs=1)


def test_suite_shape_and_determinism(images):
    suite = corrupted_suite(images[:5], ["contrast", "gaussian_noise"], [1, 5], seed=3)
    assert suite.shape == (2, 2, 5, 3, 32, 32)
    assert np.array_equal(suite, corrupted_suite(images[:5], ["contrast", "gaussian_noise"], [1, 5], seed=3))


def test_bad_names_and_severities_are_named():
    pixels = np.zeros((1, 3, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="fog"):
        corrupt(pixels, "fog", 1)
    with pytest.raises(ValueError, match=r"\[7\]"):
        corrupt(pixels, "contrast", 7)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(pixels.astype(float), "contrast", 1)


def test_robustness_table_by_hand():
    # 2 levels (dense, prune90) x 2 networks x 1 corruption x 2 severities.
    correct = np.array([[[[0.8, 0.6]], [[0.6, 0.4]]],
                        [[[0.5, 0.3]], [[0.5, 0.1]]]])
    clean = np.array([[0.9, 0.9], [0.8, 0.6]])
    table = robustness_table(correct, clean, ["prune90"], ["contrast"], [1, 5])
    row = table[(table["level"] == "prune90") & (table["severity"] == 5)].iloc[0]
    assert row["accuracy"] == pytest.approx(0.2)
    assert row["retained"] == pytest.approx(0.2 / 0.7)
    assert row["vs_dense"] == pytest.approx(0.2 - 0.5)
    assert table[(table["level"] == "dense") & (table["severity"] == 0)]["accuracy"].item() == pytest.approx(0.9)
    summary = robustness_summary(table)
    assert summary.loc["prune90", "contrast"] == pytest.approx(0.35)
    assert summary.loc["dense", "clean"] == pytest.approx(0.9)
    assert summary.loc["prune90", "retained"] == pytest.approx(0.35 / 0.7)
    with pytest.raises(ValueError, match="expected"):
        robustness_table(correct, clean, ["prune90", "int8"], ["contrast"], [1, 5])
