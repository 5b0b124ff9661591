"""How many labels are wrong, counted by a reviewer: a stratified random label audit. Pure numpy.

The noise model (:mod:`curate.science.noise_model`) counts the wrong labels the networks' held-out
predictions disagree with. Networks trained on many wrong labels learn part of the noise, and then
their predictions cannot tell a wrong label from a hard image: on CIFAR-10N ``worse`` (40% wrong)
and on its clean labels with a small training budget the held-out predictions look alike (same
per-class confidence ceilings; docs/benchmarks.md, "How far the label count can be trusted"), so no
count read from predictions and labels alone is right on both. What is always right in expectation
is a reviewer's verdict on a random sample: the audit.

Every image falls in one stratum by what the run thinks of its label: ``flagged`` (a label-noise
flag), ``doubtful`` (not flagged, P(label wrong) >= :data:`DOUBT`) or ``trusted`` (the rest). A
few images are drawn at random from each (:func:`draw_audit`); a reviewer says of each whether its
label is wrong. Per stratum ``h`` with ``N_h`` images, ``n_h`` reviewed and ``k_h`` wrong, the
share wrong has the Jeffreys posterior ``Beta(k_h + 1/2, n_h - k_h + 1/2)``; the unreviewed rest
hold ``Binomial(N_h - n_h, share)`` more (:func:`estimate_from_audit`). The wrong labels in the
dataset, the flags' precision and their recall are functions of those counts, so their intervals
come from draws of them. The model only chose the strata: if it is wrong, the intervals are wider,
not wrong.

The reviewed audit also calibrates every image's P(label wrong) (:func:`audited_p_wrong`): within a
stratum the model's ranking stays, and its level moves to what the reviewer found there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATA = ("flagged", "doubtful", "trusted")
DOUBT = 0.1
"""P(label wrong) from which an unflagged image is ``doubtful``: where the errors the flags miss gather."""
PER_STRATUM = 20
"""Images drawn from each stratum: 60 reviews, a few minutes' work, put the count within about a tenth of the
dataset either way (on CIFAR-10N `worse`, 10,000 images: a 90% interval 2,132 wide; docs/benchmarks.md)."""


def audit_strata(p_wrong: np.ndarray, flagged: np.ndarray, *, doubt: float = DOUBT) -> np.ndarray:
    """The stratum (one of :data:`STRATA`) of every image, from its P(label wrong) and its flag."""
    p_wrong, flagged = np.asarray(p_wrong, dtype=np.float64), np.asarray(flagged, dtype=bool)
    if p_wrong.shape != flagged.shape or p_wrong.ndim != 1:
        raise ValueError(f"p_wrong {p_wrong.shape} and flagged {flagged.shape} must be one value per image.")
    if not 0.0 < doubt < 1.0:
        raise ValueError(f"doubt must lie in (0, 1), got {doubt}.")
    strata = np.full(len(p_wrong), STRATA[2], dtype=object)
    strata[np.nan_to_num(p_wrong, nan=0.0) >= doubt] = STRATA[1]
    strata[flagged] = STRATA[0]
    return strata


def draw_audit(strata: np.ndarray, *, per_stratum: int = PER_STRATUM, seed: int = 0) -> np.ndarray:
    """``(N,)`` True for the images drawn: ``per_stratum`` at random from each stratum (all of a smaller one)."""
    strata = np.asarray(strata, dtype=object)
    if per_stratum < 1:
        raise ValueError(f"per_stratum must be at least 1, got {per_stratum}.")
    unknown = sorted(set(strata) - set(STRATA))
    if unknown:
        raise ValueError(f"Unknown audit strata {unknown}; expected {list(STRATA)}.")
    rng = np.random.default_rng(seed)
    drawn = np.zeros(len(strata), dtype=bool)
    for name in STRATA:
        members = np.flatnonzero(strata == name)
        drawn[rng.choice(members, size=min(per_stratum, len(members)), replace=False)] = True
    return drawn


@dataclass(frozen=True)
class Interval:
    """A point estimate and its central ``level`` interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class AuditEstimate:
    """What the reviewed audit images say about the whole dataset (:func:`estimate_from_audit`).

    Attributes:
        sizes, reviewed, wrong: per stratum (:data:`STRATA` order), images, audit images reviewed, and
            how many of those a reviewer found wrongly labelled.
        wrong_labels: wrong labels in the dataset; ``None`` until every non-empty stratum has a review.
        flag_precision: share of the label-noise flags that are wrong labels (``None`` before a flag is reviewed).
        flag_recall: share of the dataset's wrong labels that are flagged (``None`` with ``wrong_labels``).
        level: the intervals' coverage.
    """

    sizes: tuple[int, ...]
    reviewed: tuple[int, ...]
    wrong: tuple[int, ...]
    wrong_labels: Interval | None
    flag_precision: Interval | None
    flag_recall: Interval | None
    level: float

    @property
    def complete(self) -> bool:
        """Every stratum that has images has at least one review."""
        return self.wrong_labels is not None


def estimate_from_audit(strata: np.ndarray, reviewed: np.ndarray, wrong: np.ndarray, *, level: float = 0.9,
                        draws: int = 20_000, seed: int = 0) -> AuditEstimate:
    """The dataset's wrong labels, and the flags' precision and recall, from the audit images reviewed so far.

    Args:
        strata: ``(N,)`` every image's stratum (:func:`audit_strata`).
        reviewed: ``(N,)`` True for the audit images a reviewer has decided. Only images drawn at
            random by :func:`draw_audit` may be passed: a reviewer's own choice of images is not a sample.
        wrong: ``(N,)`` True where the reviewer found the label wrong (read only where ``reviewed``).
        level: coverage of the intervals.
        draws: posterior draws behind the intervals (seeded: the same reviews give the same figures).

    The point estimates are the plain stratified ones (``sum_h N_h k_h / n_h``); the intervals are the
    central ``level`` share of the posterior draws described in the module docstring.
    """
    strata = np.asarray(strata, dtype=object)
    reviewed, wrong = np.asarray(reviewed, dtype=bool), np.asarray(wrong, dtype=bool)
    if not strata.shape == reviewed.shape == wrong.shape or strata.ndim != 1:
        raise ValueError(f"strata {strata.shape}, reviewed {reviewed.shape} and wrong {wrong.shape} must be one "
                         "value per image.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}.")
    sizes = np.array([(strata == h).sum() for h in STRATA])
    n = np.array([(reviewed & (strata == h)).sum() for h in STRATA])
    k = np.array([(reviewed & wrong & (strata == h)).sum() for h in STRATA])
    rng = np.random.default_rng(seed)
    share = rng.beta(k[:, None] + 0.5, n[:, None] - k[:, None] + 0.5, size=(len(STRATA), draws))
    totals = k[:, None] + rng.binomial((sizes - n)[:, None], share)  # (strata, draws): wrong labels per stratum
    # Brown, Cai & DasGupta's (2001) fix of the Jeffreys interval at the boundary: a stratum with no wrong
    # label among its reviews cannot rule out none (its lower end is what was seen), nor one with all wrong all.
    floor = np.where((k == 0)[:, None], k[:, None], totals)
    ceiling = np.where((k == n)[:, None] & (n > 0)[:, None], sizes[:, None], totals)
    tails = (1.0 - level) / 2.0

    def interval(point: float, lows: np.ndarray, highs: np.ndarray) -> Interval:
        return Interval(float(point), float(np.quantile(lows, tails)), float(np.quantile(highs, 1.0 - tails)))

    point_h = np.where(n > 0, sizes * k / np.maximum(n, 1), 0.0)
    complete = bool(((n > 0) | (sizes == 0)).all())
    flags = sizes[0]
    precision = interval(k[0] / n[0], floor[0] / flags, ceiling[0] / flags) if n[0] > 0 else None
    wrong_labels = recall = None
    if complete:
        wrong_labels = interval(point_h.sum(), floor.sum(axis=0), ceiling.sum(axis=0))
        if flags and point_h.sum() > 0:
            # Recall is lowest where the flags hold few errors and the rest many, and highest the other way.
            recall = interval(point_h[0] / point_h.sum(),
                              floor[0] / np.maximum(floor[0] + ceiling[1:].sum(axis=0), 1),
                              ceiling[0] / np.maximum(ceiling[0] + floor[1:].sum(axis=0), 1))
    return AuditEstimate(sizes=tuple(int(s) for s in sizes), reviewed=tuple(int(x) for x in n),
                         wrong=tuple(int(x) for x in k), wrong_labels=wrong_labels, flag_precision=precision,
                         flag_recall=recall, level=level)


def audited_p_wrong(p_wrong: np.ndarray, strata: np.ndarray, reviewed: np.ndarray, wrong: np.ndarray, *,
                    prior_weight: float = 1.0) -> np.ndarray:
    """Every image's P(label wrong), calibrated by the label audit reviewed so far.

    The noise model's P(label wrong) ranks images well but misses the noise the networks learned (on
    CIFAR-10N ``worse`` it expects 1,373 wrong labels where there are 4,044). A reviewed image's
    probability becomes its verdict (0 or 1). In each stratum the others keep their order, and one
    shift of their log-odds moves their mean to the stratum's posterior share of wrong labels: the
    reviewed share ``k_h / n_h`` under a Beta prior centred on the model's own mean for the stratum,
    worth ``prior_weight`` reviews. A stratum without reviews keeps the model's probabilities, and
    the model's view decides only where reviews are few: on clean data, where no reviewed label is
    wrong, the probabilities stay near the model's small ones instead of the half a flat prior gives.

    Args:
        p_wrong: ``(N,)`` the noise model's P(label wrong); NaN where the run has none.
        strata: ``(N,)`` every image's stratum (:func:`audit_strata`).
        reviewed: ``(N,)`` True for the audit images a reviewer decided (drawn by :func:`draw_audit`).
        wrong: ``(N,)`` True where the reviewer found the label wrong (read only where ``reviewed``).
        prior_weight: how many reviews the model's stratum mean counts for.

    Returns ``(N,)`` probabilities whose sum is the audit's expected number of wrong labels.
    """
    p_wrong = np.asarray(p_wrong, dtype=np.float64)
    strata = np.asarray(strata, dtype=object)
    reviewed, wrong = np.asarray(reviewed, dtype=bool), np.asarray(wrong, dtype=bool)
    if not p_wrong.shape == strata.shape == reviewed.shape == wrong.shape or p_wrong.ndim != 1:
        raise ValueError(f"p_wrong {p_wrong.shape}, strata {strata.shape}, reviewed {reviewed.shape} and wrong "
                         f"{wrong.shape} must be one value per image.")
    if prior_weight <= 0:
        raise ValueError(f"prior_weight must be positive, got {prior_weight}.")
    out = p_wrong.copy()
    for name in STRATA:
        members = strata == name
        rest = members & ~reviewed
        n, k = int((members & reviewed).sum()), int((members & reviewed & wrong).sum())
        known = np.isfinite(p_wrong) & rest
        if not n or not rest.any():
            continue
        modelled = np.isfinite(p_wrong) & members
        model_mean = float(p_wrong[modelled].mean()) if modelled.any() else 0.5
        target = (k + prior_weight * model_mean) / (n + prior_weight)
        out[rest & ~known] = target
        if known.any():
            out[known] = _shift_mean(p_wrong[known], target)
    out[reviewed] = wrong[reviewed]
    return out


def _shift_mean(p: np.ndarray, target: float) -> np.ndarray:
    """``p`` with one common shift of its log-odds that makes its mean ``target`` (bisection: the mean rises with it)."""
    if not 0.0 < target < 1.0:
        return np.full(len(p), target)
    tiny = 1e-9
    p = np.clip(p, tiny, 1.0 - tiny)
    logit = np.log(p) - np.log1p(-p)
    low, high = -50.0, 50.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if np.mean(1.0 / (1.0 + np.exp(-(logit + middle)))) < target:
            low = middle
        else:
            high = middle
    return 1.0 / (1.0 + np.exp(-(logit + (low + high) / 2.0)))


def audit_columns(p_wrong: np.ndarray, flagged: np.ndarray, *, seed: int = 0):
    """The per-sample columns of ``samples.parquet``: every image's ``audit_stratum`` and whether it was
    drawn (:data:`PER_STRATUM` a stratum, as :func:`audit_record` records) for the ``label_audit``."""
    import pandas as pd

    strata = audit_strata(p_wrong, flagged)
    return pd.DataFrame({"audit_stratum": strata, "label_audit": draw_audit(strata, seed=seed)})


def audit_record(columns) -> dict:
    """The manifest's summary of a run's audit: images and audit images per stratum, and the rule."""
    strata, drawn = columns["audit_stratum"].to_numpy(), columns["label_audit"].to_numpy(bool)
    return {"doubt": DOUBT, "per_stratum": PER_STRATUM,
            "strata": {h: {"images": int((strata == h).sum()), "audit": int((drawn & (strata == h)).sum())}
                       for h in STRATA}}
