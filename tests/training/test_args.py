"""One parser for every family: DLE NCF and VAE-CF spellings, family defaults resolved once into frozen
settings, refusals in one line."""
import pytest

from contract.errors import UserError
from training.args import for_family, parse_args, parser, per_family
from training.settings import FrozenSettings


def test_dle_ncf_flags_parse():
    args = parse_args(["--data", "d", "-e", "3", "-b", "1024", "-f", "8", "--layers", "16", "8", "-n", "2",
                       "-l", "0.01", "-k", "5", "--amp", "--grads_accumulated", "2", "--checkpoint_dir", "c"])
    assert (args.epochs, args.batch_size, args.factors, args.layers, args.topk) == (3, 1024, 8, [16, 8], 5)
    assert args.amp and str(args.checkpoint_dir) == "c"


def test_dle_vae_cf_spellings_are_aliases_of_the_shared_flags():
    args = parse_args(["--data", "d", "--lr", "0.004", "--batch_size_train", "24576", "--batch_size_validation", "99",
                       "--top_results", "50", "--lam", "0.01", "--total_anneal_steps", "15000", "--anneal_cap", "0.1"])
    assert (args.learning_rate, args.batch_size, args.valid_batch_size, args.topk, args.l2) == (0.004, 24576, 99, 50, 0.01)
    _, settings = for_family(args, "multvae")
    assert (settings.total_anneal_steps, settings.anneal_cap, settings.epochs, settings.layers) == (15000, 0.1, 60, (600, 200))


@pytest.mark.parametrize("variant, expected", [
    ("neumf", {"epochs": 10, "learning_rate": 0.005, "topk": 10, "dropout": 0.0, "layers": (256, 128, 64),
               "batch_size": None, "factors": 64, "negative_samples": 8, "l2": 1e-4, "eval": "auto"}),
    # mf: the family's defaults, with its own epochs, learning rate and L2 over them
    ("mf", {"epochs": 30, "learning_rate": 0.001, "topk": 10, "dropout": 0.0, "layers": (256, 128, 64),
            "batch_size": None, "factors": 64, "negative_samples": 8, "l2": 1e-3, "eval": "auto"}),
    ("multvae", {"epochs": 60, "learning_rate": 0.001, "topk": 100, "dropout": 0.5, "layers": (600, 200),
                 "batch_size": None, "activation": "tanh", "total_anneal_steps": 2000, "eval": "full"}),
])
def test_each_family_fills_in_its_defaults_and_help_shows_them(variant, expected):
    args = parse_args(["--data", "d", "--no_eval"])
    _, settings = for_family(args, variant)
    assert {key: getattr(settings, key) for key in expected} == expected and settings.model == variant
    text = parser().format_help()
    assert "(default: 10 for neumf (30 for mf), 60 for multvae)" in text
    assert per_family("learning_rate") == "(default: 0.005 for neumf (0.001 for mf), 0.001 for multvae)"


def test_a_flag_given_beats_the_variants_default():
    args = parse_args(["--data", "d", "--no_eval", "-e", "4", "--l2", "0"])
    _, settings = for_family(args, "mf")
    assert (settings.epochs, settings.l2, settings.learning_rate) == (4, 0.0, 0.001)


def test_settings_are_resolved_once_and_frozen():
    args = parse_args(["--data", "d", "--no_eval", "--layers", "16", "8"])
    task, settings = for_family(args, "neumf")
    assert task.family == "neumf" and args.epochs is None  # the flags as given are left as they were
    with pytest.raises(FrozenSettings):
        settings.epochs = 3
    with pytest.raises(AttributeError):
        settings.layers.append(4)
    changed = settings.replace(batch_size=2048)
    assert (changed.batch_size, settings.batch_size, changed.epochs) == (2048, None, 10)
    assert changed.as_dict()["layers"] == [16, 8] and changed.as_dict()["data"] == "d"


@pytest.mark.parametrize("argv, variant, message", [
    (["--anneal_cap", "0.1"], "neumf", "--anneal_cap is a flag of multvae; this run is neumf"),
    (["-f", "8"], "multvae", "--factors is a flag of neumf, gmf, mlp, mf; this run is multvae"),
    (["--pretrain"], "multvae", "--pretrain is a flag of neumf, gmf, mlp, mf"),
    (["--eval", "sampled"], "multvae", "--eval sampled: multvae evaluates with full"),
    (["--layers", "5", "3"], "neumf", "--layers: at least two sizes"),
    (["--alpha", "1.5"], "neumf", "--alpha must be in [0, 1]"),
])
def test_family_flags_are_checked_in_one_line(argv, variant, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        for_family(parse_args(["--data", "d", *argv]), variant)


def test_a_run_without_an_output_gets_a_new_run_folder():
    _, args = for_family(parse_args(["--data", "data/ml-1m"]), "neumf")
    assert args.checkpoint_dir.parent.as_posix() == "runs/ml-1m" and args.checkpoint_dir.name.startswith("neumf-")
    assert args.log_path == args.checkpoint_dir / "log.jsonl"
    _, kept = for_family(parse_args(["--data", "d", "--log_path", "x.jsonl"]), "neumf")
    assert kept.checkpoint_dir is None  # the user chose where the run goes


@pytest.mark.parametrize("argv", [["--checkpoint_dir", ""], ["--log_path", " "], ["-e", "0"], ["--dropout", "1"],
                                  ["--resume"], ["--mode", "test"], ["-l", "-1"], ["--layers", "0", "x"],
                                  ["--resume", "--overwrite", "--checkpoint_dir", "c"], ["--model", "ease"]])
def test_refused(argv, capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(["--data", "d", *argv])
    assert done.value.code == 2 and "error:" in capsys.readouterr().err


def test_load_checkpoint_path_in_train_mode_is_the_starting_point():
    assert str(parse_args(["--data", "d", "--load_checkpoint_path", "m.pth"]).init_from) == "m.pth"
