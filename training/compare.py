"""python -m training.compare: which model for my data? Every family and two strong baselines on one protocol.

On one pairs-layout folder (`etl prepare`), each model is trained with its defaults (or read from
`--checkpoint NAME=PATH`) on the same train positives, then every evaluated user's held-out validation and
test positives are ranked against the whole catalogue minus what the user has (`data/heldout_pairs.py`):
HR@K, NDCG@K, Recall@K and coverage@K at every -k, on validation and on test, from one scoring pass per model
and split (`ranking.evaluate_at`).
- neumf: `python -m training` on the folder (its defaults, best epoch on its validation).
- mf: the same with `--model mf`, the dot product (its own defaults).
- multvae: the one loop on a lists folder built from the same train positives (`data/lists_from_pairs.py`):
  trained on every user's train list, it folds in each user's train positives to score.
- ease: closed form on the train matrix from one eigendecomposition, lambda chosen on the choice figure
  (below) on validation (`baselines.py`).
- toppop: train popularity.
A user's own split (metadata.protocol.split given, `etl prepare --test-input`: several test items per user,
no sampled negatives): each user's test items are ranked against the whole catalogue minus the user's train
items (and validation items), Recall@K is over all of a user's test items, and every trained family picks its
epoch on validation Recall@K at the first -k (passed to it as -k); elsewhere (leave-one-out series) the
families keep their own choice (NeuMF: sampled HR@10, Mult-VAE: NDCG@100).
Data without a validation mapping (BYO, or a given split without one) gets one carved from train as
`python -m training` carves it (`data/carve.py`, the same --seed: one positive per user, or on a given split a
seeded 10% of each user's train items): every model trains, and EASE picks its lambda, on what is left; said
on the first lines and in results.json.
The pick: the model with the best validation figure at the first -k (as typed; by default 10), Recall@K on a
given split and NDCG@K otherwise, is marked in the table, in results.json ("pick", and "picked" in each model's
entry) and on the last stderr line. Test is never used to choose.
--output gets results.csv (one row per model, split and K), results.json, compare.png and each trained model's
run folder, written to a temporary folder and renamed when complete. The last stdout line is one JSON object
keyed by model (validation figures as validation_<metric>@K beside the test figures).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from contract.atomic import atomic_dir, refuse_existing
from contract.console import entry_point, say
from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from . import checkpoint, saved
from . import train as one_loop
from .args import default_run_folder, per_family
from .baselines import LAMBDAS, check_lambdas, fit_ease
from .data.carve import carve_pairs, needs_carving
from .data.heldout_pairs import HeldOutPairs, load_heldout_pairs
from .labels import label
from .plots import plot_comparison
from .ranking import evaluate_at, popularity_scores
from .runtime import Runtime, shutdown, start_runtime
from .settings import Settings
from .tasks import compared
from .tasks.base import Task, path

BASELINES = ("ease", "toppop")
KS = (10, 20, 50, 100)
METRICS = ("hr", "ndcg", "recall", "coverage")
SCORE_BUDGET = 2 * 10**8   # users x items per split by default: all of ml-1m's users, about 7,400 of ml-20m's
BATCH_SCORES = 2**20       # users x items scored per forward pass


def models() -> tuple[str, ...]:
    """Every model compare knows: the registry's compared families, then the baselines."""
    return (*compared(), *BASELINES)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=path, required=True, help="DATA_DIR in the pairs layout (etl prepare)")
    p.add_argument("--feature_spec_file", default="feature_spec.yaml", help="relative to --data")
    p.add_argument("--models", nargs="+", choices=models(), default=list(models()),
                   help=f"(default: all {len(models())})")
    p.add_argument("-k", "--topk", type=int, nargs="+", default=list(KS),
                   help="the K of every figure; the first is the one the pick (and EASE's lambda, and on a given split "
                        f"every family's epoch) is chosen on (default: {' '.join(map(str, KS))})")
    p.add_argument("--output", type=path, help="results folder (default: runs/DATA-NAME/compare-TIMESTAMP)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--seed", type=int, default=1, help="training seeds and the user sample")
    p.add_argument("-e", "--epochs", type=int, help="epochs of every trained family " + per_family("epochs"))
    p.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME=PATH",
                   help="evaluate this checkpoint instead of training (" + ", ".join(f"{name}=PATH" for name in compared())
                        + "); one of a family that reads another layout from an earlier compare run on the same folder")
    p.add_argument("--max_users", type=int,
                   help=f"evaluate a seeded sample of this many test users (default: as many as keep users x items "
                        f"within {SCORE_BUDGET:,})")
    p.add_argument("--ease_lambdas", type=float, nargs="+", default=list(LAMBDAS),
                   help="EASE regularisations to try, all from one eigendecomposition; the best on validation is kept "
                        "(default: %(default)s)")
    p.add_argument("--ease_max_items", type=int,
                   help="EASE on at most this many (most popular) items (default: as many as 3/4 of the free memory "
                        "holds; said when that is fewer than the catalogue)")
    return p


def parse_args(argv=None) -> Settings:
    """The flags, checked and normalised, as the comparison's frozen settings."""
    p = parser()
    args = p.parse_args(None if argv is None else [str(a) for a in argv])
    for name in ("epochs", "max_users", "ease_max_items"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if min(args.topk) < 1:
        p.error("-k values must be at least 1")
    trained = compared()
    checkpoints = {}
    for entry in args.checkpoint:
        name, sep, where = entry.partition("=")
        if not sep or name not in trained or not where:
            p.error(f"--checkpoint {entry}: expected NAME=PATH with NAME one of {', '.join(trained)}")
        if name not in args.models:
            p.error(f"--checkpoint {entry}: {name} is not among --models")
        checkpoints[name] = Path(where)
    try:
        lambdas = check_lambdas(args.ease_lambdas)
    except UserError as exc:
        p.error(str(exc))
    return Settings(**{**vars(args), "topk": sorted(set(args.topk)), "pick_k": args.topk[0],
                       "models": list(dict.fromkeys(args.models)), "checkpoint": checkpoints, "ease_lambdas": lambdas})


def load_checkpoint(name: str, where: Path, spec: FeatureSpec) -> torch.nn.Module:
    """A --checkpoint of family `name` that fits the data's tables, as a model in eval mode."""
    loaded = saved.load(where, spec, tables="exact", family=compared()[name], what=f"--checkpoint {name}={where}",
                        any_layout=True)
    return loaded.build()[0].eval()


def choice(spec: FeatureSpec) -> str:
    """The validation figure that picks the model (and EASE's lambda): Recall on a user's own split, as the
    families choose their epochs there; NDCG on leave-one-out data, as EASE chose its lambda before."""
    return "recall" if spec.given_split else "ndcg"


def train_family(name: str, args, data: HeldOutPairs, spec: FeatureSpec, spec_file: Path,
                 folder: Path) -> tuple[torch.nn.Module, dict]:
    """Train `name` with its defaults through the one loop into `folder`; the chosen model and its summary. On a
    given split every family picks its epoch on validation Recall at the pick's K."""
    scratch = folder.parent / f".{name}-data"  # where a family that reads another layout gets it written
    try:
        flags = compared()[name].compare_flags(spec_file, spec, data, scratch)
        summary = one_loop.run([*flags, "--model", name, "--seed", args.seed, "--checkpoint_dir", folder,
                                "--log_path", folder / "log.jsonl", *(["-e", args.epochs] if args.epochs else []),
                                *(["-k", args.pick_k] if spec.given_split else [])])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_checkpoint(name, folder / checkpoint.BEST, spec), summary


def scorer(name: str, model: torch.nn.Module):
    """The family's all-items scoring of a batch of users, without gradients."""
    task = compared()[name]

    def score(users, fold_in):
        with torch.no_grad():
            return task.score_users(model, users, fold_in)

    return score


def figures_of(ranked: dict, prefix: str = "") -> dict:
    return {prefix + key: value for key, value in ranked.items() if "@" in key}


def evaluate_models(args, spec: FeatureSpec, spec_file: Path, data: HeldOutPairs, runtime: Runtime, out: Path,
                    output: Path) -> dict:
    candidates = Task.candidates(data.counts, data.first_index)
    batch = max(1, BATCH_SCORES // data.n_items)
    chosen_on = f"{choice(spec)}@{args.pick_k}"

    def rank(score, split="test"):
        return evaluate_at(score, data.splits[split], candidates, args.topk, batch, runtime)

    results, families = {}, compared()
    for name in args.models:
        say(f"{name}: " + ("reading " + str(args.checkpoint[name]) if name in args.checkpoint else
                          "training" if name in families else "fitting"))
        begin = time.perf_counter()
        details: dict = {}
        validation = None
        if name in args.checkpoint:
            model = load_checkpoint(name, args.checkpoint[name], spec)
            details["checkpoint"] = str(args.checkpoint[name])
            score = scorer(name, model)
        elif name in families:
            model, summary = train_family(name, args, data, spec, spec_file, out / name)
            details.update({"best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"),
                            "checkpoint": str(output / name / checkpoint.BEST)})
            score = scorer(name, model)
        elif name == "ease":
            searched: list[dict] = []  # each lambda's validation figures, in --ease_lambdas order

            def validate(s, searched=searched):
                searched.append(rank(s, "validation"))
                return searched[-1][chosen_on]

            ease = fit_ease(data.train, data.counts, data.first_index, args.ease_lambdas, args.ease_max_items,
                            validate, say, users=len(data.splits["validation"]))
            validation = searched[list(ease.validation).index(ease.lam)]
            details.update({"lambda": ease.lam, **ease.about, "lambda_chosen_on": f"validation {chosen_on}",
                            "lambdas": {f"{lam:g}": v for lam, v in ease.validation.items()}})
            score = ease.score_users
        else:
            score = popularity_scores(data.counts)
        trained = time.perf_counter() - begin
        if validation is None:
            validation = rank(score, "validation")
        figures = rank(score)
        results[name] = {**figures_of(figures), "users": figures["users"], **figures_of(validation, "validation_"),
                         "validation_users": validation["users"], "train_seconds": trained,
                         "validation_eval_seconds": validation["eval_seconds"], "eval_seconds": figures["eval_seconds"],
                         "seconds": time.perf_counter() - begin, **details}
        k, r = args.pick_k, results[name]
        say(f"{name}: HR@{k} {r[f'hr@{k}']:.4f}  NDCG@{k} {r[f'ndcg@{k}']:.4f}  Recall@{k} {r[f'recall@{k}']:.4f}  "
            f"coverage@{k} {r[f'coverage@{k}']:.3f}; validation {label(chosen_on, k)} {r['validation_' + chosen_on]:.4f}  "
            f"({trained:.1f}s to train, {r['seconds'] - trained:.1f}s to evaluate)")
    return results


def pick(results: dict, chosen_on: str) -> dict:
    """The model with the best validation figure `chosen_on` (the first in --models order among equals), marked
    `picked` in every entry of `results`; never test."""
    best = max(results, key=lambda name: (results[name][f"validation_{chosen_on}"], -list(results).index(name)))
    for name, r in results.items():
        r["picked"] = name == best
    return {"model": best, "on": f"validation {chosen_on}", "validation": results[best][f"validation_{chosen_on}"],
            "test": results[best][chosen_on],
            "rule": f"the best validation {label(chosen_on, None)} of the models compared (the first in --models "
                    "order among equals); test is never used to choose"}


def table(results: dict, ks, chosen: dict, pick_k: int) -> str:
    metric = chosen["on"].split()[-1].partition("@")[0]
    shown = f"val.{label(metric, 0).partition('@')[0]}"
    lines = [f"{'model':<8} {'K':>4} {'HR':>7} {'NDCG':>7} {'Recall':>7} {'coverage':>8} {'seconds':>8} {shown:>10}"]
    for name, r in results.items():
        for k in ks:
            mark = f"  <- pick (best validation {label(metric, k)})" if r["picked"] and k == pick_k else ""
            lines.append(f"{name:<8} {k:>4} {r[f'hr@{k}']:>7.4f} {r[f'ndcg@{k}']:>7.4f} {r[f'recall@{k}']:>7.4f} "
                         f"{r[f'coverage@{k}']:>8.3f} {r['seconds']:>8.1f} {r[f'validation_{metric}@{k}']:>10.4f}{mark}")
    return "\n".join(lines)


def write_results(folder: Path, results: dict, about: dict, ks) -> None:
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "split", "k", *METRICS, "users", "train_seconds", "eval_seconds", "seconds", "picked"])
        for name, r in results.items():
            for split, prefix in (("validation", "validation_"), ("test", "")):
                for k in ks:
                    writer.writerow([name, split, k, *(r[f"{prefix}{m}@{k}"] for m in METRICS), r[f"{prefix}users"],
                                     f"{r['train_seconds']:.2f}", f"{r[f'{prefix}eval_seconds']:.3f}",
                                     f"{r['seconds']:.3f}", r["picked"]])
    (folder / "results.json").write_text(json.dumps({**about, "models": results}, indent=2))
    title = (f"{Path(about['data']).resolve().name}: {about['users']['test']:,} test users, {about['items']:,} items, "
             f"full ranking; pick {about['pick']['model']} ({about['pick']['on']})")
    plot_comparison(results, ks, folder / "compare.png", title)


def compare(args) -> dict:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("python -m training.compare runs as one process, not under torchrun")
    spec_file = args.data / args.feature_spec_file
    spec = FeatureSpec.from_yaml(spec_file, ("train",))
    output = args.output or default_run_folder(args.data, "compare")
    refuse_existing(output, args.overwrite)  # before any training
    for name, where in args.checkpoint.items():
        load_checkpoint(name, where, spec)
    runtime, carved = start_runtime(), None
    try:
        if needs_carving(spec) and not spec.is_lists:
            carved = carve_pairs(spec, args.seed)
            spec, spec_file = carved.spec, carved.folder / "feature_spec.yaml"
            spec.to_yaml(spec_file)
            say(f"note: the FeatureSpec has no validation mapping: {carved.what}")
        items = spec.item_cardinality - spec.first_index
        max_users = args.max_users or max(1, SCORE_BUDGET // max(items, 1))
        data = load_heldout_pairs(spec, runtime, max_users, args.seed)
        test, valid = len(data.splits["test"]), len(data.splits["validation"])
        held = ("each user's test items (a given split: several per user) ranked against all "
                f"{items:,} items minus the user's train items (and validation items), Recall@K over all of them"
                if spec.given_split else
                f"each user's held-out positive ranked against all {items:,} items minus the user's own")
        say(f"protocol: {held}; " + (f"a seeded sample of {test:,} of {data.test_users:,} test users (--max_users, "
                                      f"--seed)" if data.sampled else f"all {test:,} test users")
            + f", {valid:,} validation users; the pick on validation {label(choice(spec), args.pick_k)}; on "
            + runtime.describe())
        with atomic_dir(output, args.overwrite) as tmp:
            results = evaluate_models(args, spec, spec_file, data, runtime, tmp, output)
            chosen = pick(results, f"{choice(spec)}@{args.pick_k}")
            about = {"data": str(args.data), "k": args.topk, "items": items, "device": runtime.describe(),
                     "split": "given" if spec.given_split else "leave-one-out",
                     "users": {"test": test, "validation": valid, "with_test_positive": data.test_users,
                               "sampled": data.sampled, "seed": args.seed,
                               **({"test_ids": data.splits["test"].users.tolist()} if data.sampled else {})},
                     **({"validation": carved.what} if carved else {}),
                     "protocol": ("full ranking of each user's test items (validation: validation items) against "
                                  "every item but the user's own (train, known; at test also validation); Recall@K "
                                  "over all of a user's items; ties count against the model" if spec.given_split else
                                  "full ranking of each held-out positive against every item but the user's own "
                                  "(train, known; at test also validation); ties count against the model"),
                     "pick": chosen}
            write_results(tmp, results, about, args.topk)
        say(f"wrote {output}/results.csv, results.json, compare.png")
    finally:
        if carved is not None:
            carved.close()
        shutdown(runtime)
    print(table(results, args.topk, chosen, args.pick_k), flush=True)
    on = label(chosen["on"].split()[-1], args.pick_k)
    say(f"pick: {chosen['model']} (validation {on} {chosen['validation']:.4f}; test {chosen['test']:.4f})")
    return results


def main(argv=None) -> int:
    def body() -> dict:
        results = compare(parse_args(argv))
        return {name: {k: v for k, v in r.items() if not isinstance(v, (dict, str))} for name, r in results.items()}

    return entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
