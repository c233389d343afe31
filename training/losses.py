"""The losses of the pairs families (`--loss`), as pure functions of scores: one per loss, and `LOSSES`, the table
the task dispatches on.

Every function reads `scores` shaped (P, 1 + N): row p is one positive, column 0 the score of its item, columns
1.. the scores of the N negatives it is ranked against (its own `-n` negatives, or the `--shared_negatives`
draw that every positive of the step shares). Each returns the mean over the P positives (bce: over every
scored pair, as DeepLearningExamples' NCF; the same thing when each row holds 1 + N pairs), so a micro-batch of
whole rows weighted by its share of the rows gives the batch's gradient.

`valid` (P, N), where given, is False for a negative that is the row's positive item itself (an accidental hit:
a uniform or popularity draw can return it). softmax and simplex leave those out (as TensorFlow's sampled
softmax does with remove_accidental_hits); bce keeps DLE's behaviour (a hit is a negative label); bpr needs no
mask: a hit's difference is 0 and its gradient cancels (the same rows on both sides).
"""
from __future__ import annotations

import torch
from torch.nn import functional


def bce(scores: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Pointwise binary cross-entropy of every pair's logit (He et al. 2017, DLE NCF), the mean over all pairs:
    label 1 for column 0 and 0 for the negatives unless `labels` (the shape of `scores`) says otherwise."""
    if labels is None:
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1
    return functional.binary_cross_entropy_with_logits(scores, labels)


def bpr(scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009): the mean over positives and each of their negatives of
    -log sigmoid(s_pos - s_neg)."""
    return -functional.logsigmoid(scores[:, :1] - scores[:, 1:]).mean()


def sampled_softmax(scores: torch.Tensor, log_q: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                    temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax with the log-Q correction: per row, the cross-entropy of column 0 among the row's columns,

        o_k = s_k / temperature - log q(item_k)        L = -o_0 + log sum_k exp(o_k)      (k = 0 .. N)

    where q is the probability the negative sampler draws item_k. With negatives drawn from q, the negatives'
    terms exp(o_k) estimate the softmax's partition sum over the whole catalogue by importance sampling (Bengio &
    Senecal 2008); Yi et al. 2019 (eq. 3, "sampling-bias-corrected") subtract log q from every logit of the
    softmax, the positive's included, and so does TensorFlow's sampled_softmax_loss (subtract_log_q: the true
    class's logit minus the log of its expected count too). Correcting every column, the correction is a shift of
    the logits when q is uniform and leaves the loss unchanged; only a non-uniform sampler (popularity) changes it.
    The expected count N q(item) would add log N to every logit: a shift again, left out. `log_q` is (P, 1 + N)
    (or broadcasts to it), None for no correction; masked negatives (`valid` False) are left out of the sum."""
    logits = scores / temperature
    if log_q is not None:
        logits = logits - log_q
    if valid is not None:
        keep = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1).expand_as(logits)
        logits = logits.masked_fill(~keep, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def cosine_contrastive(similarity: torch.Tensor, margin: float, negative_weight: float,
                       valid: torch.Tensor | None = None) -> torch.Tensor:
    """SimpleX's cosine contrastive loss (Mao et al., CIKM 2021, eq. 4) on similarities in [-1, 1], per row

        L = (1 - s_pos) + negative_weight / N * sum_j max(0, s_j - margin)

    the mean over rows. N counts every negative drawn; a masked one (`valid` False) adds nothing."""
    negative = torch.relu(similarity[:, 1:] - margin)
    if valid is not None:
        negative = negative * valid
    return ((1 - similarity[:, 0]) + negative_weight * negative.mean(dim=1)).mean()


LOSSES = {"bce": bce, "bpr": bpr, "softmax": sampled_softmax, "simplex": cosine_contrastive}
