"""curate: find the images compressed models forget (Pruning Identified Exemplars) and review them in FiftyOne."""

__version__ = "0.1.0"


def weighted_sampler(weights, num_samples=None, replacement=True, generator=None):
    """A ``torch.utils.data.WeightedRandomSampler`` from ``curate weights`` output; see :func:`curate.export.weighted_sampler`."""
    from curate.export import weighted_sampler as _weighted_sampler

    return _weighted_sampler(weights, num_samples, replacement, generator)
