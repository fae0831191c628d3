"""`train --kind probe`: a linear correction to the zero-shot head, fitted on cached features.

The probe's logits are the zero-shot log-probabilities plus a linear function
of the (normalised, centred) features, so with zero weights it *is* zero-shot:
it starts where zero-shot is. The loss is class-balanced cross-entropy plus an
L2 pull of the weights toward zero whose strength is chosen by stratified
cross-validation on the training items, with "infinitely strong" (plain
zero-shot) among the candidates. Of the candidates whose validation loss is
within one standard error of the best, the most regularised wins (the
one-standard-error rule): with a handful of examples the folds are noisy, and
this keeps the probe at or near zero-shot unless the examples clearly say
otherwise. Full-batch L-BFGS: seconds on a CPU for thousands of items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models.base import ResidualHead, ZeroShotHead, l2_normalize

FOLDS = 3
MAX_ITERATIONS = 200


@dataclass(frozen=True)
class ProbeFit:
    head: ResidualHead
    strength: float | None  # None: the probe chose plain zero-shot
    validation_loss: dict[str, float]  # mean cross-validated log-loss per candidate strength
    history: list[dict] = field(default_factory=list)  # the final fit, per L-BFGS step: loss and accuracy


def fit_probe(base: ZeroShotHead, features: np.ndarray, truth: np.ndarray,
              strengths: tuple[float, ...], seed: int = 0) -> ProbeFit:
    """A `ResidualHead` over `base` for items with these features and label columns."""
    x = l2_normalize(features.astype(np.float32))
    mean = x.mean(axis=0)
    x = x - mean
    base_logp = np.log(np.maximum(base.probabilities(features), 1e-12)).astype(np.float32)
    c = len(base.labels)
    fold = _folds(truth, seed)
    per_fold = {str(s): _fold_losses(x, base_logp, truth, c, s, fold) for s in sorted(strengths, reverse=True)}
    per_fold["zero-shot"] = [_log_loss(base_logp[fold == k], truth[fold == k], c) for k in range(FOLDS)
                             if (fold == k).any()]
    losses = {name: float(np.mean(values)) for name, values in per_fold.items()}
    best = min(losses, key=losses.get)
    spread = np.std(per_fold[best]) / np.sqrt(max(1, len(per_fold[best]) - 1))
    # most regularised first: zero-shot, then the strongest pull
    ordered = ["zero-shot"] + [str(s) for s in sorted(strengths, reverse=True)]
    best = next(name for name in ordered if losses[name] <= losses[best] + spread)
    history: list[dict] = []
    if best == "zero-shot":
        weights, bias = np.zeros((c, x.shape[1]), np.float32), np.zeros(c, np.float32)
        strength = None
    else:
        strength = float(best)
        weights, bias = _fit(x, base_logp, truth, c, strength, history)
    return ProbeFit(ResidualHead(base.labels, base, weights, bias, mean), strength, losses, history)


def _folds(truth: np.ndarray, seed: int) -> np.ndarray:
    """A fold number per item, dealt out class by class so every fold sees every class it can."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(truth), dtype=np.int64)
    offset = 0
    for label in np.unique(truth):
        members = rng.permutation(np.flatnonzero(truth == label))
        fold[members] = (np.arange(len(members)) + offset) % FOLDS
        offset += len(members)
    return fold


def _fold_losses(x, base_logp, truth, c, strength, fold) -> list[float]:
    """The validation log-loss of each fold, trained on the others (inf if no fold can be held out)."""
    losses = []
    for k in range(FOLDS):
        held = fold == k
        if not held.any() or held.all():
            continue
        weights, bias = _fit(x[~held], base_logp[~held], truth[~held], c, strength)
        losses.append(_log_loss(base_logp[held] + x[held] @ weights.T + bias, truth[held], c))
    return losses or [float("inf")]


def _balanced_weights(truth: np.ndarray, c: int) -> np.ndarray:
    counts = np.bincount(truth, minlength=c).astype(np.float64)
    present = (counts > 0).sum()
    return (len(truth) / (present * counts[truth])).astype(np.float32)


def _log_loss(logits: np.ndarray, truth: np.ndarray, c: int) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    weights = _balanced_weights(truth, c)
    return float(-(weights * logp[np.arange(len(truth)), truth]).sum() / weights.sum())


def _fit(x: np.ndarray, base_logp: np.ndarray, truth: np.ndarray, c: int, strength: float,
         history: list[dict] | None = None):
    """Class-balanced cross-entropy + strength * |W|^2, by full-batch L-BFGS. With `history`, each
    evaluation appends {"step", "train_loss", "train_accuracy"} to it (the training curves)."""
    import torch

    inputs, base = torch.from_numpy(x), torch.from_numpy(base_logp)
    target = torch.from_numpy(truth.astype(np.int64))
    sample_weights = torch.from_numpy(_balanced_weights(truth, c))
    weights = torch.zeros((c, x.shape[1]), requires_grad=True)
    bias = torch.zeros(c, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], lr=1.0, max_iter=MAX_ITERATIONS,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6)

    def closure():
        optimizer.zero_grad()
        logits = base + inputs @ weights.T + bias
        per_item = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        loss = (sample_weights * per_item).sum() / sample_weights.sum() + strength * (weights ** 2).sum()
        loss.backward()
        if history is not None:
            accuracy = (logits.argmax(dim=1) == target).float().mean().item()
            history.append({"step": len(history) + 1, "train_loss": float(loss.item()), "train_accuracy": accuracy})
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weights.detach().numpy().astype(np.float32), bias.detach().numpy().astype(np.float32)
