"""Growing a model onto a grown workflow's data: old rows and weights copied exactly, new rows a fresh model's."""
import pytest
import torch

from contract.errors import UserError
from training.growth import grow_model
from training.tasks import build_model, task_for

NEUMF = {"variant": "neumf", "factors": 4, "layers": [8, 4]}
MULTVAE = {"variant": "multvae", "dims": [16, 4], "activation": "tanh"}
OLD, NEW = {"users": 10, "items": 8}, {"users": 13, "items": 12}


def _models(arch):
    torch.manual_seed(0)
    old = build_model(arch, OLD).eval()
    torch.manual_seed(1)
    fresh = build_model(arch, NEW).eval()
    grown = build_model(arch, NEW).eval()
    grown.load_state_dict(fresh.state_dict())
    return old, fresh, grown


def _fold_in(users: int, items: int) -> torch.Tensor:
    """Each user has old items u % 8 and (u + 1) % 8: a CSR multi-hot over `items` columns."""
    rows = [sorted({u % OLD["items"], (u + 1) % OLD["items"]}) for u in range(users)]
    crow = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()])
    cols = torch.tensor([c for r in rows for c in r])
    return torch.sparse_csr_tensor(crow, cols, torch.ones(len(cols)), (users, items))


@pytest.mark.parametrize("arch", [NEUMF, MULTVAE, {**NEUMF, "variant": "gmf"}], ids=lambda a: a["variant"])
def test_old_rows_copied_new_rows_fresh_and_old_scores_unchanged(arch):
    old, fresh, grown = _models(arch)
    added = grow_model(grown, old.state_dict(), "old.pth")
    rows = grown.row_tables()
    assert added == ({"items": 4} if arch["variant"] == "multvae" else {"users": 3, "items": 4})
    before, after, new = old.state_dict(), grown.state_dict(), fresh.state_dict()
    for name, value in after.items():
        if name in rows:
            n = before[name].shape[0]
            assert torch.equal(value[:n], before[name]) and torch.equal(value[n:], new[name][n:]), name
        else:
            assert torch.equal(value, before[name]), name
    task = task_for(arch["variant"])
    users = torch.arange(OLD["users"])
    with torch.no_grad():
        expected = task.score_users(old, users, _fold_in(OLD["users"], OLD["items"]))
        found = task.score_users(grown, users, _fold_in(OLD["users"], NEW["items"]))
    # equal up to float rounding: a wider last layer may take another BLAS kernel
    torch.testing.assert_close(found[:, :OLD["items"]], expected, rtol=0, atol=1e-6)


def test_weights_of_another_architecture_are_refused_in_one_line():
    old, _, _ = _models(NEUMF)
    other = build_model({**NEUMF, "layers": [8, 6]}, NEW)
    with pytest.raises(UserError, match=r"old.pth: mlp.0.weight has shape \(4, 8\), which does not fit"):
        grow_model(other, old.state_dict(), "old.pth")
    with pytest.raises(UserError, match="old.pth: its weights .* do not match"):
        grow_model(build_model(MULTVAE, NEW), old.state_dict(), "old.pth")
