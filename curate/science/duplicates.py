"""Exact and near duplicates, and leaks between splits. Pure numpy.

- *Exact*: the same file content (a digest of the bytes, computed by the data layer).
- *Near*: a perceptual hash (pHash: the 8 x 8 lowest DCT frequencies of the grey image, thresholded
  at their median) of the decoded image, also taken with the image shifted by a sixteenth of its side
  in each direction, and mirrored left to right (flipped copies are the commonest augmentation a
  dataset is padded with). Re-encoding, resizing, small shifts and colour changes move few of its 64
  bits; two different images differ in about 32. Two images are near duplicates when a hash of one is
  within :data:`NEAR_BITS` bits of the other's, and their pixels, aligned as the hashes were, agree better
  than those of all but :data:`CHANCE_LEVEL` of random pairs of the dataset's images of one class
  (:func:`confirm_by_pixels`).

- *Near, by content*: the dense network's features (the input of its last linear layer), centred and
  compared by cosine similarity. A copy cropped, re-shot or strongly recoloured moves many pHash bits but
  few features. The threshold is set per run from copies the job makes of its own images (shifted,
  mirrored, cropped, resized, recoloured): the lowest similarity that such copies reach
  :data:`FEATURE_LIKELIHOOD_RATIO` times as often as an image with no known copy (none by content hash or
  pHash) reaches its nearest neighbour, and that at least half of the made copies reach. Where none does,
  the network cannot tell a copy from a look-alike and only the hashes count.

Pairs become clusters (connected components). A cluster whose images carry both a training split and an
evaluation split is a *leak*: the same picture would be trained on and tested on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_BITS = 3
"""Hamming distance (of 64 bits) up to which two hashes are near duplicates. Random pairs of CIFAR
images differ in 31 +- 4 bits. Measured on CIFAR-10N with 500 planted copies (docs/benchmarks.md,
"Duplicates"): 3 bits find 96-100% of every kind of copy; 6 bits find no more copies but join
photos that only share a layout (an object centred on a plain sky)."""


def perceptual_hash(gray: np.ndarray) -> np.ndarray:
    """64-bit pHash of each image in ``gray`` ``(n, h, w)`` as ``uint64``: the image block-averaged to
    32 x 32 (enlarged by pixel repetition first when smaller), its 8 x 8 lowest 2-D DCT frequencies,
    one bit per frequency above their median. The median makes half the bits ones on any image, so
    flat, low-texture images do not all collapse onto one hash as they do with dHash."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 3 or min(gray.shape[1:]) < 1:
        raise ValueError(f"gray must be (n, h, w), got shape {gray.shape}.")
    if min(gray.shape[1:]) < 32:
        k = int(np.ceil(32 / min(gray.shape[1:])))
        gray = gray.repeat(k, axis=1).repeat(k, axis=2)
    n, h, w = gray.shape
    # Block means as two small matrix products (columns, then rows): for photos, far cheaper than scattering
    # every pixel into its block.
    return _hash_of_block_means(_block_mean_matrix(h) @ (gray @ _block_mean_matrix(w).T))


def _hash_of_block_means(small: np.ndarray) -> np.ndarray:
    from scipy.fft import dctn

    low = dctn(small, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(small), 64)
    bits = low > np.median(low[:, 1:], axis=1, keepdims=True)  # the DC term would skew the median
    return (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def _block_mean_matrix(side: int) -> np.ndarray:
    """``(32, side)``: row ``i`` averages the pixels ``p`` with ``p * 32 // side == i``."""
    blocks = (np.arange(side) * 32) // side
    matrix = (blocks[None, :] == np.arange(32)[:, None]).astype(np.float64)
    return matrix / matrix.sum(axis=1, keepdims=True)


SHIFT = 1 / 16
"""Share of the side by which copies may be shifted: a near duplicate is also searched at these offsets."""
UNSHIFTED, MIRRORED = 4, 9
"""Rows of :func:`shifted_hashes`: the image's own hash, and its mirror image's."""


def shifted_hashes(gray: np.ndarray, *, shift: float = SHIFT) -> np.ndarray:
    """pHashes of each image moved by ``-shift, 0, +shift`` of its side in each direction (edge-padded), and
    of its mirror image: ``(10, n)``; row :data:`UNSHIFTED` is the image's own hash, row :data:`MIRRORED` the
    mirror image's. Comparing each image with its neighbours' variants finds shifted and flipped copies
    without loosening the threshold (docs/benchmarks.md, "Duplicates")."""
    gray = np.asarray(gray, dtype=np.float64)
    n, h, w = gray.shape
    dy, dx = max(1, int(round(shift * h))), max(1, int(round(shift * w)))
    padded = np.pad(gray, ((0, 0), (dy, dy), (dx, dx)), mode="edge")
    if min(h, w) < 32:  # enlarged first (perceptual_hash): small images, cheap either way
        return np.stack([perceptual_hash(padded[:, dy + oy:dy + oy + h, dx + ox:dx + ox + w])
                         for oy in (-dy, 0, dy) for ox in (-dx, 0, dx)] + [perceptual_hash(gray[:, :, ::-1])])
    # The column means of each horizontal shift serve its three vertical shifts: 3 large products, not 9.
    rows, columns = _block_mean_matrix(h), _block_mean_matrix(w).T
    by_column = {ox: padded[:, :, dx + ox:dx + ox + w] @ columns for ox in (-dx, 0, dx)}
    mirrored = rows @ (gray[:, :, ::-1] @ columns)
    return np.stack([_hash_of_block_means(rows @ by_column[ox][:, dy + oy:dy + oy + h])
                     for oy in (-dy, 0, dy) for ox in (-dx, 0, dx)] + [_hash_of_block_means(mirrored)])


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def near_pairs(hashes: np.ndarray, *, max_bits: int = NEAR_BITS) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, whose hashes differ in at most ``max_bits`` bits, ``(m, 2)``.

    ``hashes`` ``(n,)``, or ``(variants, n)`` from :func:`shifted_hashes`: then ``i`` and ``j`` pair when
    some variant of one is within ``max_bits`` of some variant of the other (a mirrored image with a shifted
    one counts too: a copy may be both).

    Exact, not sampled: hashes within ``max_bits`` agree on at least one of ``max_bits + 1`` chunks of
    their bits (pigeonhole), so only pairs sharing a chunk value are compared.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.ndim == 2:
        n = hashes.shape[1]
        owner = np.tile(np.arange(n), hashes.shape[0])
        pairs = near_pairs(hashes.reshape(-1), max_bits=max_bits)
        pairs = np.sort(owner[pairs], axis=1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)
    n = len(hashes)
    chunks = max_bits + 1
    edges = np.linspace(0, 64, chunks + 1).astype(int)
    found = []
    for start, stop in zip(edges[:-1], edges[1:]):
        key = (hashes >> np.uint64(start)) & np.uint64((1 << (stop - start)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        bounds = np.flatnonzero(np.diff(sorted_key)) + 1
        for group in np.split(order, bounds):
            if len(group) < 2:
                continue
            i, j = np.triu_indices(len(group), k=1)
            a, b = group[i], group[j]
            close = _popcount(hashes[a] ^ hashes[b]) <= max_bits
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[close])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0).astype(np.int64) if n else np.zeros((0, 2), dtype=np.int64)


CHANCE_LEVEL = 0.001
"""A pair the hashes find is kept when its pixels agree better than all but this share of random pairs of two
of the run's images of one class do (p < 0.001 against two different images of a class): the hashes see only
an image's coarse layout, and two photos of a small object on a plain sky share one, as do two scans of one
digit. Pairs of one class, not of any two classes, since look-alikes are mostly of one class: a copy must
agree better than they usually do. Measured on CIFAR-10N and the demo's digits (docs/benchmarks.md,
"Duplicates"): the pairs this removes are such look-alikes; every planted copy, and CIFAR-10N's real ones,
stay."""
CHANCE_PAIRS = 20_000
"""Random pairs that set the chance level: its 0.1% tail is then the 20 highest."""
PAIRS_AT_A_TIME = 2048


def aligned_correlation(images: np.ndarray, pairs: np.ndarray, *, shift: float = SHIFT) -> np.ndarray:
    """How alike the pixels of each pair ``(i, j)`` of ``images`` are: the correlation of the two grey images
    at the best of the hashes' alignments (``j`` moved by ``-shift, 0, +shift`` of its side each way,
    edge-padded, and mirrored), on images block-averaged to 32 x 32 where larger, ``(m,)`` in [-1, 1].
    ``images``: ``(n, h, w)`` grey or ``(n, c, h, w)`` (any array that rows can be taken from, a memory-mapped
    file included), read at most ``PAIRS_AT_A_TIME`` pairs at a time. Brightness and contrast changes leave it
    unchanged; a flat image scores 0 with anything."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), dtype=np.float64)
    # Rows of large photos are read a few at a time: about 64 MB of pixels a side.
    at_a_time = max(16, min(PAIRS_AT_A_TIME, 2 ** 26 // max(1, int(np.prod(images.shape[1:])))))
    for start in range(0, len(pairs), at_a_time):
        chunk = pairs[start:start + at_a_time]
        a, b = _grey(images, chunk[:, 0]), _grey(images, chunk[:, 1])
        m, h, w = b.shape
        dy, dx = max(1, int(round(shift * h))), max(1, int(round(shift * w)))
        padded = np.pad(b, ((0, 0), (dy, dy), (dx, dx)), mode="edge")
        views = [padded[:, dy + oy:dy + oy + h, dx + ox:dx + ox + w] for oy in (-dy, 0, dy) for ox in (-dx, 0, dx)]
        unit_a = _unit_rows(a)
        out[start:start + len(chunk)] = np.max([np.einsum("ij,ij->i", unit_a, _unit_rows(v))
                                                for v in views + [b[:, :, ::-1]]], axis=0)
    return out


def _grey(images, rows: np.ndarray) -> np.ndarray:
    """Grey images of ``rows``, block-averaged to at most 32 x 32 as the hashes are (:func:`perceptual_hash`)."""
    order = np.argsort(rows, kind="stable")  # sorted rows read a memory-mapped file in one pass
    taken = np.asarray(images[rows[order]], dtype=np.float32)
    grey = taken.mean(axis=1) if taken.ndim == 4 else taken
    h, w = grey.shape[1:]
    if min(h, w) > 32:
        grey = _block_mean_matrix(h).astype(np.float32) @ grey @ _block_mean_matrix(w).T.astype(np.float32)
    block = np.empty_like(grey)
    block[order] = grey
    return block


def _unit_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-6 * (1.0 + np.abs(flat).max()))


def chance_agreement(images: np.ndarray, *, exclude: np.ndarray | None = None, labels: np.ndarray | None = None,
                     level: float = CHANCE_LEVEL, n_pairs: int = CHANCE_PAIRS, seed: int = 0) -> float:
    """The :func:`aligned_correlation` that only a share ``level`` of random pairs of ``images`` exceed, each pair
    two images of one of ``labels`` where given; pairs in ``exclude`` ``(m, 2)`` (the ones under test) are not
    drawn. -1 where no pair can be drawn."""
    n = len(images)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must give one label per image: {len(labels)} labels for {n} images.")
    if n < 2:
        return -1.0
    drawn = None if labels is None else same_label_pairs(labels, n_pairs, np.random.default_rng(seed))
    if drawn is None or (drawn[:, 0] == drawn[:, 1]).all():  # no labels, or no label with two images
        drawn = np.random.default_rng(seed).integers(0, n, size=(n_pairs, 2))
    drawn = np.sort(drawn[drawn[:, 0] != drawn[:, 1]], axis=1)
    if exclude is not None and len(exclude):
        excluded = np.sort(np.asarray(exclude, dtype=np.int64).reshape(-1, 2), axis=1)
        drawn = drawn[~np.isin(drawn[:, 0] * n + drawn[:, 1], excluded[:, 0] * n + excluded[:, 1])]
    if not len(drawn):
        return -1.0
    return float(np.quantile(aligned_correlation(images, drawn), 1.0 - level))


def same_label_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_pairs, 2)`` random pairs of indices of ``labels``, both of a pair of one label: the first drawn
    uniformly from every image, its partner uniformly from its label's (possibly itself)."""
    _, group, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")  # every label's images together, labels in order
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = rng.integers(0, len(group), size=n_pairs)
    of = group[first]
    partner = order[starts[of] + np.minimum((rng.random(n_pairs) * counts[of]).astype(np.int64), counts[of] - 1)]
    return np.stack([first, partner], axis=1)


@dataclass
class PixelCheck:
    """Hash pairs confirmed by their pixels (:func:`confirm_by_pixels`)."""

    pairs: np.ndarray        # (m, 2) the pairs kept: every exact copy, and near pairs above the chance level
    threshold: float         # the chance level of aligned correlation
    checked: int             # near pairs scored
    dropped: int             # of them, not above the chance level

    def record(self) -> dict:
        return {"pixel_chance_level": self.threshold, "hash_pairs_checked": self.checked,
                "hash_pairs_dropped": self.dropped}


def confirm_by_pixels(pairs: np.ndarray, digests: list[str] | np.ndarray, images: np.ndarray, *,
                      labels: np.ndarray | None = None, level: float = CHANCE_LEVEL, seed: int = 0) -> PixelCheck:
    """``pairs`` (:func:`duplicate_pairs`) less the near pairs whose pixels agree no better than random pairs of
    ``images`` do (:func:`chance_agreement`), pairs of images of one label where ``labels`` are given; pairs of
    identical files always stay."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    inverse, _, exact = _same_file(digests)
    near = (inverse[pairs[:, 0]] != inverse[pairs[:, 1]]) | ~exact[pairs[:, 0]]  # "": a file no one could read
    if not near.any():
        return PixelCheck(pairs, -1.0, 0, 0)
    threshold = chance_agreement(images, exclude=pairs, labels=labels, level=level, seed=seed)
    keep = ~near
    keep[near] = aligned_correlation(images, pairs[near]) > threshold
    return PixelCheck(pairs[keep], threshold, int(near.sum()), int((~keep).sum()))


NEIGHBOURS = 4
"""Neighbours searched per image: a cluster of up to five copies joins directly."""
FEATURE_LIKELIHOOD_RATIO = 100.0
"""How much likelier a made copy must be than an image without a copy to pass. Duplicates are rare (about 1
in 100 CIFAR-10 test images has a near copy in its training set, Barz and Denzler 2020), so a pair needs
100 to 1 evidence to be as likely a copy as not; the hashes' 3 bits hold random pairs to under 1 in 10,000."""
MIN_COPY_RECALL = 0.5
"""A feature threshold that half of the made copies miss is set by a handful of them: too few to trust."""


def nearest_neighbours(features: np.ndarray, *, k: int = NEIGHBOURS, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other images of each, ``(n, k)`` indices and centred cosine similarities,
    most similar first. Exact: similarities are computed ``chunk`` rows at a time against every image
    [default: as many rows as keep a block of similarities near 128 MB]."""
    unit = centred_unit(features)
    n = len(unit)
    chunk = chunk or max(16, 2**25 // max(n, 1))
    k = min(k, max(n - 1, 0))
    index, similarity = np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        block = unit[start:start + chunk] @ unit.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not its own neighbour
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k else np.zeros((len(block), 0), dtype=np.int64)
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        index[start:start + chunk] = np.take_along_axis(top, order, axis=1)
        similarity[start:start + chunk] = np.take_along_axis(block, index[start:start + chunk], axis=1)
    return index, similarity


def centred_unit(features: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows minus the mean row (``mean``, or the rows' own), scaled to length 1 (zero rows stay zero).
    ReLU features all point one way; centring makes the cosine tell images apart."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be (n_images, n_features), got shape {features.shape}.")
    centred = features - (features.mean(axis=0) if mean is None else mean)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)


def copy_similarity(features: np.ndarray, copy_features: np.ndarray, copy_rows: np.ndarray) -> np.ndarray:
    """Centred cosine similarity of each made copy ``copy_features[i]`` with its original ``features[copy_rows[i]]``
    (centred on the dataset's mean, as :func:`nearest_neighbours` does)."""
    mean = np.asarray(features, dtype=np.float32).mean(axis=0)
    originals = centred_unit(np.asarray(features, dtype=np.float32)[np.asarray(copy_rows)], mean)
    return (originals * centred_unit(copy_features, mean)).sum(axis=1)


@dataclass
class FeatureMatch:
    """Near duplicates by the network's features (:func:`feature_duplicates`)."""

    pairs: np.ndarray           # (m, 2) i < j
    threshold: float            # cosine similarity; inf when no similarity passes the bar
    copy_recall: float          # share of made copies at or above it
    neighbour_rate: float       # share of images without a known copy whose nearest neighbour is at or above it

    def record(self) -> dict:
        return {"feature_similarity": self.threshold if np.isfinite(self.threshold) else None,
                "feature_copy_recall": self.copy_recall, "feature_neighbour_rate": self.neighbour_rate,
                "feature_pairs": int(len(self.pairs))}


def feature_duplicates(features: np.ndarray, copy_features: np.ndarray, copy_rows: np.ndarray, *,
                       known: np.ndarray | None = None, ratio: float = FEATURE_LIKELIHOOD_RATIO,
                       min_recall: float = MIN_COPY_RECALL) -> FeatureMatch:
    """Pairs of images whose features are as similar as an image and its made copy (see the module docstring).

    Args:
        features: ``(N, D)`` one network's features of every image.
        copy_features: ``(M, D)`` the same network's features of copies it made of images ``copy_rows`` ``(M,)``.
        known: ``(N,)`` images already known to have a copy (the hashes'); the others' nearest neighbours are
            the look-alikes a copy must beat [default: none known].
    """
    from curate.science.regions import likelihood_ratio_threshold, pass_rate

    copies = copy_similarity(features, copy_features, copy_rows)
    index, similarity = nearest_neighbours(features)
    none = FeatureMatch(np.zeros((0, 2), dtype=np.int64), float("inf"), 0.0, 0.0)
    if similarity.shape[1] == 0:
        return none
    alone = np.ones(len(features), dtype=bool) if known is None else ~np.asarray(known, dtype=bool)
    nearest = similarity[alone, 0]
    if not len(nearest):
        return none
    threshold = likelihood_ratio_threshold(copies, nearest, ratio=ratio)
    if pass_rate(copies, threshold) < min_recall:
        threshold = float("inf")
    rows, cols = np.nonzero(similarity >= threshold)
    a, b = rows, index[rows, cols]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0) if len(rows) else none.pairs
    return FeatureMatch(pairs.astype(np.int64), threshold, pass_rate(copies, threshold), pass_rate(nearest, threshold))


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of ``pairs`` over ``n`` items: ``(n,)`` cluster ids, -1 for an item in no pair.
    Ids are the smallest member index of each cluster, so they are stable across runs."""
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(pairs, dtype=np.int64):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)])
    return np.where(in_a_pair(n, pairs), roots, -1)


EVAL_SPLITS = ("val", "validation", "test")


@dataclass
class Duplicates:
    """Result of :func:`find_duplicates`.

    Attributes:
        cluster: ``(N,)`` cluster id (the smallest member index), -1 when the image has no duplicate.
        exact: ``(N,)`` the image's file content equals another's.
        keep: ``(N,)`` the one image of each cluster an export keeps in training (the first by index);
            True for every image in no cluster.
        leak: ``(N,)`` the image's cluster holds both a training image and a val/test image.
        distance: ``(N,)`` bits to the nearest other member of its cluster (0 for exact copies), -1 outside.
    """

    cluster: np.ndarray
    exact: np.ndarray
    keep: np.ndarray
    leak: np.ndarray
    distance: np.ndarray

    @property
    def is_duplicate(self) -> np.ndarray:
        return self.cluster >= 0


def find_duplicates(hashes: np.ndarray, digests: list[str] | np.ndarray, splits: list[str | None], *,
                    max_bits: int = NEAR_BITS, feature_pairs: np.ndarray | None = None,
                    images: np.ndarray | None = None, labels: np.ndarray | None = None) -> Duplicates:
    """Exact duplicates (equal ``digests``) and near duplicates (``hashes`` within ``max_bits``; ``hashes``
    ``(n,)`` or the ``(10, n)`` of :func:`shifted_hashes`; confirmed by the pixels of ``images``, the images
    hashed, where given: :func:`confirm_by_pixels`; and ``feature_pairs`` ``(m, 2)`` from
    :func:`feature_duplicates`), clustered, with each cluster's keeper and leaks across ``splits``
    (``None``: no split, counts as training): :func:`group_duplicates` of :func:`duplicate_pairs`."""
    pairs = duplicate_pairs(hashes, digests, max_bits=max_bits)
    if images is not None:
        pairs = confirm_by_pixels(pairs, digests, images, labels=labels).pairs
    if feature_pairs is not None and len(feature_pairs):
        pairs = np.concatenate([pairs, np.asarray(feature_pairs, dtype=np.int64).reshape(-1, 2)])
    return group_duplicates(pairs, hashes, digests, splits)


def _check_lengths(hashes: np.ndarray, digests, splits=None) -> int:
    n = np.asarray(hashes).shape[-1]
    if len(digests) != n or (splits is not None and len(splits) != n):
        raise ValueError(f"hashes, digests and splits must have one entry per image; got {n}, {len(digests)}, "
                         f"{n if splits is None else len(splits)}.")
    return n


def _same_file(digests) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's file-content group (``inverse``), the first image of each group, and whether the
    image shares its content with another."""
    digests = np.asarray(digests, dtype=object).astype(str)
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    exact = (np.bincount(inverse, minlength=len(first))[inverse] > 1) & (digests != "")
    return inverse, first, exact


def duplicate_pairs(hashes: np.ndarray, digests: list[str] | np.ndarray, *, max_bits: int = NEAR_BITS) -> np.ndarray:
    """Every pair of exact duplicates (equal ``digests``) and of near duplicates (``hashes`` within ``max_bits``,
    :func:`near_pairs`), ``(m, 2)``."""
    variants = np.asarray(hashes, dtype=np.uint64)
    _check_lengths(variants, digests)
    inverse, first, exact = _same_file(digests)
    exact_pairs = np.stack([first[inverse][exact], np.flatnonzero(exact)], axis=1)
    exact_pairs = exact_pairs[exact_pairs[:, 0] != exact_pairs[:, 1]]
    near = near_pairs(variants, max_bits=max_bits)
    return np.concatenate([exact_pairs, near]) if len(near) else exact_pairs


def in_a_pair(n: int, pairs: np.ndarray) -> np.ndarray:
    """``(n,)`` whether each of ``n`` images is in one of ``pairs``."""
    found = np.zeros(n, dtype=bool)
    found[np.asarray(pairs, dtype=np.int64).reshape(-1)] = True
    return found


def group_duplicates(pairs: np.ndarray, hashes: np.ndarray, digests: list[str] | np.ndarray,
                     splits: list[str | None]) -> Duplicates:
    """Duplicate ``pairs`` ``(m, 2)`` (:func:`duplicate_pairs`, plus any others) clustered, with each cluster's
    keeper, its leaks across ``splits`` and each image's distance in bits to its nearest fellow."""
    variants = np.asarray(hashes, dtype=np.uint64)
    hashes = variants[UNSHIFTED] if variants.ndim == 2 else variants
    n = _check_lengths(variants, digests, splits)
    inverse, _, exact = _same_file(digests)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    cluster = clusters(n, pairs)
    nearest = np.full(n, 64, dtype=np.int64)
    if len(pairs):
        # Files no one could read (digest "") are not thereby the same file: their hashes say how near they are.
        same_file = (inverse[pairs[:, 0]] == inverse[pairs[:, 1]]) & exact[pairs[:, 0]]
        flat = variants.reshape(-1, n) if variants.ndim == 2 else variants[None]
        closest = np.min([_popcount(v[pairs[:, 0]] ^ hashes[pairs[:, 1]]) for v in flat], axis=0)
        bits = np.where(same_file, 0, closest)
        for column in (0, 1):
            np.minimum.at(nearest, pairs[:, column], bits)
    distance = np.where(cluster >= 0, nearest, -1)
    is_eval = np.array([(s or "").lower() in EVAL_SPLITS for s in splits])
    keep = np.ones(n, dtype=bool)
    leak = np.zeros(n, dtype=bool)
    for c in np.unique(cluster[cluster >= 0]):
        members = np.flatnonzero(cluster == c)
        train = members[~is_eval[members]]
        keep[train[1:]] = False  # one per cluster stays in training
        if is_eval[members].any() and (~is_eval[members]).any():
            leak[members] = True
    return Duplicates(cluster=cluster, exact=exact, keep=keep, leak=leak, distance=distance)


def duplicate_columns(duplicates: Duplicates):
    """The per-sample columns of ``samples.parquet``."""
    import pandas as pd

    return pd.DataFrame({"duplicate_cluster": duplicates.cluster, "exact_duplicate": duplicates.exact,
                         "duplicate_keep": duplicates.keep, "leak": duplicates.leak,
                         "duplicate_distance": duplicates.distance})


def duplicate_warnings(duplicates: Duplicates) -> list[str]:
    """A plain warning when images of an evaluation split have a copy in training."""
    n = int(duplicates.leak.sum())
    if not n:
        return []
    clusters_n = len(np.unique(duplicates.cluster[duplicates.leak]))
    return [f"{clusters_n} group(s) of duplicates ({n} images, tag `leak`) span a training split and val/test: "
            "the same picture is trained on and evaluated on, which flatters test accuracy. Review the "
            "`duplicates` view; `curate export --drop-duplicates` keeps one image per group in train."]
