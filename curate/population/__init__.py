"""The population: run configuration, models, training, compression (pruning, quantization), the
robustness study, jobs and their executor, and the assembly of a run (:mod:`.pipeline`)."""
