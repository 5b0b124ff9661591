"""A curate run is a FiftyOne run of its own class: FiftyOne's own delete_run and rename_run remove and
rename everything it wrote, as they do for FiftyOne Brain's runs."""

import curate
from curate.fiftyone.runs import CurateRunConfig
from helpers import invoke


def _written(dataset, prefix):
    return sorted(f for f in dataset.get_field_schema() if f.startswith(prefix))


def test_fiftyone_renames_and_deletes_a_curate_run(fo, digits_run):
    _, run_dir, _ = digits_run
    curate.run("digits", dataset="test-fo-runs", run_dir=run_dir, progress=False, members=2, folds=2, epochs=2,
               finetune_epochs=1, sparsities=(0.5, 0.9), image_size=8)  # the session's run: nothing retrained
    dataset = fo.load_dataset("test-fo-runs")
    config = dataset.get_run_info("curate").config
    assert isinstance(config, CurateRunConfig) and config.method == "curate" and config.status == "complete"
    # A calibrated run (curate calibrate adds a field after the run): rename and delete take it along too.
    dataset.select(dataset.load_saved_view("label-audit").first().id).tag_samples("label:right")
    curate.calibrate(dataset)
    fields, n_pies = _written(dataset, "curate_"), dataset.count_sample_tags()["pie"]
    assert "curate_p_label_wrong_audited" in fields
    views = set(dataset.list_saved_views())

    dataset.rename_run("curate", "second")
    dataset.reload()
    assert _written(dataset, "curate_") == []
    assert _written(dataset, "second_") == sorted(f.replace("curate_", "second_", 1) for f in fields)
    assert "pie" not in dataset.count_sample_tags() and dataset.count_sample_tags()["second:pie"] == n_pies
    assert not views & set(dataset.list_saved_views())
    assert len(dataset.load_saved_view("second-pies")) == n_pies
    status = invoke("status", "test-fo-runs", "--run-key", "second")
    assert status.exit_code == 0 and "samples scored by run 'second'" in status.output, status.output

    dataset.delete_run("second")  # FiftyOne's own API, not curate's
    dataset.reload()
    assert not dataset.list_runs() and not dataset.list_brain_runs() and not dataset.list_saved_views()
    assert _written(dataset, "second_") == [] and not dataset.has_sample_field("hardness")
    assert not any(t.startswith("second") or t == "pie" for t in dataset.count_sample_tags())
    assert "second" not in (dataset.info.get("curate") or {})
