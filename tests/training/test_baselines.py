"""EASE: the closed form against numpy's, the item subset when the Gram matrix would not fit, the lambda
chosen on the validation figure, and the scores of a user's train row."""
import numpy as np
import pytest
import torch

from contract.errors import UserError
from training.baselines import (
    EASE,
    check_lambdas,
    ease_weights,
    factorise,
    fit_ease,
    gram,
    item_subset,
    max_items_for,
)
from training.sparse import Lists, multi_hot

FIRST = 3


def train_lists(rows):
    return Lists(torch.tensor([0] + [len(r) for r in rows]).cumsum(0), torch.tensor([i for r in rows for i in r],
                                                                                     dtype=torch.int64))


def numpy_ease(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def random_rows(seed, users=30, n_items=12):
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(np.arange(FIRST, n_items), rng.integers(1, 6), replace=False).tolist())
            for _ in range(users)]


def dense(rows, n_items):
    x = np.zeros((len(rows), n_items))
    for u, r in enumerate(rows):
        x[u, r] = 1.0
    return x


@pytest.mark.parametrize("lam", [1.0, 25.0])
def test_weights_and_scores_match_numpy(lam):
    rows, n_items = random_rows(0), 12
    items = torch.arange(FIRST, n_items)
    position = torch.full((n_items,), -1)
    position[items] = torch.arange(len(items))
    g = gram(train_lists(rows), position, len(items))
    x = dense(rows, n_items)[:, FIRST:]
    assert np.allclose(g.numpy(), x.T @ x)
    b = ease_weights(g, lam)
    assert np.allclose(b.numpy(), numpy_ease(x, lam), atol=1e-5)
    ease = EASE(items, b, lam, n_items)
    fold_in = multi_hot(torch.tensor([0, len(rows[0]), len(rows[0]) + len(rows[1])]),
                        torch.tensor(rows[0] + rows[1]), n_items)
    scores = ease.score_users(torch.tensor([0, 1]), fold_in).numpy()
    assert np.isneginf(scores[:, :FIRST]).all()  # reserved indices are no items of EASE's
    assert np.allclose(scores[:, FIRST:], x[:2] @ numpy_ease(x, lam), atol=1e-5)


def test_the_gram_matrix_sums_over_blocks_of_users(monkeypatch):
    import training.baselines as baselines

    rows, n_items = random_rows(1, users=40), 12
    items = torch.arange(FIRST, n_items)
    position = torch.full((n_items,), -1)
    position[items] = torch.arange(len(items))
    whole = gram(train_lists(rows), position, len(items))
    monkeypatch.setattr(baselines, "GRAM_BATCH", 3 * len(items))  # three users a block
    assert torch.equal(gram(train_lists(rows), position, len(items)), whole)


def test_a_catalogue_too_large_keeps_the_most_popular_items_and_says_so():
    counts = torch.tensor([0, 0, 0, 5, 1, 7, 7, 0, 2])
    assert item_subset(counts, FIRST, 3).tolist() == [3, 5, 6]
    assert item_subset(counts, FIRST, 100).tolist() == list(range(FIRST, 9))
    assert max_items_for(4 * 2**30) == int((0.75 * 4 * 2**30 / 8) ** 0.5)  # G and Q (ssyevr)
    assert max_items_for(4 * 2**30, matrices=4) == int((0.75 * 4 * 2**30 / 16) ** 0.5)  # torch.linalg.eigh
    rows = [[3, 5], [5, 6], [3, 6, 8], [4, 5]]
    said = []
    ease = fit_ease(train_lists(rows), counts, FIRST, (10.0,), 3, lambda score: 0.0, said.append)
    assert ease.items.tolist() == [3, 5, 6] and "models the 3 most popular" in said[0]
    scores = ease.score_users(torch.tensor([0]), multi_hot(torch.tensor([0, 2]), torch.tensor([3, 4]), 9))
    assert np.isneginf(scores[0, [4, 7, 8]].numpy()).all() and np.isfinite(scores[0, [3, 5, 6]].numpy()).all()


def test_lambda_is_the_one_validation_likes_best():
    rows, n_items = random_rows(2), 12
    counts = torch.bincount(torch.tensor([i for r in rows for i in r]), minlength=n_items)
    seen = []

    def validate(score):  # a figure that peaks at lambda 50, read off the scorer's weights
        lam = next(lam for lam in (5.0, 50.0, 500.0) if np.allclose(
            score(torch.tensor([0]), multi_hot(torch.tensor([0, 1]), torch.tensor([FIRST]), n_items))[0, FIRST + 1:]
            .numpy(), numpy_ease(dense(rows, n_items)[:, FIRST:], lam)[0, 1:], atol=1e-5))
        seen.append(lam)
        return -abs(np.log(lam / 50.0))

    said = []
    ease = fit_ease(train_lists(rows), counts, FIRST, (5.0, 50.0, 500.0), None, validate, said.append)
    assert seen == [5.0, 50.0, 500.0] and ease.lam == 50.0 and set(ease.validation) == {5.0, 50.0, 500.0}
    assert not any("edge" in line for line in said)
    ease = fit_ease(train_lists(rows), counts, FIRST, (5.0, 50.0), None, validate, said.append)
    assert ease.lam == 50.0 and "lambda 50 is the edge of --ease_lambdas" in said[-1]


def test_lambdas_must_be_positive():
    with pytest.raises(UserError, match="positive"):
        check_lambdas([10, 0])
    assert check_lambdas([1, 2.5]) == (1.0, 2.5)


@pytest.mark.parametrize("how", ["ssyevr", "torch.linalg.eigh"])
def test_one_eigendecomposition_gives_the_cholesky_weights_for_every_lambda(how, monkeypatch):
    """EASE's lambdas from one factorisation: B from G = Q diag(e) Q' (formed in row blocks, its upper triangle
    mirrored) and the scores from the factors alone are the Cholesky closed form's, lambda after lambda."""
    import training.baselines as baselines

    rows, n_items = random_rows(3, users=80, n_items=43), 43
    items = torch.arange(FIRST, n_items)
    position = torch.full((n_items,), -1)
    position[items] = torch.arange(len(items))
    g = gram(train_lists(rows), position, len(items))
    monkeypatch.setattr(baselines, "SYMMETRIC_BLOCK", 7)  # six row blocks of B, and a short last one
    monkeypatch.setattr(baselines, "GRAM_BATCH", 7 * len(items))  # diag P summed over blocks of eigenvectors
    spectrum = factorise(g.clone(), how)
    assert spectrum.solver == how and (spectrum.values >= 0).all()
    x = dense(rows, n_items)
    fold_in = multi_hot(torch.tensor([0, *np.cumsum([len(r) for r in rows[:6]])]),
                        torch.tensor([i for r in rows[:6] for i in r]), n_items)
    for lam in (1.0, 10.0, 100.0, 1000.0):
        cholesky = ease_weights(g, lam)
        assert torch.allclose(spectrum.weights(lam), cholesky, atol=5e-5, rtol=0), lam
        factored = EASE(items, None, lam, n_items, spectrum=spectrum).score_users(torch.arange(6), fold_in)
        assert np.isneginf(factored[:, :FIRST].numpy()).all()
        assert np.allclose(factored[:, FIRST:].numpy(), x[:6, FIRST:] @ cholesky.numpy(), atol=5e-5), lam
        assert np.allclose(factored[:, FIRST:].numpy(), x[:6, FIRST:] @ numpy_ease(x[:, FIRST:], lam), atol=5e-5), lam


def test_few_scored_users_are_scored_from_the_factors_many_from_b():
    rows, n_items = random_rows(4, users=60, n_items=30), 30
    counts = torch.bincount(torch.tensor([i for r in rows for i in r]), minlength=n_items)
    fold_in = multi_hot(torch.tensor([0, len(rows[0])]), torch.tensor(rows[0]), n_items)
    fits = {}
    for users in (5, 1000, None):  # 2 x 5 < 27 items: from the factors; else B
        seen = []
        fits[users] = fit_ease(train_lists(rows), counts, FIRST, (5.0, 50.0, 500.0), None,
                               lambda score, seen=seen: seen.append(score(torch.tensor([0]), fold_in)) or -len(seen), [].append,
                               users=users)
        assert fits[users].lam == 5.0 and len(seen) == 3
    assert fits[5].about["scored_with"] == "factors" and fits[5].weights is None
    assert fits[1000].about["scored_with"] == fits[None].about["scored_with"] == "B"
    assert fits[1000].weights is not None and fits[1000].about["items"] == n_items - FIRST
    scores = [fit.score_users(torch.tensor([0]), fold_in) for fit in fits.values()]
    assert torch.allclose(scores[0], scores[1], atol=5e-5) and torch.equal(scores[1], scores[2])
