"""The optimizers behind --optimizer: Adam (DLE) and the plain SGD that fine-tunes a pretrained NeuMF."""
import torch

from training import optim


def test_sgd_is_plain_gradient_descent():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = optim.build("sgd", [weight], 0.1)
    (weight * torch.tensor([3.0, 4.0])).sum().backward()
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([1.0 - 0.3, -2.0 - 0.4]))


def test_adam_moves_each_weight_by_about_the_learning_rate_on_its_first_step():
    """Why a pretrained NeuMF is not fine-tuned with Adam: its first step ignores the gradient's size."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = optim.build("adam", [weight], 0.01)
    assert isinstance(optimizer, torch.optim.Adam)
    (weight * torch.tensor([1e-4, 10.0])).sum().backward()
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([0.99, -2.01]), atol=1e-5, rtol=0)


def test_resume_keeps_the_optimizer_it_was_trained_with(prepared, tmp_path):
    from ..helpers import train, train_fails

    train("--data", prepared, "-e", "1", "--steps_per_epoch", "2", "-f", "8", "--layers", "16", "8",
          "--checkpoint_dir", tmp_path)
    message = train_fails("--data", prepared, "-e", "2", "--steps_per_epoch", "2", "-f", "8", "--layers", "16", "8",
                          "--checkpoint_dir", tmp_path, "--resume", "--optimizer", "sgd")
    assert "was trained with --optimizer adam" in message and "--init_from" in message
