"""NeuMF from a pretrained GMF and MLP (NCF paper, 3.4.1), and `--pretrain` as one command."""
import pytest
import torch

from training.models.neumf import from_pretrained
from training.tasks import build_model

from ..helpers import run_module, train, train_fails

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
    assert summary["alpha"] in [round(0.1 * i, 1) for i in range(11)]
    assert summary["time_to_best"] > sum(summary["pretrain"][part]["seconds"] for part in ("gmf", "mlp")) > 0
    # the parts train 2 x -e epochs with Adam, NeuMF from both is fine-tuned -e / 4 epochs (at least 1) with SGD
    for variant, epochs, optimizer in (("gmf", 4, "adam"), ("mlp", 4, "adam"), ("neumf", 1, "sgd")):
        payload = torch.load(tmp_path / variant / "last.pth", weights_only=True)
        assert payload["meta"]["architecture"]["variant"] == variant
        assert (payload["meta"]["epoch"] + 1, payload["meta"]["args"]["optimizer"]) == (epochs, optimizer), variant
        assert (tmp_path / f"log.{variant}.jsonl").is_file()
    groups = {v: torch.load(tmp_path / v / "last.pth", weights_only=True)["optimizer"]["param_groups"][0]
              for v in ("gmf", "neumf")}
    assert "betas" in groups["gmf"] and "betas" not in groups["neumf"] and "momentum" in groups["neumf"]
    neumf = torch.load(tmp_path / "neumf" / "model.pth", weights_only=True)["meta"]
    assert neumf["architecture"] == {"variant": "neumf", "factors": 8, "layers": [16, 8]}
    assert neumf["args"]["pretrained_gmf"] == str(tmp_path / "gmf" / "model.pth")
    assert neumf["args"]["alpha"] == summary["alpha"]


def test_pretrained_flags_are_checked(prepared, tmp_path):
    assert "come together" in train_fails("--data", prepared, "--pretrained_gmf", tmp_path / "g.pth")
    assert "needs --checkpoint_dir" in train_fails("--data", prepared, "--pretrain")
    assert "--alpha must be in [0, 1]" in train_fails("--data", prepared, "--alpha", "1.5")
    assert "picks its optimizers" in train_fails("--data", prepared, "--pretrain", "--checkpoint_dir", tmp_path,
                                                 "--optimizer", "sgd")


def _untrained(variant: str, arch: dict, sizes: dict, path):
    from training import checkpoint

    torch.manual_seed(len(variant) + ord(variant[0]))
    state = build_model(arch, sizes).state_dict()
    checkpoint.save(path, {"model": state, "meta": {"epoch": 0, "cardinalities": sizes, "architecture": arch}})
    return state


def test_alpha_is_chosen_on_validation_when_not_given(prepared, tmp_path):
    """A trained GMF and an untrained MLP: the blend that validation likes best leans to the GMF, and is the one used."""
    import re

    from contract.feature_spec import FeatureSpec

    train("--data", prepared, "--model", "gmf", "-f", "8", "-e", "2", "-b", "4096", "--checkpoint_dir", tmp_path / "g")
    sizes = FeatureSpec.from_yaml(prepared).table_sizes
    mlp = _untrained("mlp", {"variant": "mlp", "factors": 8, "layers": [16, 8]}, sizes, tmp_path / "mlp.pth")
    result = run_module("training", "--data", prepared, "--pretrained_gmf", tmp_path / "g" / "model.pth",
                        "--pretrained_mlp", tmp_path / "mlp.pth", "-e", "1", "--steps_per_epoch", "1",
                        "--optimizer", "sgd", "-l", "1e-12", "--checkpoint_dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if "chosen on validation" in line)
    figures = {float(a): float(f) for a, f in re.findall(r"(\d\.\d+|[01]\.?\d*):(\d\.\d{4})", line)}
    chosen = float(re.search(r"--alpha (\S+) chosen", line).group(1))
    assert len(figures) == 11 and figures[chosen] == max(figures.values())
    assert figures[1.0] > figures[0.0] and chosen > 0  # the untrained MLP alone ranks worst
    started = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert started["meta"]["args"]["alpha"] == chosen
    gmf = torch.load(tmp_path / "g" / "model.pth", weights_only=True)["model"]
    expected = from_pretrained(gmf, mlp, chosen)
    torch.testing.assert_close(started["model"]["final.weight"], expected["final.weight"], atol=1e-8, rtol=0)


@pytest.mark.parametrize("gmf_part", ["gmf", "mf"])
def test_pretrained_parts_are_the_starting_weights(prepared, tmp_path, gmf_part):
    """--pretrained_gmf/--pretrained_mlp: the NeuMF that starts training is the alpha blend of the two checkpoints
    (the GMF part a GMF, or an MF: a GMF with its head fixed at ones)."""
    from contract.feature_spec import FeatureSpec
    from training import checkpoint

    sizes = FeatureSpec.from_yaml(prepared).table_sizes
    parts = {}
    for variant, arch in (("gmf", {"variant": gmf_part, "factors": 4, "layers": [2]}),
                          ("mlp", {"variant": "mlp", "factors": 8, "layers": [8, 4]})):
        torch.manual_seed(len(variant) + ord(variant[0]))
        parts[variant] = build_model(arch, sizes).state_dict()
        checkpoint.save(tmp_path / f"{variant}.pth", {"model": parts[variant], "meta": {
            "epoch": 0, "cardinalities": sizes, "architecture": arch}})
    train("--data", prepared, "--pretrained_gmf", tmp_path / "gmf.pth", "--pretrained_mlp", tmp_path / "mlp.pth",
          "--alpha", "0.3", "-e", "1", "--steps_per_epoch", "1", "-l", "1e-12", "--checkpoint_dir", tmp_path / "run")
    started = torch.load(tmp_path / "run" / "last.pth", weights_only=True)["model"]
    expected = from_pretrained(parts["gmf"], parts["mlp"], 0.3)
    neumf = build_model({"variant": "neumf", "factors": 4, "layers": [8, 4]}, sizes)
    neumf.load_state_dict(expected)
    for name, tensor in neumf.state_dict().items():
        torch.testing.assert_close(started[name], tensor, atol=1e-8, rtol=0, msg=name)
    assert "expected a gmf (or mf) and an mlp" in train_fails(
        "--data", prepared, "--pretrained_gmf", tmp_path / "mlp.pth", "--pretrained_mlp", tmp_path / "mlp.pth",
        "-e", "1", "--checkpoint_dir", tmp_path / "refused")
