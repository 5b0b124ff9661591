"""curate: find the images compressed models forget (Pruning Identified Exemplars) and review them in FiftyOne."""

__version__ = "0.1.0"
