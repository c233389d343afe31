"""NeuMF from a pretrained GMF and MLP (NCF paper, 3.4.1), and `--pretrain` as one command."""
import pytest
import torch

from training.models import build_model
from training.models.neumf import from_pretrained

from ..helpers import train, train_fails

SIZES = {"users": 7, "items": 11}


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_pretrained_neumf_scores_the_alpha_blend_of_its_parts(alpha):
    torch.manual_seed(0)
    gmf = build_model({"variant": "gmf", "factors": 4, "layers": [2]}, SIZES).eval()
    mlp = build_model({"variant": "mlp", "factors": 8, "layers": [8, 6, 3]}, SIZES).eval()
    neumf = build_model({"variant": "neumf", "factors": 4, "layers": [8, 6, 3]}, SIZES).eval()
    neumf.load_state_dict(from_pretrained(gmf.state_dict(), mlp.state_dict(), alpha))
    users, items = torch.arange(7).repeat(11), torch.arange(11).repeat_interleave(7)
    with torch.no_grad():
        expected = alpha * gmf(users, items) + (1 - alpha) * mlp(users, items)
        assert torch.allclose(neumf(users, items), expected, atol=1e-6)


def test_pretrain_trains_gmf_mlp_then_neumf_from_both(prepared, tmp_path):
    summary = train("--data", prepared, "--pretrain", "-e", "2", "-b", "4096", "-f", "8", "--layers", "16", "8",
                    "--checkpoint_dir", tmp_path, "--log_path", tmp_path / "log.jsonl")
    assert set(summary["pretrain"]) == {"gmf", "mlp"} and summary["best_hr"] is not None
    for variant in ("gmf", "mlp", "neumf"):
        payload = torch.load(tmp_path / variant / "model.pth", weights_only=True)
        assert payload["meta"]["architecture"]["variant"] == variant
        assert (tmp_path / f"log.{variant}.jsonl").is_file()
    neumf = torch.load(tmp_path / "neumf" / "model.pth", weights_only=True)["meta"]
    assert neumf["architecture"] == {"variant": "neumf", "factors": 8, "layers": [16, 8]}
    assert neumf["args"]["pretrained_gmf"] == str(tmp_path / "gmf" / "model.pth")


def test_pretrained_flags_are_checked(prepared, tmp_path):
    assert "come together" in train_fails("--data", prepared, "--pretrained_gmf", tmp_path / "g.pth")
    assert "needs --checkpoint_dir" in train_fails("--data", prepared, "--pretrain")
    assert "--alpha must be in [0, 1]" in train_fails("--data", prepared, "--alpha", "1.5")
