"""Flags: DLE names, and refusals that would otherwise surprise (an empty path is the current folder)."""
import pytest

from training.args import parse_args


def test_dle_flags_parse():
    args = parse_args(["--data", "d", "-e", "3", "-b", "1024", "-f", "8", "--layers", "16", "8", "-n", "2",
                       "-l", "0.01", "-k", "5", "--amp", "--grads_accumulated", "2", "--checkpoint_dir", "c"])
    assert (args.epochs, args.batch_size, args.factors, args.layers, args.topk) == (3, 1024, 8, [16, 8], 5)
    assert args.amp and str(args.checkpoint_dir) == "c"


@pytest.mark.parametrize("argv", [["--checkpoint_dir", ""], ["--log_path", " "], ["-e", "0"], ["--dropout", "1"],
                                  ["--resume"], ["--mode", "test"], ["-l", "-1"], ["--layers", "5", "3"],
                                  ["--layers", "0"], ["--resume", "--overwrite", "--checkpoint_dir", "c"]])
def test_refused(argv, capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(["--data", "d", *argv])
    assert done.value.code == 2 and "error:" in capsys.readouterr().err


def test_load_checkpoint_path_in_train_mode_is_the_starting_point():
    assert str(parse_args(["--data", "d", "--load_checkpoint_path", "m.pth"]).init_from) == "m.pth"
