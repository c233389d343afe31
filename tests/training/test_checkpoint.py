"""Checkpoints: refused when they belong to another dataset or architecture, or are not checkpoints."""
from ..helpers import train, train_fails, write_byo_dataset

SMALL = ["-b", "4096", "-f", "8", "--layers", "16", "8", "-l", "0.01"]


def test_checkpoint_from_another_dataset_or_corrupt(tmp_path, prepared):
    folder = write_byo_dataset(tmp_path / "byo")
    train("--data", folder, "-e", "1", *SMALL, "--checkpoint_dir", tmp_path / "ckpt")
    message = train_fails("--mode", "test", "--data", prepared, "--load_checkpoint_path", tmp_path / "ckpt" / "model.pth")
    assert "belongs to another dataset" in message
    message = train_fails("--data", folder, "-e", "2", "-b", "4096", "-f", "8", "--layers", "32", "16", "--checkpoint_dir",
                    tmp_path / "ckpt", "--resume")
    assert "architecture" in message
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage" * 100)
    assert "corrupt" in train_fails("--mode", "test", "--data", folder, "--load_checkpoint_path", corrupt)
