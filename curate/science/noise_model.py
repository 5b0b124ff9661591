"""How likely is each label to be wrong? A noise model fitted to the held-out predictions. Pure numpy.

Under cross-fitting, a sample's held-out prediction ``q`` comes from networks that never saw it, so
``q`` does not depend on the sample's own label. Every label, the given one or any other, can be
scored against the same ``q``: this is what makes the labels' likelihood a fair judge of how much
noise the labels hold.

The model (forward noise, Patrini et al. 2017; Dawid & Skene 1979 with one annotator):

- the true class ``y*`` of sample ``i`` follows ``r_i = softmax(log q_i / temperature)``: the
  population's belief, with its over- or under-confidence corrected by one temperature;
- the given label follows ``P(y = l | y* = k) = T[k, l]``, one noise matrix for the dataset: by
  default uniform noise, ``T = (1 - e) I + e / (C - 1)`` off the diagonal, one rate ``e``.

``temperature`` and ``T`` maximise the likelihood of the given labels, ``sum_i log (r_i T)[y_i]``
(``T`` by expectation-maximisation for each temperature; the temperature by a one-dimensional
search). Then, by Bayes, a label is wrong with probability
``1 - r_i[y_i] T[y_i, y_i] / (r_i T)[y_i]``, and the labels hold ``sum_i`` of that many errors.

Why this separates noise from a weak population: a network's own uncertainty is explained by the
temperature, which softens every prediction in proportion to its doubt, whereas label noise is
explained by ``T``, which leaves a floor of disagreement even where the population is sure. A weak
population on clean labels is unsure where it disagrees with the labels, so the likelihood prefers
a high temperature and a near-identity ``T``, and few labels are called wrong; a strong population
that confidently disagrees with a label can only be explained by noise. The noise matrix also learns
which confusions annotators make (cat for dog), so a plausible wrong label is not taken for a random one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FLOOR = 1e-6  # probabilities are clipped here before logs: a held-out zero is never certainty
_START_NOISE = 0.01
_PSEUDO_COUNT = 0.1


@dataclass
class NoiseModel:
    """Result of :func:`fit_noise_model`.

    Attributes:
        p_wrong: ``(N,)`` probability that each given label is wrong.
        posterior: ``(N, C)`` probability of each true class given the image and its label.
        transition: ``(C, C)`` ``T[true, given]``, rows summing to 1.
        temperature: the population's confidence correction (> 1: it was over-confident).
        log_likelihood: mean log-likelihood of the given labels under the fitted model.
    """

    p_wrong: np.ndarray
    posterior: np.ndarray
    transition: np.ndarray
    temperature: float
    log_likelihood: float

    @property
    def expected_wrong(self) -> float:
        """Expected number of wrong labels in the dataset."""
        return float(self.p_wrong.sum())

    def expected_wrong_among(self, mask: np.ndarray) -> float:
        """Expected number of wrong labels among the samples ``mask`` selects."""
        return float(self.p_wrong[np.asarray(mask, dtype=bool)].sum())


def _check(labels, probs):
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"pred_probs must be (n_samples, n_classes) with at least 2 classes, got shape {probs.shape}.")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}; expected ({probs.shape[0]},) to match pred_probs.")
    if len(labels) == 0:
        raise ValueError("No samples to fit a noise model to.")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}], got {labels.min()}..{labels.max()}.")
    if not np.isfinite(probs).all() or probs.min() < 0:
        raise ValueError("pred_probs must be finite and non-negative (held-out class probabilities).")
    return labels.astype(np.int64), probs


def tempered(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log_probs / temperature)`` row by row."""
    z = log_probs / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _uniform(rate: float, c: int) -> np.ndarray:
    transition = np.full((c, c), rate / (c - 1))
    np.fill_diagonal(transition, 1.0 - rate)
    return transition


def fit_transition(labels: np.ndarray, belief: np.ndarray, *, symmetric: bool = True, iterations: int = 2000,
                   tolerance: float = 1e-7) -> tuple[np.ndarray, float]:
    """Maximum-likelihood noise matrix ``T[true, given]`` for labels drawn from ``belief @ T``.

    Returns ``(T, mean log-likelihood)``. ``belief`` ``(N, C)`` is the prior over each sample's true
    class. ``symmetric``: one rate ``e``; the log-likelihood ``sum_i log(r_i + e (1 - r_i) / (C - 1) - e r_i)``
    (``r_i`` the belief in the given label) is concave in ``e``, so bisection on its derivative finds
    the maximum exactly. Otherwise a full matrix by EM (the E-step weighs the belief by ``T[:, y_i]``,
    the M-step counts true-given pairs) until no entry moves by ``tolerance``.
    """
    labels, belief = _check(labels, belief)
    n, c = belief.shape
    rows = np.arange(n)
    if symmetric:
        agree = belief[rows, labels]
        slope = (1.0 - agree) / (c - 1) - agree  # d/de of each sample's label probability
        low, high = 0.0, (c - 1) / c  # past (C-1)/C the given label would be the least likely one
        for _ in range(60):
            middle = 0.5 * (low + high)
            if (slope / np.maximum(agree + middle * slope, 1e-300)).sum() > 0:
                low = middle
            else:
                high = middle
        transition = _uniform(0.5 * (low + high), c)
        evidence = (belief * transition[:, labels].T).sum(axis=1)
        return transition, float(np.log(np.maximum(evidence, 1e-300)).mean())
    onehot = np.zeros((n, c))
    onehot[rows, labels] = 1.0
    transition = _uniform(_START_NOISE, c)
    for _ in range(iterations):
        joint = belief * transition[:, labels].T  # (N, C): P(y* = k, y = y_i | x_i)
        posterior = joint / np.maximum(joint.sum(axis=1), 1e-300)[:, None]
        counts = posterior.T @ onehot + _PSEUDO_COUNT
        updated = counts / counts.sum(axis=1, keepdims=True)
        moved = np.abs(updated - transition).max()
        transition = updated
        if moved < tolerance:
            break
    evidence = (belief * transition[:, labels].T).sum(axis=1)
    return transition, float(np.log(np.maximum(evidence, 1e-300)).mean())


def normalised_log_probs(probs: np.ndarray) -> np.ndarray:
    """Log probabilities, rows normalised, clipped at a floor: a held-out zero is never certainty."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.log(np.clip(probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-300), _FLOOR, 1.0))


def best_temperature(profile, temperatures: tuple[float, float] = (0.1, 10.0), *, steps: int = 30) -> float:
    """The temperature in ``temperatures`` (low, high) that maximises ``profile(temperature)``, by golden-section
    search on its logarithm (a profile likelihood is smooth and unimodal in practice)."""
    a, b = np.log(temperatures[0]), np.log(temperatures[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = b - ratio * (b - a), a + ratio * (b - a)
    f1, f2 = profile(float(np.exp(x1))), profile(float(np.exp(x2)))
    for _ in range(steps):
        if f1 >= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - ratio * (b - a)
            f1 = profile(float(np.exp(x1)))
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + ratio * (b - a)
            f2 = profile(float(np.exp(x2)))
    return float(np.exp(x1 if f1 >= f2 else x2))


def fit_noise_model(labels: np.ndarray, pred_probs: np.ndarray, *, symmetric: bool = True,
                    temperatures: tuple[float, float] = (0.1, 10.0), steps: int = 30) -> NoiseModel:
    """Fit the label-noise model of the module docstring to held-out predictions.

    Args:
        labels: ``(N,)`` given labels.
        pred_probs: ``(N, C)`` held-out (cross-fitted) predicted probabilities: the networks that
            produced row ``i`` must not have trained on sample ``i``, or the given labels judge themselves.
        symmetric: one noise rate (default) rather than a full noise matrix (see the module docstring).
        temperatures: the range searched for the confidence correction.
        steps: golden-section steps of that search (the profile likelihood is smooth and unimodal in
            practice; 30 steps narrow the range a million-fold).
    """
    labels, probs = _check(labels, pred_probs)
    low, high = temperatures
    if not 0 < low < high:
        raise ValueError(f"temperatures must be (low, high) with 0 < low < high, got {temperatures}.")
    log_probs = normalised_log_probs(probs)
    temperature = best_temperature(
        lambda t: fit_transition(labels, tempered(log_probs, t), symmetric=symmetric)[1], temperatures, steps=steps)
    belief = tempered(log_probs, temperature)
    transition, log_likelihood = fit_transition(labels, belief, symmetric=symmetric)
    joint = belief * transition[:, labels].T
    posterior = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-300)
    p_wrong = np.clip(1.0 - posterior[np.arange(len(labels)), labels], 0.0, 1.0)
    return NoiseModel(p_wrong=p_wrong, posterior=posterior, transition=transition, temperature=temperature,
                      log_likelihood=log_likelihood)


def reliability_table(p: np.ndarray, truth: np.ndarray, *, bins: int = 10) -> tuple[list[dict], float]:
    """Reliability of probabilities ``p`` against 0/1 ``truth``: per equal-width bin the count, the
    mean predicted and the observed rate; and the expected calibration error (count-weighted mean
    absolute gap)."""
    p, truth = np.asarray(p, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if p.shape != truth.shape:
        raise ValueError(f"p has shape {p.shape} and truth {truth.shape}; they must match.")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        predicted, observed = float(p[inside].mean()), float(truth[inside].mean())
        rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(inside.sum()),
                     "predicted": predicted, "observed": observed})
        gap += inside.sum() * abs(predicted - observed)
    return rows, float(gap / max(len(p), 1))
