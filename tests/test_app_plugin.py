"""The App plugin: installed by the CLI, found by FiftyOne, its operators tag what export reads."""

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import flag_label_noise, invoke

REVIEW = "@curate/curate/review_samples"
STATUS = "@curate/curate/review_status"
COMPUTE = "@curate/curate/compute_pies"
CALIBRATE = "@curate/curate/calibrate_by_audit"


@pytest.fixture(scope="module")
def installed(fo):
    result = invoke("plugin", "install")
    assert result.exit_code == 0, result.output
    return Path(os.environ["FIFTYONE_PLUGINS_DIR"]) / "curate"


@pytest.fixture(scope="module")
def dataset(fo, digits_run, installed):
    """A clone of the session's digits dataset (its curate run record comes along)."""
    dataset = digits_run[0].clone("test-plugin", persistent=True)
    flag_label_noise(dataset, 6)
    return dataset


def review(dataset, ids, **params):
    import fiftyone.operators as foo

    return foo.execute_operator(REVIEW, ctx={"dataset": dataset, "selected": ids, "params": params}).result


def test_fiftyone_lists_the_installed_operators(installed):
    import fiftyone.operators as foo

    uris = {op.uri for op in foo.list_operators(enabled=True)}
    assert {REVIEW, STATUS, COMPUTE, CALIBRATE, "@curate/curate/export_dataset"} <= uris
    assert (installed / "fiftyone.yml").exists()


def test_reinstall_replaces_its_own_copy_but_not_a_stranger(tmp_path):
    assert invoke("plugin", "install", "--plugins-dir", str(tmp_path)).exit_code == 0
    again = invoke("plugin", "install", "--plugins-dir", str(tmp_path))
    assert again.exit_code == 0, again.output
    stranger = tmp_path / "other"
    (stranger / "curate").mkdir(parents=True)
    (stranger / "curate" / "mine.txt").write_text("someone else's plugin")
    refused = invoke("plugin", "install", "--plugins-dir", str(stranger))
    assert refused.exit_code == 2
    assert "was not installed by curate" in refused.output
    assert (stranger / "curate" / "mine.txt").read_text() == "someone else's plugin"
    assert invoke("plugin", "uninstall", "--plugins-dir", str(stranger)).exit_code == 2
    assert (stranger / "curate" / "mine.txt").exists()
    # A file a user added to curate's own install is theirs: neither reinstall nor uninstall deletes it.
    (tmp_path / "curate" / "my_operator.py").write_text("# mine")
    for command in ("install", "uninstall"):
        refused = invoke("plugin", command, "--plugins-dir", str(tmp_path))
        assert refused.exit_code == 2 and "my_operator.py" in refused.output, refused.output
    (tmp_path / "curate" / "my_operator.py").unlink()
    removed = invoke("plugin", "uninstall", "--plugins-dir", str(tmp_path))
    assert removed.exit_code == 0 and not (tmp_path / "curate").exists()
    assert "not installed" in invoke("plugin", "uninstall", "--plugins-dir", str(tmp_path)).output


def test_review_operator_writes_the_tags_export_reads(fo, dataset, tmp_path):
    noisy = dataset.match_tags("label_noise").sort_by("filepath").values("id")
    others = dataset.match(~fo.ViewField("curate_label_noise")).sort_by("filepath").values("id")
    assert len(noisy) >= 3
    dataset.select(noisy[0]).tag_samples(["rejected", "mine"])  # a hand-tagged, now changed, decision

    assert review(dataset, noisy[:2], decision="confirm")["reviewed"] == 2
    assert review(dataset, [noisy[2]], decision="relabel_suggested")["reviewed"] == 1
    assert review(dataset, [others[0]], decision="relabel", label="7")["reviewed"] == 1
    assert review(dataset, [others[1]], decision="remove")["reviewed"] == 1

    tags = dict(zip(dataset.values("id"), dataset.values("tags")))
    assert "confirmed" in tags[noisy[0]] and "rejected" not in tags[noisy[0]] and "mine" in tags[noisy[0]]
    assert "relabel:suggested" in tags[noisy[2]] and "relabel:7" in tags[others[0]]

    status = fo.operators.execute_operator(STATUS, ctx={"dataset": dataset, "params": {}}).result
    assert "| label_noise |" in status["status"], status["status"]
    assert "Label audit: " in status["status"]  # what the label audit says so far, as curate status prints it
    assert status["dropped"] == 3 and status["relabelled"] == 2  # 2 confirmed + 1 removed; 2 relabels

    out = tmp_path / "export"
    result = invoke("export", "test-plugin", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "3 left out, 2 relabelled" in result.output

    # The same export from the App; it refuses to overwrite without the tick, as the CLI does.
    export = "@curate/curate/export_dataset"
    params = {"out": str(out), "format": "csv"}
    with pytest.raises(Exception, match="already exists; choose a new directory or pass --force"):
        fo.operators.execute_operator(export, ctx={"dataset": dataset, "params": params})
    from_app = fo.operators.execute_operator(export, ctx={"dataset": dataset, "params": {**params, "force": True}})
    assert "3 left out, 2 relabelled" in from_app.result["summary"]
    assert from_app.result["command"].endswith("--format csv --run-key curate --force")


def test_review_operator_refuses_what_it_cannot_do(fo, dataset):
    import fiftyone.operators as foo

    unflagged = dataset.match(~fo.ViewField("curate_label_noise")).sort_by("filepath").values("id")[5:7]
    before = dataset.select(unflagged).values("tags")
    for ids, params, message in [
        (unflagged, {"decision": "relabel_suggested"}, "2 of the 2 selected samples have no suggested label"),
        # FiftyOne validates the class against the operator's own input form before curate sees it.
        (unflagged, {"decision": "relabel", "label": "eleven"}, "Path: label. Reason: Invalid enum value"),
        ([], {"decision": "confirm"}, "No samples selected"),
    ]:
        with pytest.raises(Exception, match=message):
            foo.execute_operator(REVIEW, ctx={"dataset": dataset, "selected": ids, "params": params})
    assert dataset.select(unflagged).values("tags") == before


def test_a_whole_filtered_view_only_when_asked(fo, dataset):
    import fiftyone.operators as foo

    counts = dataset.count_sample_tags()
    tag = max((t for t in counts if t.startswith("pie:")), key=counts.get)  # the largest category
    multi = dataset.match_tags(tag)
    assert 0 < len(multi) < len(dataset)
    ctx = {"dataset": dataset, "view": multi, "params": {"decision": "reject"}}
    with pytest.raises(Exception, match="No samples selected"):
        foo.execute_operator(REVIEW, ctx=ctx)
    assert not dataset.match_tags("rejected").match_tags(tag)
    ctx["params"]["whole_view"] = True
    assert foo.execute_operator(REVIEW, ctx=ctx).result["reviewed"] == len(multi)
    assert dataset.match_tags(tag).match_tags("rejected", bool=False).count() == 0
    # The whole dataset is never a target, even when asked.
    with pytest.raises(Exception, match="No samples selected"):
        foo.execute_operator(REVIEW, ctx={"dataset": dataset, "params": {"decision": "confirm", "whole_view": True}})


def test_the_form_says_what_curate_found(fo, dataset):
    from curate.frontends.app_plugin import selection_summary

    noisy = dataset.match_tags("label_noise").sort_by("filepath")
    one = selection_summary(noisy.limit(1), "curate")
    assert one.startswith("curate: ") and "models say" in one and "labelled" in one
    pies = dataset.match_tags("pie").limit(3)
    assert selection_summary(pies, "curate").startswith("3 samples: ")


def test_compute_operator_runs_curate_on_the_dataset_in_the_app(fo, installed, digits_images):
    import fiftyone.operators as foo

    dataset = fo.Dataset("test-operator-run")
    keep = np.flatnonzero(np.isin(digits_images.labels, [0, 1, 7]))[:240]
    dataset.add_samples([fo.Sample(filepath=digits_images.filepaths[i],
                                   labels=fo.Classification(label=digits_images.classes[digits_images.labels[i]]))
                         for i in keep])
    params = {"label_field": "labels", "run_key": "fromapp", "members": 2, "folds": 2, "epochs": 2,
              "finetune_epochs": 1, "sparsities": "0.9", "quantize": "none", "robustness_images": 0,
              "label_probes": 0.05, "image_size": 8}
    # Delegated, as the App proposes by default; `fiftyone delegated launch` would run the queue.
    from fiftyone.operators.delegated import DelegatedOperationService

    queued = foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": params, "request_delegation": True})
    assert queued.delegated
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name="test-operator-run")
    (operation,) = service.list_operations(dataset_name="test-operator-run")
    assert operation.run_state == "completed", operation.result.error
    result = operation.result.result
    assert result["command"].startswith("curate run test-operator-run --label-field labels --run-key fromapp")
    assert "curate: 240 images, 3 classes, 2 members x 2 folds" in result["summary"]
    assert "--label-probes 0.05" in result["command"]
    dataset.reload()
    assert set(dataset.info["curate"]["fromapp"]["label_noise_count"]) == {"confident_learning", "label_probes",
                                                                           "probes"}
    assert dataset.list_runs() == ["fromapp"] and dataset.has_field("fromapp_pie")
    from curate.frontends.app_plugin import classification_fields

    assert classification_fields(dataset) == ["labels"]  # not fromapp_dense, fromapp_prune90, ...
    assert "fromapp-pies" in dataset.list_saved_views()

    bad = {**params, "sparsities": "0.9,1.5"}
    with pytest.raises(Exception, match=r"curate run failed: Sparsities must lie strictly between 0 and 1, got \[1.5\]"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": bad})


def test_calibrate_operator_writes_what_curate_calibrate_writes(fo, dataset):
    import fiftyone.operators as foo

    with pytest.raises(Exception, match="No image of the 'label-audit' view is reviewed yet"):
        foo.execute_operator(CALIBRATE, ctx={"dataset": dataset, "params": {}})
    audit = dataset.load_saved_view("label-audit").values("id")
    try:
        dataset.select(audit[:3]).tag_samples("label:right")
        status = foo.execute_operator(STATUS, ctx={"dataset": dataset, "params": {}}).result["status"]
        assert "curate: calibrate P(label wrong) by the label audit" in status
        done = foo.execute_operator(CALIBRATE, ctx={"dataset": dataset, "params": {}}).result
        assert "calibrated by 3 reviewed label-audit images (0 wrongly labelled)" in done["summary"]
        assert done["command"] == "curate calibrate test-plugin --run-key curate"
        assert dataset.count("curate_p_label_wrong_audited") == dataset.count("curate_p_label_wrong")
    finally:
        dataset.select(audit[:3]).untag_samples("label:right")
