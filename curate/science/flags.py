"""Flags a reviewer can act on: label noise, multi-object, corruption, atypical. Pure numpy.

Every PIE gets exactly one category, the first that applies in the order of the category registry
(:data:`REGISTRY`; :func:`register_category` adds one of your own). The built-in order:

1. ``label_noise``: the label is more likely wrong than right, ``P(label wrong) >= 0.5`` under the
   noise model fitted to the held-out predictions (:func:`curate.science.noise_model.fit_noise_model`),
   the Bayes decision between keeping and fixing a label when both mistakes cost the same. Also
   raised on non-PIEs, since a reviewer wants every suspected mislabel. Carries a suggested label
   (:func:`find_label_noise`) and its probability, so every flag says how far to trust it.
2. ``corruption``: a pixel check fires (:mod:`curate.science.quality`). Also raised on non-PIEs, since a
   degraded image is worth a look whether or not the compressed copies forget it; the score ranks
   first those that the population is also unsure of (as unsure as of a corrupted probe image).
3. ``multi_object``: two parts of the image that do not overlap are confidently different classes,
   as on two-object probes (:mod:`curate.science.regions`).
4. ``ambiguous``: the population's mass splits between two classes at least as evenly as it does,
   typically, on a two-class composite probe: a near tie, from fine-grained classes, a hard image
   or a doubtful label, where no half of the image is confidently something else. Like
   ``multi_object`` it must be evidence: the threshold rises until composites pass 10x as often as
   the dataset's own images (:func:`curate.science.regions.likelihood_ratio_threshold`), and the tag
   is off where none does (a weak population splits its mass on a third of all images).
5. ``atypical``: a PIE that is none of the above: rightly labelled, rare, the long tail.

No threshold is a constant tuned to a dataset: the label-noise probability comes from a model of
the dataset's own noise; the multi-object one (and the corruption score's scale) are medians over probe images of
known category (:mod:`curate.science.probes`) predicted by the same networks; pixel thresholds are
CleanVision's, or outliers of the dataset's own distribution by CleanVision's IQR rule.

Shapes: ``probs`` ``(n_samples, n_classes)`` is the population's mean out-of-sample prediction;
``labels`` ``(n_samples,)`` the given labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from curate.science.noise_model import NoiseModel, fit_noise_model
from curate.science.regions import PAIRS, REGIONS, RegionSplit, likelihood_ratio_threshold, pass_rate, region_split

NO_CATEGORY = ""


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (n_samples, n_classes), got shape {probs.shape}.")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}; expected ({probs.shape[0]},) to match probs.")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}], got {labels.min()}..{labels.max()}.")
    return labels, probs


def population_mean(dense_probs: np.ndarray, compressed_probs: np.ndarray | None = None) -> np.ndarray:
    """Mean prediction over every out-of-sample network: dense ``(K, N, C)`` and compressed ``(L, K, N, C)``."""
    stacks = [np.asarray(dense_probs, dtype=np.float64)]
    if compressed_probs is not None:
        compressed = np.asarray(compressed_probs, dtype=np.float64)
        stacks.append(compressed.reshape(-1, *compressed.shape[2:]))
    return np.concatenate(stacks).mean(axis=0)


def class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confident learning's per-class thresholds: mean ``probs[:, j]`` over samples labelled ``j``.

    A class with no samples gets threshold 1 (nothing is ever confidently in it).
    """
    labels, probs = _check(labels, probs)
    n_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def highest(score: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask of the ``count`` highest scores (ties broken by position, so deterministic)."""
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(-np.asarray(score), kind="stable")[:count]] = True
    return mask


def confident_assignment(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confident learning's per-sample step: ``(thresholds, above, assigned)``.

    ``above[i, j]``: ``probs[i, j] >= t_j`` (:func:`class_thresholds`); ``assigned[i]``: the most
    probable class among those, meaningful only where ``above[i].any()``.
    """
    labels, probs = _check(labels, probs)
    thresholds = class_thresholds(labels, probs)
    above = probs >= thresholds[None, :]
    return thresholds, above, np.where(above, probs, -np.inf).argmax(axis=1)


def confident_joint(labels: np.ndarray, probs: np.ndarray, calibrate: bool = False) -> np.ndarray:
    """The confident joint ``C[given, assigned]``: counts of samples by label and confident class.

    ``calibrate`` rescales each row to the number of samples with that label, so samples confident
    in no class count too (cleanlab's calibrated joint, whose off-diagonal is its
    ``off_diagonal_calibrated`` error count).
    """
    labels, probs = _check(labels, probs)
    n_classes = probs.shape[1]
    _, above, assigned = confident_assignment(labels, probs)
    ok = above.any(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[ok], assigned[ok]), 1)
    if calibrate:
        counts = np.bincount(labels, minlength=n_classes)
        joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1) * counts[:, None]
    return joint


def in_sample_views(dense_in: np.ndarray, compressed_in: np.ndarray | None = None) -> np.ndarray:
    """One view per in-sample slot ``(S, N, C)``: each network that trained on a sample, pooled with its
    compressed copies ``(L, S, N, C)``. Their mean over slots is :func:`population_mean` of the two."""
    views = np.asarray(dense_in, dtype=np.float64)
    if compressed_in is None or len(compressed_in) == 0:
        return views
    compressed_in = np.asarray(compressed_in, dtype=np.float64)
    return (views + compressed_in.sum(axis=0)) / (1 + len(compressed_in))


def in_sample_mean(views: np.ndarray, keep: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    """Mean of ``views`` ``(S, N, C)`` over the slots ``keep`` ``(S, N)`` marks (all when ``None``);
    ``fallback`` ``(N, C)`` for samples with no slot kept."""
    views = np.asarray(views, dtype=np.float64)
    keep = np.ones(views.shape[:2], dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    kept = keep.sum(axis=0)
    mean = (views * keep[..., None]).sum(axis=0) / np.maximum(kept, 1)[:, None]
    return np.where(kept[:, None] > 0, mean, fallback)


@dataclass
class Memorisation:
    """Result of :func:`memorisation`.

    Attributes:
        fitted: share of the in-sample (network, sample) pairs whose top class is the given label.
        right: share of labels confident learning believes right, ``1 - off-diagonal / N`` of the
            confident joint of the held-out prediction.
    """

    fitted: float
    right: float

    @property
    def memorised(self) -> bool:
        """The networks fit more training labels than are right, so they fit some wrong ones."""
        return self.fitted > self.right


def memorisation(labels: np.ndarray, held_out: np.ndarray, in_sample_views: np.ndarray,
                 keep: np.ndarray | None = None) -> Memorisation:
    """Have the networks memorised wrong training labels? Compares how many labels they fit with how
    many confident learning believes are right.

    A network that fits every right label and no wrong one agrees with a share ``right`` of its
    training labels; networks leave hard right labels unfitted, so ``fitted > right`` means at least
    ``fitted - right`` of the labels they fit are wrong, and their plain in-sample view no longer
    tells wrong labels apart. No threshold: the comparison is between two shares of the same labels.

    Args:
        labels: ``(N,)``; ``held_out``: ``(N, C)`` mean out-of-sample prediction.
        in_sample_views: ``(S, N, C)`` one view per in-sample slot, as trained (:func:`in_sample_views`).
        keep: ``(S, N)`` the pairs to count (e.g. not random-label probes); all when ``None``.
    """
    labels, held_out = _check(labels, held_out)
    views = np.asarray(in_sample_views, dtype=np.float64)
    if views.ndim != 3 or views.shape[1:] != held_out.shape:
        raise ValueError(f"in_sample_views has shape {views.shape}; expected (slots, {len(labels)}, "
                         f"{held_out.shape[1]}).")
    keep = np.ones(views.shape[:2], dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if keep.shape != views.shape[:2]:
        raise ValueError(f"keep has shape {keep.shape}; expected {views.shape[:2]}.")
    agrees = views.argmax(axis=2) == labels[None, :]
    fitted = float(agrees[keep].mean()) if keep.any() else 0.0
    joint = confident_joint(labels, held_out)
    right = 1.0 - float(joint.sum() - np.trace(joint)) / max(len(labels), 1)
    return Memorisation(fitted=fitted, right=right)


def label_profile(held_out: np.ndarray, in_sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How a sample's label looks to the population: ``(N, 4)`` logits of the held-out and in-sample
    probability of ``labels`` and of the best other class (the input of :func:`probe_error_estimate`)."""
    labels, held_out = _check(labels, held_out)
    in_sample = np.asarray(in_sample, dtype=np.float64)
    if in_sample.shape != held_out.shape:
        raise ValueError(f"in_sample has shape {in_sample.shape}; expected {held_out.shape} like held_out.")
    rows = np.arange(len(labels))
    columns = []
    for probs in (held_out, in_sample):
        others = probs.copy()
        others[rows, labels] = 0.0
        for p in (probs[rows, labels], others.max(axis=1)):
            p = np.clip(p, 1e-4, 1 - 1e-4)
            columns.append(np.log(p / (1 - p)))
    return np.stack(columns, axis=1)


@dataclass
class ProbeEstimate:
    """Result of :func:`probe_error_estimate`.

    Attributes:
        p_wrong: ``(N,)`` estimated probability that each real sample's label is wrong.
        count: estimated number of wrong labels among the real samples.
        c: mean probe score: the share of all wrong-label profiles that are probes, as the
            classifier sees it.
    """

    p_wrong: np.ndarray
    count: float
    c: float


def probe_error_estimate(real_profile: np.ndarray, probe_profile: np.ndarray, seed: int = 0) -> ProbeEstimate:
    """Label errors estimated from random-label probes injected into training (positive-unlabelled).

    Probes (Metadata Archaeology, Siddiqui et al. 2022) are training samples given a known wrong
    label; their :func:`label_profile` is what a wrong label looks like to these networks. A logistic
    regression tells probes (positives) from real samples (unlabelled: right and wrong labels mixed),
    cross-validated so no sample scores itself. Elkan & Noto (2008): with ``g`` its score and ``c``
    the mean score of the probes, a real sample's label is wrong with probability
    ``(1 - c) / c * g / (1 - g)``, and the real samples hold ``n_probes * (1 - c) / c`` wrong labels.
    Assumes wrong labels look like probes; human errors, on confusable images, are easier to fit, so
    at heavy noise the count runs low (docs/benchmarks.md).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    real_profile = np.asarray(real_profile, dtype=np.float64)
    probe_profile = np.asarray(probe_profile, dtype=np.float64)
    if real_profile.ndim != 2 or probe_profile.ndim != 2 or real_profile.shape[1] != probe_profile.shape[1]:
        raise ValueError(f"real_profile {real_profile.shape} and probe_profile {probe_profile.shape} must be "
                         "(n, n_features) with the same n_features.")
    folds = 5
    if len(probe_profile) < folds or len(real_profile) < folds:
        raise ValueError(f"Need at least {folds} probes and {folds} real samples to cross-validate, got "
                         f"{len(probe_profile)} probes and {len(real_profile)} real samples; inject more probes.")
    x = np.concatenate([real_profile, probe_profile])
    is_probe = np.r_[np.zeros(len(real_profile)), np.ones(len(probe_profile))]
    score = cross_val_predict(LogisticRegression(max_iter=1000), x, is_probe, method="predict_proba",
                              cv=StratifiedKFold(folds, shuffle=True, random_state=seed))[:, 1]
    real_score, c = score[:len(real_profile)], float(score[len(real_profile):].mean())
    p_wrong = np.clip((1 - c) / c * real_score / np.maximum(1 - real_score, 1e-12), 0.0, 1.0)
    return ProbeEstimate(p_wrong=p_wrong, count=len(probe_profile) * (1 - c) / c, c=c)


@dataclass
class ProbeLabelNoise:
    """Result of :func:`probe_label_noise`.

    Attributes:
        in_sample: ``(N, C)`` mean in-sample prediction over the networks that trained on each
            sample with its own label (probe networks left out; the held-out mean where none did).
        p_wrong: ``(N,)`` estimated probability that the given label is wrong.
        count: estimated number of wrong labels.
        n_probes: probes the estimate learned from.
        c: :attr:`ProbeEstimate.c`.
    """

    in_sample: np.ndarray
    p_wrong: np.ndarray
    count: int
    n_probes: int
    c: float


def probe_label_noise(labels: np.ndarray, held_out: np.ndarray, in_sample_views: np.ndarray,
                      probe_labels: np.ndarray, seed: int = 0) -> ProbeLabelNoise:
    """Label errors estimated from random-label probes injected into training.

    Args:
        labels: ``(N,)`` given labels; ``held_out``: ``(N, C)`` mean out-of-sample prediction.
        in_sample_views: ``(S, N, C)`` one view per in-sample network slot (a network pooled with
            its compressed copies): the prediction of the ``s``-th network that trained on sample ``i``.
        probe_labels: ``(S, N)`` the wrong label slot ``s``'s network trained sample ``i`` with when
            ``i`` was one of its probes, ``-1`` otherwise.

    Every (network, sample) pair is one profile (:func:`label_profile`): probes with their wrong
    label, real pairs with the given label. :func:`probe_error_estimate` counts the wrong real pairs;
    dividing by the mean number of real pairs per sample turns that into samples. A sample's
    ``p_wrong`` is the mean over its real pairs.
    """
    labels, held_out = _check(labels, held_out)
    views = np.asarray(in_sample_views, dtype=np.float64)
    probe_labels = np.asarray(probe_labels)
    n = len(labels)
    if views.ndim != 3 or views.shape[1:] != held_out.shape:
        raise ValueError(f"in_sample_views has shape {views.shape}; expected (slots, {n}, {held_out.shape[1]}).")
    if probe_labels.shape != views.shape[:2]:
        raise ValueError(f"probe_labels has shape {probe_labels.shape}; expected {views.shape[:2]}.")
    real = probe_labels < 0
    slot, sample = np.nonzero(real)
    probe_slot, probe_sample = np.nonzero(~real)
    estimate = probe_error_estimate(
        label_profile(held_out[sample], views[slot, sample], labels[sample]),
        label_profile(held_out[probe_sample], views[probe_slot, probe_sample], probe_labels[probe_slot, probe_sample]),
        seed)
    pairs = real.sum(axis=0)
    in_sample = in_sample_mean(views, real, held_out)
    p_wrong = np.zeros(n)
    np.add.at(p_wrong, sample, estimate.p_wrong)
    p_wrong = np.where(pairs > 0, p_wrong / np.maximum(pairs, 1), np.nan)
    count = int(round(min(n, estimate.count / max(pairs.mean(), 1e-12))))
    return ProbeLabelNoise(in_sample=in_sample, p_wrong=p_wrong, count=count, n_probes=len(probe_slot), c=estimate.c)


def other_classes(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A copy of ``probs`` ``(N, C)`` with each sample's own label set to -inf, so that ``argmax`` and
    ``max`` over classes read the most probable *other* class."""
    others = np.array(probs, dtype=np.float64)
    others[np.arange(len(labels)), labels] = -np.inf
    return others


@dataclass
class LabelNoise:
    """Result of :func:`find_label_noise`.

    Attributes:
        is_noise: ``(N,)`` the ``n_estimated`` samples with the highest ``score``.
        score: ``(N,)`` in [0, 1]; higher means more likely mislabelled.
        suggested: ``(N,)`` the class the label should be (defined for every sample; see
            :func:`find_label_noise`, step 3).
        suggested_confidence: ``(N,)`` held-out mean probability of ``suggested``.
        confident: ``(N,)`` the confident-learning rule holds (see :func:`find_label_noise`).
        n_estimated: how many labels are estimated to be wrong (``confident.sum()`` unless a
            ``count`` was given).
        thresholds: ``(C,)`` the per-class thresholds used.
    """

    is_noise: np.ndarray
    score: np.ndarray
    suggested: np.ndarray
    suggested_confidence: np.ndarray
    confident: np.ndarray
    n_estimated: int
    thresholds: np.ndarray


def find_label_noise(labels: np.ndarray, probs: np.ndarray, in_sample_probs: np.ndarray | None = None,
                     count: int | None = None, suggestion_in_sample: np.ndarray | None = None) -> LabelNoise:
    """Suspected label errors: how many, which, and what the label should be.

    1. *How many* (confident learning, Northcutt et al. 2021): ``n`` = the off-diagonal of the
       confident joint. Each sample is assigned, among the classes it is confident in
       (``probs[i, j] >= t_j``, ``t`` the :func:`class_thresholds` of the out-of-sample ``probs``),
       the most probable one; it counts when that class is not its label. A sample confident in no
       class is not counted.
    2. *Which*: the ``n`` samples with the lowest probability of their label, ``score = 1 - p``.
       With ``in_sample_probs`` (the mean prediction of the networks that trained on each
       sample), ``p`` is the mean of the out-of-sample and in-sample probabilities of the label:
       the first says whether models that never saw the label agree with it, the second how hard
       the label was to fit (the training-dynamics signal AUM also reads). curate passes the
       in-sample view after second-split forgetting (:func:`curate.population.train.forget_on_second_split`),
       which keeps that signal when the networks have memorised their training labels.
    3. *What instead*: with ``suggestion_in_sample`` (the in-sample mean *as trained*, whichever view
       step 2 reads), the most probable other class of ``probs + suggestion_in_sample``: every network
       that predicted the sample votes, and the label's own mass, which training inflates, is left out.
       Without it, the most probable other class of ``probs``, preferring the confident ones.
       ``suggested_confidence`` is always the out-of-sample probability of the suggestion.

    ``count`` replaces step 1's estimate (e.g. :func:`probe_label_noise`'s); ``confident`` still
    reports the confident-learning rule.
    """
    labels, probs = _check(labels, probs)
    n = len(labels)
    rows = np.arange(n)
    thresholds, above, assigned = confident_assignment(labels, probs)
    confident = above.any(axis=1) & (assigned != labels)
    if suggestion_in_sample is not None:
        # Measured on four CIFAR-10N populations (docs/benchmarks.md, "Suggested labels"): right on
        # as many to 2.8 points more of the flagged true errors than the held-out rule below.
        votes = np.asarray(suggestion_in_sample, dtype=np.float64)
        if votes.shape != probs.shape:
            raise ValueError(f"suggestion_in_sample has shape {votes.shape}; expected {probs.shape} like probs.")
        suggested = other_classes(probs + votes, labels).argmax(axis=1)
    else:
        others = other_classes(probs, labels)
        confident_others = np.where(above, others, -np.inf)
        any_confident = np.isfinite(confident_others).any(axis=1)
        suggested = np.where(any_confident, confident_others.argmax(axis=1), others.argmax(axis=1))
    given = probs[rows, labels]
    if in_sample_probs is not None:
        in_sample = np.asarray(in_sample_probs, dtype=np.float64)
        if in_sample.shape != probs.shape:
            raise ValueError(f"in_sample_probs has shape {in_sample.shape}; expected {probs.shape} like probs.")
        given = 0.5 * (given + in_sample[rows, labels])
    score = np.clip(1.0 - given, 0.0, 1.0)
    n_estimated = int(confident.sum()) if count is None else int(count)
    if n_estimated < 0:
        raise ValueError(f"count must be a non-negative number of samples, got {count}.")
    is_noise = highest(score, n_estimated)
    return LabelNoise(
        is_noise=is_noise,
        score=score,
        suggested=suggested,
        suggested_confidence=probs[rows, suggested],
        confident=confident,
        n_estimated=n_estimated,
        thresholds=thresholds,
    )


def top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(first_class, second_class, first_prob, second_prob)`` of each row."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, axis=1, kind="stable")
    rows = np.arange(len(probs))
    return order[:, 0], order[:, 1], probs[rows, order[:, 0]], probs[rows, order[:, 1]]


def split_evenness(probs: np.ndarray) -> np.ndarray:
    """Second-largest over largest probability, in [0, 1]: 1 when two classes share the mass evenly."""
    _, _, first, second = top_two(probs)
    return np.divide(second, first, out=np.zeros_like(first), where=first > 0)


def probe_threshold(values: np.ndarray, what: str) -> float:
    """Median of a signal over probe images of one kind (the calibration rule for every probe flag)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ValueError(f"No probe predictions to calibrate the {what} threshold; the run has no probes.")
    return float(np.median(values))


@dataclass
class Categories:
    """Per-sample categories and scores; see the module docstring for the rules.

    Attributes:
        category: ``(N,)`` a registered category name (:func:`category_names`) for PIEs, ``""`` otherwise.
        label_noise: ``(N,)`` confident mislabel (PIE or not).
        corruption: ``(N,)`` a pixel check fires (PIE or not).
        scores: category -> ``(N,)`` score in [0, 1] (defined for every sample).
        suggested, suggested_confidence: from :func:`find_label_noise`.
        corruption_check: ``(N,)`` the most severe pixel check, ``""`` when none fires.
        thresholds: the calibrated thresholds, for the run record.
        label_wrong_probability: ``(N,)`` probability that the given label is wrong (the noise model's,
            or the random-label probes' when the run had them).
        noise_model: the fitted :class:`curate.science.noise_model.NoiseModel`.
        evidence, registry: what the categories read, and which categories decided (for the reasons).
    """

    category: np.ndarray
    label_noise: np.ndarray
    corruption: np.ndarray
    scores: dict[str, np.ndarray]
    suggested: np.ndarray
    suggested_confidence: np.ndarray
    corruption_check: np.ndarray
    thresholds: dict[str, float]
    label_wrong_probability: np.ndarray | None = None
    noise_model: NoiseModel | None = None
    evidence: "FlagEvidence | None" = None
    registry: "CategoryRegistry | None" = None

    def expected_wrong_among(self, mask: np.ndarray) -> float:
        """Expected number of wrong labels among the samples ``mask`` selects."""
        return float(np.nansum(self.label_wrong_probability[np.asarray(mask, dtype=bool)]))

    @property
    def names(self) -> tuple[str, ...]:
        """The categories of this result, in order of precedence."""
        return (self.registry or REGISTRY).names()


@dataclass
class FlagEvidence:
    """What a flag category reads about every sample: ``(N,)`` arrays unless said otherwise.

    Built once per run by :func:`categorise`; the fields under "for reasons" are filled by
    :func:`reasons` once the suggested labels' votes are known.
    """

    labels: np.ndarray
    probs: np.ndarray                  # (N, C) population's mean out-of-sample prediction
    is_pie: np.ndarray
    pie_score: np.ndarray
    noise: LabelNoise
    is_noise: np.ndarray               # P(label wrong) >= 0.5
    evenness: np.ndarray               # second / first probability (:func:`split_evenness`)
    split_threshold: float             # the median evenness of two-class composite probes, or higher (see categorise)
    region: RegionSplit | None         # how confidently non-overlapping windows disagree (None: no window predictions)
    region_threshold: float            # where probes pass 10x as often as the dataset (regions.likelihood_ratio_threshold)
    first: np.ndarray                  # top class, and the runner-up, and their probabilities
    second: np.ndarray
    p_first: np.ndarray
    p_second: np.ndarray
    pixel_severity: np.ndarray         # worst pixel check's severity in [0, 1]; 0 when none fires
    pixel_check: np.ndarray            # its name, "" when none fires
    corruption_score: np.ndarray
    label_wrong_probability: np.ndarray | None = None
    # For reasons:
    class_names: np.ndarray | None = None
    votes_for_suggested: np.ndarray | None = None
    n_networks: int = 0
    dense_modal: np.ndarray | None = None
    compressed_modal: np.ndarray | None = None   # (L, N)
    is_pie_at: np.ndarray | None = None          # (L, N)
    level_names: list[str] | None = None


class FlagCategory:
    """One kind of flag: its name, which samples it finds, its score and its reason.

    Subclass it and :func:`register_category` it to add a category of your own; its tag
    (``pie:<name>``) and saved view (``pies-<name>``) appear in FiftyOne like the built-in ones'.
    ``beyond_pies`` categories are also raised on samples that are not PIEs (the built-in
    ``label_noise`` and ``corruption``); a PIE still gets only the first category that finds it.
    """

    name: str = ""
    description: str = ""
    beyond_pies: bool = False

    def find(self, evidence: FlagEvidence) -> np.ndarray:
        """``(N,)`` bool: the samples this category applies to (PIE or not)."""
        raise NotImplementedError

    def score(self, evidence: FlagEvidence) -> np.ndarray:
        """``(N,)`` in [0, 1], defined for every sample; the category's view sorts by it."""
        raise NotImplementedError

    def reason(self, evidence: FlagEvidence, i: int) -> str:
        """One sentence saying why sample ``i`` is flagged under this category."""
        raise NotImplementedError


class LabelNoiseCategory(FlagCategory):
    name = "label_noise"
    description = "the label is probably wrong; carries a suggested label"
    beyond_pies = True

    def find(self, evidence):
        return evidence.is_noise

    def score(self, evidence):
        return evidence.label_wrong_probability

    def reason(self, evidence, i):
        names, label = evidence.class_names, evidence.labels[i]
        text = (f"{evidence.votes_for_suggested[i]} of {evidence.n_networks} models say "
                f"{names[evidence.noise.suggested[i]]} (mean p {evidence.noise.suggested_confidence[i]:.2f}); "
                f"labelled {names[label]} (mean p {evidence.probs[i, label]:.2f})")
        wrong = None if evidence.label_wrong_probability is None else evidence.label_wrong_probability[i]
        return text if wrong is None or not np.isfinite(wrong) else f"{text}{LABEL_WRONG_MARK}{wrong:.2f}"


LABEL_WRONG_MARK = "; P(label wrong) ~ "
AUDIT_VERDICT_MARK = "; the label audit found the label "


def audited_reason(reason: str, audited: float, networks: float, *, verdict: bool | None = None) -> str:
    """A label-noise reason with its P(label wrong) replaced by the label audit's (:mod:`curate.science.audit`).

    Keeps the networks' value beside it, so that a reviewer sees what the audit changed; ``verdict``: the
    audit reviewed this very image and found its label wrong (True) or right (False). A reason written
    by an earlier calibration is rewritten, not extended, and a reason without a probability (another
    category's, or a run without the noise model) is returned as it is.
    """
    at = [reason.find(mark) for mark in (LABEL_WRONG_MARK, AUDIT_VERDICT_MARK) if mark in reason]
    if not at or not np.isfinite(audited):
        return reason
    base = reason[:min(at)]
    if verdict is not None:
        return (f"{base}{AUDIT_VERDICT_MARK}{'wrong' if verdict else 'right'} (P(label wrong) {networks:.2f} by the "
                "networks alone)")
    return f"{base}{LABEL_WRONG_MARK}{audited:.2f} by the label audit ({networks:.2f} by the networks alone)"


class CorruptionCategory(FlagCategory):
    name = "corruption"
    description = "a pixel check fires (blur, noise, JPEG blocks, washed out...)"
    beyond_pies = True

    def find(self, evidence):
        # Pixel evidence alone decides: images altered in ways the probes never saw (JPEG blocking, salt
        # and pepper) are often still recognised, so requiring unsure models missed nearly all of them
        # (scripts/bench_categories.py); the models' doubt orders the flags instead.
        return evidence.pixel_severity > 0

    def score(self, evidence):
        return evidence.corruption_score

    def reason(self, evidence, i):
        names = evidence.class_names
        return (f"{evidence.pixel_check[i].replace('_', ' ')} image; models' top class {names[evidence.first[i]]} "
                f"at p {evidence.p_first[i]:.2f}; labelled {names[evidence.labels[i]]}")


class MultiObjectCategory(FlagCategory):
    name = "multi_object"
    description = "two parts of the image that do not overlap are confidently different classes, as on two-object probes"

    def find(self, evidence):
        if evidence.region is None:
            return np.zeros(len(evidence.labels), dtype=bool)
        return evidence.region.score >= evidence.region_threshold

    def score(self, evidence):
        return np.zeros(len(evidence.labels)) if evidence.region is None else evidence.region.score

    def reason(self, evidence, i):
        names, region = evidence.class_names, evidence.region
        a, b = (REGIONS[w] for w in PAIRS[region.pair[i]])
        return (f"{a} of the image looks like {names[region.first[i]]} (p {region.p_first[i]:.2f}), {b} like "
                f"{names[region.second[i]]} (p {region.p_second[i]:.2f}); labelled {names[evidence.labels[i]]}")


class AmbiguousCategory(FlagCategory):
    name = "ambiguous"
    description = "the population splits its mass between two classes as evenly as on two-class composites"

    def find(self, evidence):
        return evidence.evenness >= evidence.split_threshold

    def score(self, evidence):
        return evidence.evenness

    def reason(self, evidence, i):
        names = evidence.class_names
        return (f"models split between {names[evidence.first[i]]} (p {evidence.p_first[i]:.2f}) and "
                f"{names[evidence.second[i]]} (p {evidence.p_second[i]:.2f}); labelled {names[evidence.labels[i]]}")


class AtypicalCategory(FlagCategory):
    name = "atypical"
    description = "a PIE that is none of the above: rightly labelled, rare, the long tail"

    def find(self, evidence):
        return np.ones(len(evidence.labels), dtype=bool)

    def score(self, evidence):
        return np.clip(np.asarray(evidence.pie_score, dtype=np.float64), 0.0, 1.0)

    def reason(self, evidence, i):
        names = evidence.class_names
        changed = "; ".join(f"{evidence.level_names[t]} say {names[evidence.compressed_modal[t, i]]}"
                            for t in np.flatnonzero(evidence.is_pie_at[:, i]))
        return (f"labelled {names[evidence.labels[i]]}; dense models say {names[evidence.dense_modal[i]]}, "
                f"compressed copies forget it: {changed}")


class CategoryRegistry:
    """The flag categories in their order of precedence: a PIE gets the first that finds it."""

    def __init__(self, categories: list[FlagCategory]):
        self._categories: list[FlagCategory] = []
        for category in categories:
            self.register(category)

    def register(self, category: FlagCategory, *, before: str | None = None) -> None:
        """Add ``category``; ``before`` names the category it takes precedence over (default: last,
        which never fires while ``atypical`` takes every remaining PIE, so pass ``before="atypical"``)."""
        if not isinstance(category, FlagCategory):
            raise TypeError(f"A flag category is a curate.science.flags.FlagCategory, got {type(category).__name__}.")
        if not category.name or not category.name.isidentifier():
            raise ValueError(f"A flag category's name must be an identifier (letters, digits, underscores), "
                             f"got {category.name!r}.")
        if category.name in self.names():
            raise ValueError(f"A flag category named {category.name!r} is already registered; unregister it first.")
        if before is None:
            self._categories.append(category)
            return
        if before not in self.names():
            raise ValueError(f"No flag category {before!r} to register {category.name!r} before; "
                             f"the categories are {self.names()}.")
        self._categories.insert(self.names().index(before), category)

    def unregister(self, name: str) -> FlagCategory:
        if name in BUILT_IN:
            raise ValueError(f"{name!r} is one of curate's own categories and cannot be removed.")
        for i, category in enumerate(self._categories):
            if category.name == name:
                return self._categories.pop(i)
        raise ValueError(f"No flag category {name!r}; the categories are {self.names()}.")

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._categories)

    def __iter__(self):
        return iter(list(self._categories))

    def __getitem__(self, name: str) -> FlagCategory:
        for category in self._categories:
            if category.name == name:
                return category
        raise KeyError(name)


BUILT_IN = ("label_noise", "corruption", "multi_object", "ambiguous", "atypical")
REGISTRY = CategoryRegistry([LabelNoiseCategory(), CorruptionCategory(), MultiObjectCategory(), AmbiguousCategory(),
                             AtypicalCategory()])


def register_category(category: FlagCategory, *, before: str | None = "atypical") -> None:
    """Add a flag category of your own to every later run (see :class:`FlagCategory`)."""
    REGISTRY.register(category, before=before)


def unregister_category(name: str) -> FlagCategory:
    return REGISTRY.unregister(name)


def category_names() -> tuple[str, ...]:
    """Every registered category, in order of precedence."""
    return REGISTRY.names()


def categorise(
    labels: np.ndarray,
    probs: np.ndarray,
    is_pie: np.ndarray,
    pie_score: np.ndarray,
    two_class_probe_probs: np.ndarray,
    corrupted_probe_probs: np.ndarray,
    *,
    pixel_severity: np.ndarray | None = None,
    check_names: tuple[str, ...] = (),
    in_sample_probs: np.ndarray | None = None,
    label_noise_count: int | None = None,
    label_wrong_probability: np.ndarray | None = None,
    suggestion_in_sample: np.ndarray | None = None,
    region_probs: np.ndarray | None = None,
    two_class_probe_regions: np.ndarray | None = None,
    two_class_probe_labels: np.ndarray | None = None,
    registry: CategoryRegistry | None = None,
) -> Categories:
    """Assign every PIE one category and score every sample for every category.

    Args:
        labels, probs: given labels and the population's mean out-of-sample prediction.
        is_pie: ``(N,)`` PIE at any level; ``pie_score`` ``(N,)`` in [0, 1].
        two_class_probe_probs: ``(P2, C)`` mean predictions on two-class composite probes.
        corrupted_probe_probs: ``(P1, C)`` mean predictions on corrupted probes.
        pixel_severity: ``(N, n_checks)`` in [0, 1] from :func:`curate.science.quality.quality_severity`
            (NaN rows allowed); ``check_names`` names its columns. ``None``: no pixel evidence.
        in_sample_probs: mean prediction of the networks that trained on each sample, for the
            label-noise score (:func:`find_label_noise`).
        label_noise_count, label_wrong_probability: from :func:`probe_label_noise` when the run
            injected random-label probes: the probability replaces the noise model's.
        suggestion_in_sample: the in-sample mean as trained, for the suggested label
            (:func:`find_label_noise`, step 3).
        region_probs: ``(len(REGIONS), N, C)`` mean held-out predictions of each image half, and
            ``two_class_probe_regions`` ``(len(REGIONS), P2, C)`` the same for the composite probes, for
            ``multi_object`` (:mod:`curate.science.regions`); without them ``multi_object`` finds nothing.
            ``two_class_probe_labels`` ``(P2,)``: the class of one of each probe's objects, the label a
            person would have given it (None: scored without a label, which flatters the probes).
        registry: the categories and their order [default: :data:`REGISTRY`].
    """
    labels, probs = _check(labels, probs)
    registry = registry or REGISTRY
    is_pie = np.asarray(is_pie, dtype=bool)
    n = len(labels)
    noise = find_label_noise(labels, probs, in_sample_probs, label_noise_count, suggestion_in_sample)

    evenness = split_evenness(probs)
    probe_evenness = split_evenness(two_class_probe_probs)
    # As even as a typical composite, and rare enough in the dataset for the split to be evidence.
    split_threshold = max(probe_threshold(probe_evenness, "ambiguous"),
                          likelihood_ratio_threshold(probe_evenness, evenness))
    corrupted_top = probe_threshold(np.asarray(corrupted_probe_probs).max(axis=1), "corruption")

    if pixel_severity is None:
        severity = np.zeros((n, 0))
    else:
        severity = np.nan_to_num(np.asarray(pixel_severity, dtype=np.float64), nan=0.0)
        if severity.shape != (n, len(check_names)):
            raise ValueError(f"pixel_severity has shape {severity.shape}; expected ({n}, {len(check_names)}).")
    worst, worst_check = np.zeros(n), np.full(n, "", dtype=object)
    if severity.shape[1]:
        worst = severity.max(axis=1)
        worst_check = np.where(worst > 0, np.asarray(check_names, dtype=object)[severity.argmax(axis=1)], "")
    # Uncertainty relative to a corrupted probe: 1 at or below its typical top probability.
    uncertainty = np.clip((1.0 - probs.max(axis=1)) / max(1.0 - corrupted_top, 1e-9), 0.0, 1.0)
    first, second, p_first, p_second = top_two(probs)
    # Mass shared evenly between the given label and another class is ambiguity, not a wrong label.
    region = region_threshold = None
    if region_probs is not None:
        if two_class_probe_regions is None:
            raise ValueError("region_probs needs two_class_probe_regions to set the multi-object threshold.")
        if np.asarray(region_probs).shape[1] != n:
            raise ValueError(f"region_probs covers {np.asarray(region_probs).shape[1]} samples; expected {n}.")
        region = region_split(region_probs, labels)
        probe_score = region_split(two_class_probe_regions, two_class_probe_labels).score
        region_threshold = likelihood_ratio_threshold(probe_score, region.score)
    noise_model = fit_noise_model(labels, probs)
    p_wrong = noise_model.p_wrong if label_wrong_probability is None else np.asarray(label_wrong_probability, float)
    is_noise = np.nan_to_num(p_wrong, nan=0.0) >= 0.5
    evidence = FlagEvidence(
        labels=labels, probs=probs, is_pie=is_pie, pie_score=pie_score, noise=noise, is_noise=is_noise,
        evenness=evenness, split_threshold=split_threshold, region=region,
        region_threshold=np.inf if region_threshold is None else region_threshold, first=first, second=second, p_first=p_first,
        p_second=p_second, pixel_severity=worst, pixel_check=worst_check,
        corruption_score=np.where(worst > 0, 0.5 * (worst + uncertainty), 0.0),
        label_wrong_probability=p_wrong)

    category = np.full(n, NO_CATEGORY, dtype=object)
    undecided = is_pie.copy()
    found = {}
    for flag in registry:
        found[flag.name] = np.asarray(flag.find(evidence), dtype=bool)
        if found[flag.name].shape != (n,):
            raise ValueError(f"Flag category {flag.name!r} found a mask of shape {found[flag.name].shape}; "
                             f"expected ({n},).")
        chosen = undecided & found[flag.name]
        category[chosen] = flag.name
        undecided &= ~chosen
    return Categories(
        category=category,
        label_noise=found["label_noise"],
        corruption=found["corruption"],
        scores={flag.name: np.asarray(flag.score(evidence), dtype=np.float64) for flag in registry},
        suggested=noise.suggested,
        suggested_confidence=noise.suggested_confidence,
        corruption_check=worst_check,
        label_wrong_probability=p_wrong,
        noise_model=noise_model,
        thresholds={"ambiguous_evenness": split_threshold if np.isfinite(split_threshold) else None,
                    "ambiguous_probe_recall": pass_rate(probe_evenness, split_threshold),
                    "ambiguous_dataset_rate": pass_rate(evenness, split_threshold),
                    "corruption_top_probability": corrupted_top,
                    **({} if region_threshold is None else {
                        "multi_object_region_confidence": region_threshold if np.isfinite(region_threshold) else None,
                        # What a reviewer can expect: the share of two-object probes the rule finds, and of the
                        # dataset it flags (0 and 0 when no threshold passes the likelihood-ratio bar).
                        "multi_object_probe_recall": pass_rate(probe_score, region_threshold),
                        "multi_object_dataset_rate": pass_rate(region.score, region_threshold)}),
                    "label_noise_expected_wrong": float(np.nansum(p_wrong)),
                    "label_noise_expected_wrong_among_flags": float(np.nansum(p_wrong[is_noise])),
                    "noise_model_temperature": noise_model.temperature,
                    "label_noise_estimated_count": noise.n_estimated,
                    "label_noise_confident_learning_count": int(noise.confident.sum()),
                    **{f"label_noise_{j}": float(t) for j, t in enumerate(noise.thresholds)}},
        evidence=evidence,
        registry=registry,
    )


def votes_for(member_probs: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Number of networks (any leading axes) whose top-1 is ``cls[i]``, per sample. ``(..., N, C)``."""
    preds = np.asarray(member_probs).argmax(axis=-1).reshape(-1, np.asarray(member_probs).shape[-2])
    return (preds == np.asarray(cls)[None, :]).sum(axis=0)


def flag_of(category: str | None, label_noise: bool, corruption: bool) -> str:
    """The one flag a sample is reviewed under: its PIE category, else ``label_noise``, else
    ``corruption``, else ``""``."""
    return category or ("label_noise" if label_noise else "corruption" if corruption else "")


def reasons(categories: Categories, labels: np.ndarray, probs: np.ndarray, classes: list[str],
            votes_for_suggested: np.ndarray, n_networks: int, dense_modal: np.ndarray,
            compressed_modal: np.ndarray, is_pie_at: np.ndarray, level_names: list[str]) -> list[str]:
    """One sentence per sample saying why it is flagged (empty for samples with no flag), written by
    the sample's category, or for a sample that is not a PIE, by the first ``beyond_pies`` category
    that finds it.

    ``dense_modal`` ``(N,)`` and ``compressed_modal`` ``(L, N)`` are the populations' modal labels,
    ``is_pie_at`` ``(L, N)`` the PIE mask per level named by ``level_names``.
    """
    evidence = dataclasses.replace(
        categories.evidence, class_names=np.asarray(classes, dtype=object),
        votes_for_suggested=np.asarray(votes_for_suggested), n_networks=n_networks, dense_modal=dense_modal,
        compressed_modal=compressed_modal, is_pie_at=is_pie_at, level_names=level_names)
    registry = categories.registry
    beyond = [(flag, {"label_noise": categories.label_noise, "corruption": categories.corruption}.get(flag.name))
              for flag in registry if flag.beyond_pies]
    out = []
    for i in range(len(labels)):
        name = categories.category[i]
        if name:
            out.append(registry[name].reason(evidence, i))
            continue
        flag = next((f for f, mask in beyond if mask is not None and mask[i]), None)
        out.append(flag.reason(evidence, i) if flag is not None else "")
    return out
