"""Checkpoints: refused when they belong to another dataset or architecture, or are not checkpoints;
DeepLearningExamples' plain state_dicts load where the shapes fit."""
import torch

from ..helpers import train, train_fails, write_byo_dataset

SMALL = ["-b", "4096", "-f", "8", "--layers", "16", "8", "-l", "0.01", "-k", "2"]


def test_checkpoint_from_another_dataset_or_corrupt(tmp_path, prepared):
    folder = write_byo_dataset(tmp_path / "byo")
    train("--data", folder, "-e", "1", *SMALL, "--checkpoint_dir", tmp_path / "ckpt")
    message = train_fails("--mode", "test", "--data", prepared, "--load_checkpoint_path", tmp_path / "ckpt" / "model.pth")
    assert "belongs to another dataset" in message
    message = train_fails("--data", folder, "-e", "2", "-b", "4096", "-f", "8", "--layers", "32", "16", "-k", "2",
                          "--checkpoint_dir", tmp_path / "ckpt", "--resume")
    assert "architecture" in message
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage" * 100)
    assert "corrupt" in train_fails("--mode", "test", "--data", folder, "-k", "2", "--load_checkpoint_path", corrupt)


def test_a_dle_state_dict_loads_where_the_shapes_fit(tmp_path):
    folder = write_byo_dataset(tmp_path / "byo")
    ours = train("--data", folder, "-e", "2", *SMALL, "-b", "300", "--checkpoint_dir", tmp_path / "ckpt")
    state = torch.load(tmp_path / "ckpt" / "model.pth", weights_only=True)["model"]
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dle.pth")  # as saved from DDP
    tested = train("--mode", "test", "--data", folder, "-k", "2", "--load_checkpoint_path", tmp_path / "dle.pth")
    assert tested["best_hr"] == ours["best_hr"]
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    assert "not of a model of any family" in train_fails("--mode", "test", "--data", folder, "-k", "2",
                                                 "--load_checkpoint_path", tmp_path / "other.pth")


def test_resume_with_an_optimizer_state_of_another_layout_fails_in_one_line(tmp_path):
    """A last.pth whose Adam state has other parameters (as before one table per side) is refused."""
    folder = write_byo_dataset(tmp_path / "byo")
    train("--data", folder, "-e", "1", *SMALL, "--checkpoint_dir", tmp_path / "ckpt")
    last = tmp_path / "ckpt" / "last.pth"
    payload = torch.load(last, weights_only=False)
    payload["optimizer"] = torch.optim.Adam([torch.zeros(2) for _ in range(9)]).state_dict()
    torch.save(payload, last)
    message = train_fails("--data", folder, "-e", "2", *SMALL, "--checkpoint_dir", tmp_path / "ckpt", "--resume")
    assert "--init_from" in message and "optimizer state" in message
