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


def test_brain_fields_are_what_fiftyone_brain_computes_and_recorded_as_its_runs(fo):
    """curate writes hardness and mistakenness in one batch; the values and run records must be the Brain's."""
    from types import SimpleNamespace

    import fiftyone.brain as fob
    import numpy as np

    from curate.fiftyone.write import write_brain_fields

    rng = np.random.default_rng(0)
    dataset = fo.Dataset("test-brain-fields")
    classes = ["a", "b", "c"]
    samples = []
    for i in range(30):
        logits = rng.normal(0, 2, 3)
        sample = fo.Sample(filepath=f"/nowhere/{i}.png", gt=fo.Classification(label=classes[i % 3]))
        if i != 7:  # one sample the networks did not predict
            sample["pred"] = fo.Classification(label=classes[int(np.argmax(logits))], logits=logits.tolist())
        samples.append(sample)
    dataset.add_samples(samples)
    fob.compute_hardness(dataset, "pred", hardness_field="brain_hardness", progress=False)
    fob.compute_mistakenness(dataset, "pred", "gt", mistakenness_field="brain_mistakenness", use_logits=True,
                             progress=False)
    keys = {"hardness": "ours_hardness", "mistakenness": "ours_mistakenness"}
    assert write_brain_fields(dataset, SimpleNamespace(dense="pred"), "gt", keys) == list(keys.values())
    for kind in ("hardness", "mistakenness"):
        theirs, ours = dataset.values(f"brain_{kind}"), dataset.values(f"ours_{kind}")
        assert [v is None for v in theirs] == [v is None for v in ours]
        np.testing.assert_allclose([v for v in ours if v is not None], [v for v in theirs if v is not None],
                                   rtol=1e-9, atol=1e-12)
        their_config = dataset.get_brain_info(f"brain_{kind}").config
        our_config = dataset.get_brain_info(f"ours_{kind}").config
        assert type(our_config) is type(their_config)
        assert {k: v for k, v in our_config.serialize().items() if not k.endswith("_field")} == \
            {k: v for k, v in their_config.serialize().items() if not k.endswith("_field")}
    assert dataset.values("ours_mistakenness")[7] == 1.0  # no prediction: the Brain calls it mistaken
    dataset.delete_brain_run("ours_hardness")
    assert not dataset.has_sample_field("ours_hardness"), "the Brain deletes it as one of its own"
    dataset.delete()


def test_level_predictions_are_written_as_fiftyone_writes_a_classification(fo):
    """The run writes each level's predictions in FiftyOne's stored form directly (curate.fiftyone.write.
    classification_documents): read back, they are the Classifications FiftyOne itself would have stored."""
    import fiftyone.core.fields as fof

    from curate.fiftyone.write import classification_documents

    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=f"/tmp/curate-test-{i}.png") for i in range(3)])
    ids = dataset.values("id")
    labels, confidences, tags = ["cat", "dog", "cat"], [0.9, 0.6, 0.51], [[], ["pie"], []]
    dataset.add_sample_field("fast", fof.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    dataset.set_values("fast", dict(zip(ids, classification_documents(fo, labels, confidences, tags))),
                       key_field="id", expand_schema=False, validate=False)
    dataset.set_values("slow", dict(zip(ids, [fo.Classification(label=label, confidence=c, tags=t)
                                              for label, c, t in zip(labels, confidences, tags)])), key_field="id")
    dataset.reload()
    for fast, slow in zip(dataset.values("fast"), dataset.values("slow")):
        assert isinstance(fast, fo.Classification) and fast.id != slow.id
        assert {k: v for k, v in fast.to_dict().items() if k != "_id"} == \
               {k: v for k, v in slow.to_dict().items() if k != "_id"}
    assert dataset.count_label_tags("fast") == {"pie": 1}
    assert dataset.bounds("fast.confidence") == (0.51, 0.9)
    assert dataset.get_field("fast.label") is not None and dataset.distinct("fast.label") == ["cat", "dog"]
    dataset.delete()


def test_the_run_declares_its_fields_in_one_update_with_the_schema_add_sample_field_gives(fo, monkeypatch):
    from curate.fiftyone.runs import names_for
    from curate.fiftyone.write import declare_fields, field_types

    types = field_types(fo, names_for("curate", ["prune50", "int8"]))
    merged, one_by_one = fo.Dataset(), fo.Dataset()
    reloads = []
    monkeypatch.setattr(type(merged), "_reload", lambda self, hard=False, _reload=type(merged)._reload:
                        (reloads.append(self.name), _reload(self, hard)))
    declare_fields(merged, types)
    assert reloads == [merged.name], "one schema update, one reload"
    monkeypatch.delattr(type(one_by_one), "_merge_sample_field_schema")
    declare_fields(one_by_one, types)
    assert len(reloads) == 1 + len(types)
    schemas = [{name: str(field) for name, field in dataset.get_field_schema().items()}
               for dataset in (merged, one_by_one)]
    assert schemas[0] == schemas[1] and set(types) <= set(schemas[0])
    assert merged.get_field("curate_pie_levels").field.__class__.__name__ == "StringField"
    merged.delete()
    one_by_one.delete()


def test_a_runs_values_are_stored_as_set_values_stores_them(fo, monkeypatch):
    import fiftyone.core.fields as fof

    from curate.fiftyone import write
    from curate.fiftyone.write import classification_documents, declare_fields, write_values

    classification = (fof.EmbeddedDocumentField, {"embedded_doc_type": fo.Classification})
    types = {"c_dense": classification, "c_level": classification, "c_suggested": classification,
             "c_pie": (fof.BooleanField, {}), "c_score": (fof.FloatField, {}), "c_reason": (fof.StringField, {}),
             "c_levels": (fof.ListField, {"subfield": fof.StringField}), "c_cluster": (fof.IntField, {})}
    values = {"c_dense": [fo.Classification(label="cat", confidence=0.9, logits=[0.1, 2.0]),
                          fo.Classification(label="dog", confidence=0.6, logits=[1.0, 0.5]), None],
              "c_level": classification_documents(fo, ["cat", "dog", "cat"], [0.9, 0.6, 0.5], [[], ["pie"], []]),
              "c_suggested": [None, fo.Classification(label="cat", confidence=0.7), None],
              "c_pie": [False, True, False], "c_score": [0.1, 0.9, None], "c_reason": [None, "because", None],
              "c_levels": [[], ["prune90"], []], "c_cluster": [None, 3, 3]}
    halfway, stored = [], []
    for bulk in (True, False):
        dataset = fo.Dataset()
        dataset.add_samples([fo.Sample(filepath=f"/tmp/curate-test-{i}.png") for i in range(3)])
        if not bulk:
            monkeypatch.setattr(write, "_bulk_writer", lambda dataset: None)
        declare_fields(dataset, types)
        before = dataset.values("last_modified_at")
        write_values(dataset, dataset.values("id"), values, halfway=lambda: halfway.append(bulk))
        assert all(after > then for after, then in zip(dataset.values("last_modified_at"), before))
        dataset.reload()
        stored.append({field: [v.to_dict() if hasattr(v, "to_dict") else v for v in dataset.values(field)]
                       for field in values})
        assert dataset.count_label_tags("c_level") == {"pie": 1}
        assert list(dataset.values("c_dense.logits")[0]) == [0.1, 2.0] and dataset.match(fo.ViewField("c_pie")).count() == 1
        dataset.delete()
    assert halfway == [True, False]
    for field in values:  # the ids of fo.Classification objects are their own; the rest is the same
        for a, b in zip(*(column[field] for column in stored)):
            if isinstance(a, dict) and not field.startswith("c_level"):
                a, b = {k: v for k, v in a.items() if k != "_id"}, {k: v for k, v in b.items() if k != "_id"}
            assert a == b, field
