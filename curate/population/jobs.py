"""One population job: train a dense network on its folds, compress it, and predict every image
(held out and in sample), the probes and the corrupted images. Returns arrays; the assembly
(:mod:`.pipeline`) places them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from curate.data.images import PixelFile
from curate.population.config import CurateConfig
from curate.population.executor import JobGroup, MemberJob


@dataclass(kw_only=True)
class NetworkResult:
    """What one job returns: one dense network's predictions and those of its compressed copies.

    Every prediction covers all N images; :func:`curate.population.pipeline.run_population` files the
    network's held-out fold as out-of-sample and the rest as in-sample.

    Attributes:
        dense: ``(N, C)`` the dense network's probabilities.
        control: ``(N, C)`` the control copy's: the dense network fine-tuned exactly as the first pruning
            level is, seed included, at sparsity 0 (:func:`curate.population.train.control_copy`); on the
            network's held-out fold only (NaN elsewhere), as the PIEs it is compared with.
        compressed: ``(L, N, C)`` each compressed copy's (pruning levels, then quantization formats, filter
            pruning, students); beyond the pruning levels, on the network's held-out fold only (NaN elsewhere).
        regions: ``(len(REGIONS), N, C)`` the dense network's probabilities on each image half
            (:func:`curate.population.train.predict_regions`), for its held-out images only (NaN elsewhere).
        probe_regions: ``(len(REGIONS), P2, C)`` the same on the two-class probes (the probes whose windows
            set the ``multi_object`` threshold; :attr:`NetworkJobs.region_probe_rows`).
        forgotten, forgotten_compressed: ``(N, C)`` and ``(len(sparsities), N, C)``: the dense network
            and each pruned copy after second-split forgetting, on the images it trained on (NaN on its
            held-out fold).
        aum: ``(N,)`` area under the margin of each training image, NaN for held-out images and probes.
        probes: ``(1 + len(sparsities), P, C)`` the dense network's and each pruned copy's probabilities on the
            probe images (what sets the flags' thresholds).
        sparsity: ``(L,)`` share of the dense network's convolution and linear weights each compressed copy
            lacks: its zeros (unstructured pruning, rounding to zero), or the weights it does not have
            (filter pruning, a student).
        footprint: ``(L+1, 3)`` the dense network's and each copy's nonzero weights, MACs per image and CPU
            milliseconds per image (:func:`curate.population.footprint.footprint`; timed in the run's first job
            only, NaN in the others).
        label_probe_index, label_probe_label: the training images given a random wrong label, and it.
        features, copy_features, copy_rows: the first job's dense network's features of every image ``(N, D)``
            and of copies it made of images ``copy_rows`` (:func:`curate.population.features.features_and_copies`),
            for the duplicate search; ``None`` in the other jobs.
        robust_rows, robust_correct, robust_clean: held-out images corrupted for robustness, and the
            accuracy of every version of the network on them (``None`` with robustness off).
        seconds: wall time of the job.
    """

    dense: np.ndarray
    control: np.ndarray
    regions: np.ndarray
    probe_regions: np.ndarray
    compressed: np.ndarray
    forgotten: np.ndarray
    forgotten_compressed: np.ndarray
    aum: np.ndarray
    probes: np.ndarray
    sparsity: np.ndarray
    footprint: np.ndarray
    label_probe_index: np.ndarray
    label_probe_label: np.ndarray
    robust_rows: np.ndarray | None = None
    robust_correct: np.ndarray | None = None
    robust_clean: np.ndarray | None = None
    features: np.ndarray | None = None
    copy_features: np.ndarray | None = None
    copy_rows: np.ndarray | None = None
    seconds: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as named arrays, for :meth:`curate.data.store.RunStore.save_job`."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def complete(cls, arrays: dict[str, np.ndarray]) -> bool:
        """Whether ``arrays`` hold every field a result needs (a file from an older curate may not)."""
        return all(f.name in arrays for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "NetworkResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (float(v) if k == "seconds" else v) for k, v in arrays.items() if k in names})


class RowView:
    """Rows ``rows`` of ``base`` without copying them: a network's training images, read batch by batch.

    Keeps a memory-mapped image cache on disk when the dataset does not fit in memory; ``rows`` is
    ascending, so every batch reads the memmap in order.
    """

    def __init__(self, base: np.ndarray, rows: np.ndarray):
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.base[self.rows[idx]])


@dataclass
class NetworkJobs:
    """Everything a population job needs, and the function every job runs: train one network, compress
    copies of it, predict every image.

    Picklable, so that an executor can ship it once to other processes or machines
    (:class:`curate.population.executor.RayExecutor` puts it in Ray's object store) and call it there. With
    ``pixel_file`` set, it pickles without its pixels: a job elsewhere opens that file instead (memory-mapped,
    so the processes of a machine share one copy), and a million photos never travel through the object
    store; :meth:`carrying_pixels` is the copy for machines that cannot read the file.
    The dense network and its pruned copies predict every image; :func:`curate.population.pipeline.run_population`
    files the network's held-out fold as out-of-sample and the rest as in-sample. The other copies predict the
    held-out fold only, and robustness uses a seeded sample of it.
    """

    config: CurateConfig
    pixels: np.ndarray | None
    labels: np.ndarray
    n_classes: int
    folds: dict[int, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    probes: np.ndarray
    pixel_file: PixelFile | None = None  # where ``pixels`` lie on disk (:func:`curate.data.images.decoded_file`)
    region_probe_rows: np.ndarray | None = None  # the probes whose windows are predicted (None: all)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.pixel_file is not None:
            state["pixels"] = None  # opened from pixel_file where the job runs
        return state

    def carrying_pixels(self) -> "NetworkJobs":
        """A copy that pickles with its pixels, for workers that cannot read :attr:`pixel_file`."""
        return dataclasses.replace(self, pixels=np.asarray(self.read_pixels()), pixel_file=None)

    def read_pixels(self) -> np.ndarray:
        if self.pixels is not None:
            return self.pixels
        if not self.pixel_file.readable():
            import socket

            raise RuntimeError(
                f"The worker on {socket.gethostname()} cannot read the run's decoded pixels at {self.pixel_file.path} "
                "(a node that joined after the run started?). Put the run directory (--run-dir) on a filesystem "
                "every node mounts at the same path.")
        return self.pixel_file.open()

    def __call__(self, group: JobGroup | MemberJob, progress=None) -> list[NetworkResult] | NetworkResult:
        """Run the jobs of ``group``, their networks trained together where they can
        (:func:`curate.population.train.fit_together`); ``progress(steps)`` is called as training steps
        finish (None: silently). One result per job, in order; of a single job, its result."""
        import torch

        if isinstance(group, MemberJob):
            return self(JobGroup((group,)), progress)[0]

        from curate.data.faults import checkpoint
        from curate.population.models import build_model, load_weights
        from curate.population.train import (FitPart, Normalizer, configure_threads, control_copies, forgotten_copies,
                                             initialise, prune_levels_of, resolve_device, train_networks)

        config, pixels, labels, n_classes = self.config, self.read_pixels(), self.labels, self.n_classes
        configure_threads()
        device = resolve_device(config.device)
        normalize = Normalizer(self.mean, self.std, device)
        together = len(group.jobs)
        started = time.perf_counter()
        networks = [self._network(job, pixels) for job in group.jobs]
        models = []
        for job, net in zip(group.jobs, networks):
            torch.manual_seed(job.seed)
            model = build_model(config.model, n_classes).to(device)
            if config.weights:
                load_weights(model, config.weights)
            else:
                initialise(model, net.train_pixels, normalize, config.train)
            models.append(model.to(memory_format=torch.channels_last))
        train_networks(models, [FitPart(net.train_pixels, net.train_labels, net.job.seed, margins=net.margins)
                                for net in networks], normalize, config.train, together=together, progress=progress)
        checkpoint("network")
        training = [FitPart(net.train_pixels, net.train_labels, net.job.seed) for net in networks]
        pruned = prune_levels_of(models, training, normalize, config.train, config.sparsities, together=together,
                                 progress=progress)
        controls = control_copies(models, training, normalize, config.train, together=together, progress=progress)
        # The dense network and each pruned copy unlearn on the same held-out images, seeded alike, so
        # that the copies' forgotten views differ from the dense one's by the pruning alone.
        unlearning = [[model] + copies for model, copies in zip(models, pruned)]
        forgotten = forgotten_copies(
            [net for nets in unlearning for net in nets],
            [FitPart(RowView(pixels, net.held_idx), labels[net.held_idx], net.job.seed + 104723)
             for net, nets in zip(networks, unlearning) for _ in nets],
            normalize, config.train, together=together, progress=progress)
        per_network = 1 + len(config.sparsities)
        results = [self._result(net, model, copies, control, forgotten[i * per_network:(i + 1) * per_network],
                                normalize, progress)
                   for i, (net, model, copies, control) in enumerate(zip(networks, models, pruned, controls))]
        for result in results:  # the group's wall time, shared evenly by its networks
            result.seconds = (time.perf_counter() - started) / together
        return results

    def _network(self, job: MemberJob, pixels: np.ndarray) -> "_Network":
        held_out = self.folds[job.member] == job.fold
        train_idx = np.flatnonzero(~held_out)
        train_labels, probe_rows = label_probes(self.labels[train_idx], self.n_classes, self.config.label_probes,
                                                job.seed)
        return _Network(job=job, held_out=held_out, held_idx=np.flatnonzero(held_out), train_idx=train_idx,
                        train_pixels=RowView(pixels, train_idx), train_labels=train_labels,
                        probe_rows=probe_rows, margins=np.zeros((len(train_idx), 2)))

    def _result(self, net: "_Network", model, pruned: list, control, forgotten_nets: list, normalize,
                progress) -> NetworkResult:
        """The rest of a job once its network, pruned copies, control copy and forgotten copies are trained:
        the other compressed copies, one at a time, and every prediction."""
        import torch

        from curate.population.features import features_and_copies
        from curate.population.footprint import footprints
        from curate.population.quantize import quantized_copy, runs_on_cpu_only
        from curate.population.train import (REGIONS, Normalizer, distilled_students, filter_levels,
                                             for_inference, measured_sparsity, predict_probs, predict_regions)

        config, pixels, labels, n_classes, job = self.config, self.read_pixels(), self.labels, self.n_classes, net.job
        train_idx, held_idx, train_pixels, train_labels = net.train_idx, net.held_idx, net.train_pixels, net.train_labels
        # Mirror-image averaging only where mirror images share the label (hflip training says they do).
        flip = config.train.flip_test and config.train.hflip

        # Each network that predicts several image sets has its batch norms folded once (for_inference copies
        # it), and the copies go when the predictions are done.
        folded = {}

        def inference(network):
            if id(network) not in folded:
                folded[id(network)] = for_inference(network)
            return folded[id(network)]

        def predict(network, images, norm, *, once=False):
            return predict_probs(network if once else inference(network), images, norm, flip=flip)

        cpu_normalize = Normalizer(self.mean, self.std, torch.device("cpu"))
        margins = net.margins
        margins[net.probe_rows] = np.nan  # a probe's margin is about its wrong label, not the image's own
        aum = np.full(len(labels), np.nan, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            aum[train_idx] = margins[:, 0] / margins[:, 1]
        networks = [(model, normalize)] + [(copy, normalize) for copy in pruned]
        for fmt in config.quantizations:
            networks.append((quantized_copy(model, fmt), cpu_normalize if runs_on_cpu_only(fmt) else normalize))
        networks += [(smaller, normalize) for smaller in filter_levels(
            model, train_pixels, train_labels, normalize, config.train, config.filter_prunings, job.seed,
            criterion=config.filter_criterion, progress=progress)]
        networks += [(student, normalize) for student in distilled_students(
            model, train_pixels, train_labels, normalize, config.train, [config.student(s) for s in config.distillations],
            n_classes, job.seed, progress=progress)]
        n_pruned = len(config.sparsities)

        def on_held_out(network, norm, once=False):  # NaN on the training images: no one reads them there
            out = np.full((len(labels), n_classes), np.nan, dtype=np.float32)
            out[held_idx] = predict(network, RowView(pixels, held_idx), norm, once=once)
            return out

        # The dense network and its pruned copies on every image: their in-sample views feed the flags
        # (curate.science.flags.in_sample_views). The other kinds are compared on held-out images only.
        probs = [predict(network, pixels, norm) if k <= n_pruned else on_held_out(network, norm)
                 for k, (network, norm) in enumerate(networks)]
        regions = np.full((len(REGIONS), len(labels), n_classes), np.nan, dtype=np.float32)
        regions[:, held_idx] = predict_regions(inference(model), RowView(pixels, held_idx), normalize)
        region_probes = self.probes if self.region_probe_rows is None else self.probes[self.region_probe_rows]
        probe_regions = predict_regions(inference(model), region_probes, normalize)
        probe_probs = np.stack([predict(network, self.probes, norm) for network, norm in networks[:1 + n_pruned]])
        # Only the images each copy trained on are read from the forgotten views (they measure memorisation).
        forgotten = np.full((1 + n_pruned, len(labels), n_classes), np.nan, dtype=np.float32)
        for k, network in enumerate(forgotten_nets):
            forgotten[k, train_idx] = predict(network, train_pixels, normalize, once=True)
        robust = _robustness(config, job, networks, pixels, labels, net.held_out, probs,
                             lambda network, images, norm: predict_probs(inference(network), images, norm)
                             ) if config.robustness else {}
        folded.clear()
        # One network's features put every image in one space for the duplicate search.
        features = features_and_copies(model, pixels, normalize, job.seed) if is_feature_job(job) else {}
        # A quantized copy counts as the network it rounds (torch's dynamic int8 hides its weights).
        same_shape = len(config.sparsities) + len(config.quantizations)
        quantized = range(1 + len(config.sparsities), 1 + same_shape)
        # Every network of a run has one architecture, so one job times their CPU latency for all (it was 4% of
        # every job of the demo); the others count weights and MACs only.
        fps = list(footprints([network for network, _ in networks], config.image_size,
                              shapes_of=[model if i in quantized else None for i in range(len(networks))],
                              latency=is_feature_job(job)))
        return NetworkResult(
            dense=probs[0], control=on_held_out(control, normalize, once=True), regions=regions,
            probe_regions=probe_regions, compressed=np.stack(probs[1:]), aum=aum,
            forgotten=forgotten[0], forgotten_compressed=forgotten[1:], probes=probe_probs,
            sparsity=np.array([measured_sparsity(network) for network, _ in networks[1:1 + same_shape]]
                              + [1.0 - fp[0] / fps[0][0] for fp in fps[1 + same_shape:]]),
            footprint=np.stack(fps),
            label_probe_index=train_idx[net.probe_rows], label_probe_label=train_labels[net.probe_rows],
            **robust, **features)


@dataclass
class _Network:
    """One job's share of a group: its images, the labels it trains with (label probes included) and its
    margin accumulator."""

    job: MemberJob
    held_out: np.ndarray
    held_idx: np.ndarray
    train_idx: np.ndarray
    train_pixels: RowView
    train_labels: np.ndarray
    probe_rows: np.ndarray
    margins: np.ndarray


def is_feature_job(job: MemberJob) -> bool:
    """The job whose dense network embeds every image for the duplicate search: the first one."""
    return job.member == 0 and job.fold == 0


def label_probes(labels: np.ndarray, n_classes: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A network's training labels with ``share`` of them (seeded) moved to a random other class.

    Returns ``(labels_to_train_on, probe_rows)``; the given ``labels`` are not modified.
    """
    trained = np.array(labels, copy=True)
    if share <= 0 or n_classes < 2:
        return trained, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 104729])  # its own stream: the same job seed also seeds training
    rows = np.sort(rng.choice(len(trained), size=max(1, int(round(share * len(trained)))), replace=False))
    trained[rows] = (trained[rows] + rng.integers(1, n_classes, len(rows))) % n_classes
    return trained, rows


def _robustness(config: CurateConfig, job: MemberJob, networks, pixels, labels, held_out, probs, predict):
    """Accuracy of the network and each compressed copy on corrupted copies of held-out images; ``predict(network,
    images, normalize)`` gives probabilities."""
    from curate.population.robustness import corrupted_suite

    rng = np.random.default_rng(job.seed)
    candidates = np.flatnonzero(held_out)
    rows = np.sort(rng.choice(candidates, size=min(config.robustness_images, len(candidates)), replace=False))
    suite = corrupted_suite(np.asarray(pixels[rows]), config.corruptions, config.severities, seed=job.seed)
    n_corruptions, n_severities, m = suite.shape[:3]
    flat = suite.reshape(-1, *suite.shape[3:])
    truth = np.tile(labels[rows], n_corruptions * n_severities)
    correct = np.stack([
        (predict(net, flat, norm).argmax(axis=1) == truth).reshape(n_corruptions, n_severities, m).mean(axis=2)
        for net, norm in networks
    ])
    clean = np.array([(p[rows].argmax(axis=1) == labels[rows]).mean() for p in probs])
    return {"robust_rows": rows, "robust_correct": correct, "robust_clean": clean}
