"""curate: find the images compressed models forget (Pruning Identified Exemplars) and review them in FiftyOne.

The Python API (:mod:`curate.api`), importable from here::

    import curate
    outcome = curate.run("path/to/images", dataset="my-data")   # train, compress, score, write FiftyOne
    curate.status("my-data").counts                             # flags by review state
    curate.calibrate("my-data")                                 # the label audit's P(label wrong), into the App
    curate.export("my-data", "out/clean")                       # cleaned splits, every change explained
    curate.weights("my-data", "out/weights.csv")                # PIE-upweighted sample weights
    curate.report("my-data")                                    # HTML report of the paper's analyses
"""

__version__ = "0.2.0"

_API = ("run", "demo", "status", "calibrate", "export", "weights", "report", "runs", "delete_run", "RunOptions", "RunOutcome",
        "ReviewStatus", "ReportOutcome", "USER_ERRORS")


def __getattr__(name):
    # Lazily, so that `import curate` (and `curate --help`) does not load torch and FiftyOne.
    if name in _API:
        from curate import api

        return getattr(api, name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")


def weighted_sampler(weights, num_samples=None, replacement=True, generator=None):
    """A ``torch.utils.data.WeightedRandomSampler`` from ``curate weights`` output; see :func:`curate.fiftyone.export.weighted_sampler`."""
    from curate.fiftyone.export import weighted_sampler as _weighted_sampler

    return _weighted_sampler(weights, num_samples, replacement, generator)
