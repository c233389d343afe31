"""Accuracy of the defaults and the alternatives: synthetic data at MovieLens sizes, and real data given with
`--data NAME=PATH` (never part of the repository: the path is the user's).

Synthetic, for each size: TopPop, the defaults (batch sized to the data), the old fixed -b 65536, a
smaller and a larger batch, two learning rates, L2, --pretrain and --model mf. The figures are test
HR@10/NDCG@10 of the epoch chosen on validation (sampled, 100 negatives), plus full-ranking
HR@10 of that model where measured.

Real data: PATH is a prepared folder (feature_spec.yaml: its layout says which family) or a raw ratings
file, prepared here in both layouts (`etl prepare`, and `--split users` for Mult-VAE). Each family's
defaults and the alternatives in REAL_CONFIGS run on it; the figures are test figures of the epoch chosen on
validation (carved from train where the data has none), beside TopPop and the published figures in
PUBLISHED. Accuracy does not depend on timing, so this may run beside other work; its seconds do.
"""
from __future__ import annotations

import json

from .common import DATA, python, run_measured, save, synthetic

# name -> (rows, users, items), as MovieLens; full ranking is skipped at ml-20m size (hours on a CPU)
SIZES = {"ml-100k": (100_000, 943, 1_682), "ml-1m": (1_000_000, 6_040, 3_700), "ml-20m": (20_000_000, 138_000, 27_000)}
QUICK_SIZES = ("ml-100k", "ml-1m")
# name -> extra flags; "defaults" is what a user gets with none
CONFIGS = {
    "defaults": [],
    "-b 65536 (the old fixed default)": ["-b", "65536"],
    "batch / 4": ["--batch_scale", "0.25"],
    "batch x 4": ["--batch_scale", "4"],
    "-l 0.002": ["-l", "0.002"],
    "-l 0.01": ["-l", "0.01"],
    "--l2 1e-4": ["--l2", "1e-4"],
    "--l2 1e-5": ["--l2", "1e-5"],
    "--pretrain": ["--pretrain"],
    "--model mf": ["--model", "mf"],
}
QUICK_CONFIGS = ("defaults", "-b 65536 (the old fixed default)", "--l2 1e-4", "--pretrain", "--model mf")
# An epoch at ml-20m size takes minutes on a CPU: only the defaults and the old default run there.
LARGE_CONFIGS = ("defaults", "-b 65536 (the old fixed default)")


def prepared(name: str):
    rows, users, items = SIZES[name]
    target = DATA / f"accuracy-{name}"
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", synthetic(rows, users, items), "--output", target,
                            "--overwrite", "--quiet"))
    return target


def default_batch(data) -> int:
    from contract.feature_spec import FeatureSpec
    from training.tasks.neumf import NeuMFTask
    from training.tasks.pairs import batch_size_for

    return batch_size_for(len(FeatureSpec.from_yaml(data).read("train", ["item_id"])), NeuMFTask.NEGATIVES)


def train(data, flags: list[str], workdir, full_ranking: bool) -> dict:
    if "--batch_scale" in flags:  # relative to the default of this size
        scale = float(flags[flags.index("--batch_scale") + 1])
        flags = ["-b", str(int(default_batch(data) * scale))]
    protocol = ["--eval", "both"] if full_ranking else []
    argv = python("-m", "training", "--data", data, "--checkpoint_dir", workdir, "--overwrite", *protocol, *flags)
    result = run_measured(argv, timeout=6 * 3600)
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"flags": " ".join(flags) or "(none)", "seconds": result["seconds"], **{
        k: summary.get(k) for k in ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "toppop_hr", "toppop_ndcg",
                                    "full_hr", "full_ndcg", "toppop_full_hr")}}


# Real data: family -> setting -> extra flags ("defaults" first); quick runs the defaults only.
REAL_CONFIGS = {
    "neumf": {"defaults": [], "--pretrain": ["--pretrain"], "--model mf": ["--model", "mf"]},
    "multvae": {"defaults": []},
}
# Published (and reference) test figures on the real sets that `../shared/realdata/` builds, by the NAME given to --data.
PUBLISHED = {
    "ncf-ml-1m": [("published: TopPop (Ferrari Dacrema et al. 2021)", {"hr": 0.4533, "ndcg": 0.2542}),
                  ("published: NeuMF without pretraining (He et al. 2017)", {"hr": 0.705, "ndcg": 0.426}),
                  ("published: NeuMF reproduced (Ferrari Dacrema et al. 2021)", {"hr": 0.7093, "ndcg": 0.4349}),
                  ("published: EASE^R (Ferrari Dacrema et al. 2021)", {"hr": 0.7192, "ndcg": 0.4494}),
                  ("published: iALS (Rendle et al. 2022)", {"hr": 0.722, "ndcg": 0.445}),
                  ("published: NeuMF with pretraining (He et al. 2017)", {"hr": 0.730, "ndcg": 0.447})],
    "ml-1m-pairs": [("reference: plain PyTorch Mult-VAE, 600 + 600 held-out users (../shared/realdata/README.md)",
                     {"ndcg": 0.42}),
                    ("reference: popularity, same protocol (../shared/realdata/README.md)", {"ndcg": 0.23})],
}
REAL_KEYS = ("best_hr", "best_ndcg", "best_recall@20", "best_recall@50", "best_valid_hr", "best_valid_ndcg",
             "best_epoch", "time_to_best", "toppop_hr", "toppop_ndcg", "toppop_recall@20", "toppop_recall@50",
             "validation", "k", "model", "epochs")


def real_layouts(name: str, path) -> dict:
    """layout -> prepared folder: the folder itself, or a raw file prepared in both layouts."""
    from pathlib import Path

    from contract.feature_spec import FeatureSpec

    path = Path(path)
    if (path / "feature_spec.yaml").exists():
        return {FeatureSpec.from_yaml(path).layout: path}
    folders = {"pairs": DATA / f"real-{name}-pairs", "lists": DATA / f"real-{name}-lists"}
    for layout, target in folders.items():
        if not (target / "feature_spec.yaml").exists():
            split = ["--split", "users"] if layout == "lists" else []
            run_measured(python("-m", "etl", "prepare", "--input", path, "--output", target, "--overwrite", "--quiet",
                                *split), timeout=3600)
    return folders


def train_real(data, flags: list[str], workdir) -> dict:
    argv = python("-m", "training", "--data", data, "--checkpoint_dir", workdir, "--overwrite", *flags)
    result = run_measured(argv, timeout=6 * 3600)
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"flags": " ".join(flags) or "(none)", "seconds": result["seconds"],
            **{k: summary.get(k) for k in REAL_KEYS if k in summary}}


def run_real(data: dict, quick: bool = False) -> None:
    """data: NAME -> PATH. Writes bench/results/accuracy-real.json."""
    from training.tasks import default_for_layout

    defaults = default_for_layout()

    results = {}
    for name, path in data.items():
        results[name] = {}
        for layout, folder in real_layouts(name, path).items():
            family = defaults[layout]
            configs = REAL_CONFIGS[family]
            names = ("defaults",) if quick else tuple(configs)
            results[name][family] = {setting: train_real(folder, configs[setting],
                                                         DATA / f"accuracy-real/{name}/{family}/{i}")
                                     for i, setting in enumerate(names)}
            save("accuracy-real", {"quick": quick, "data": results})


def run(quick: bool = False, sizes=None) -> None:
    results = {}
    for size in sizes or (QUICK_SIZES if quick else SIZES):
        data = prepared(size)
        names = QUICK_CONFIGS if quick else LARGE_CONFIGS if size == "ml-20m" else tuple(CONFIGS)
        results[size] = {"default_batch": default_batch(data), "runs": {
            name: train(data, CONFIGS[name], DATA / f"accuracy-runs/{size}/{i}", size != "ml-20m")
            for i, name in enumerate(names)}}
        save("accuracy", {"quick": quick, "sizes": results})
