"""Training samples/s end to end (`python -m training --no_eval`: files, Merlin loader, negatives, step)
beside a bare in-memory PyTorch loop of the same model size and batch (`bench/bare_loop.py`), fp32 and
--amp, for the small model (the default before issue 18) on synthetic ml-1m and DLE's architecture at ml-20m table sizes; plus
time-to-HR of the default settings.

Three figures per row, measured back to back in one run: ours end to end; the bare loop with our
model (`--project-model`: our step on in-memory ids, so 1 - end-to-end / that is what the data path
costs as training sees it); the bare loop with the plain DLE-style model (the reference).
"""
from __future__ import annotations

import json
import os

from contract.feature_spec import FeatureSpec

from .common import DATA, median, python, run_measured, save, synthetic

# The throughput history (1.5-1.7x over the bare loop) is measured on the ml-1m default of before issue 18, with
# 4 negatives per positive and no L2, as the bare loop trains it.
DEFAULT_ARCH = {"factors": 32, "layers": [128, 64, 32]}
DLE_ARCH = {"factors": 64, "layers": [256, 256, 128, 64]}
# name -> (rows, users, items): MovieLens-1M-like, and MovieLens-20M table sizes with fewer rows
# (throughput depends on table sizes and batch shape, not on how many rows an epoch has).
SIZES = {"ml-1m": (1_000_000, 6_040, 3_700), "ml-20m": (4_000_000, 138_000, 27_000)}
# row -> (data, architecture flags, batch): the small model with the batch training picked for ml-1m
# (65,536 rounded down to whole positives x 5), and DLE's model at its ml-1m/ml-20m test batch.
CONFIGS = {"small model (the default before issue 18), synthetic ml-1m": ("ml-1m", DEFAULT_ARCH, 65535),
           "DLE architecture, ml-20m tables": ("ml-20m", DLE_ARCH, 65536)}


def prepared(name: str):
    rows, users, items = SIZES[name]
    target = DATA / f"prepared-{name}"
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", synthetic(rows, users, items), "--output", target,
                            "--workflow-dir", DATA / f"workflow-{name}", "--overwrite", "--quiet"))
    return target


def flags(arch: dict) -> list[str]:
    return ["-f", str(arch["factors"]), "--layers", *map(str, arch["layers"])]


def summary_of(result: dict) -> dict:
    return json.loads(result["stdout"].strip().splitlines()[-1])


def end_to_end(data, arch, batch: int, epochs: int, steps: int | None, amp: list) -> float:
    """Samples/s over whole epochs, each starting its loader (what a user's run pays)."""
    cap = ["--steps_per_epoch", str(steps)] if steps else []
    result = run_measured(python("-m", "training", "--data", data, "-e", epochs, *cap, "-b", batch, "--no_eval",
                                 *flags(arch), "-n", "4", "--l2", "0", *amp))
    return summary_of(result)["train_throughput"]


def bare(data, arch, batch: int, steps: int, amp: list, project_model: bool) -> float:
    sizes = FeatureSpec.from_yaml(data).table_sizes
    model = ["--project-model"] if project_model else []
    result = run_measured(python("-m", "bench.bare_loop", "--users", sizes["users"], "--items", sizes["items"],
                                 "-b", batch, "--steps", steps, *flags(arch), *amp, *model))
    return summary_of(result)["train_throughput"]


def throughput_rows(quick: bool) -> list[dict]:
    repeats = 1 if quick else 3
    rows = []
    for label, (name, arch, batch) in CONFIGS.items():
        data = prepared(name)
        # ml-1m: whole epochs (75 steps); ml-20m tables: 2 epochs capped at 40 steps (an epoch is ~300 steps)
        epochs, cap = (1, 12) if quick else ((2, None) if name == "ml-1m" else (2, 40))
        bare_steps = 8 if quick else 30
        for amp in ([], ["--amp"]):
            runs = {"ours": [], "ours_in_memory": [], "bare": []}
            for _ in range(repeats):  # interleaved, so drift in the machine's load hits all three alike
                runs["ours"].append(end_to_end(data, arch, batch, epochs, cap, amp))
                runs["ours_in_memory"].append(bare(data, arch, batch, bare_steps, amp, project_model=True))
                runs["bare"].append(bare(data, arch, batch, bare_steps, amp, project_model=False))
            row = {"config": label, "precision": "bf16 autocast" if amp else "fp32", "batch": batch,
                   **{k: median(v) for k, v in runs.items()}, "runs": runs}
            row["ratio_vs_bare"] = row["ours"] / row["bare"]
            row["data_path_cost"] = 1 - row["ours"] / row["ours_in_memory"]
            rows.append(row)
    return rows


def time_to_hr(data, target: float) -> dict:
    """Default flags (what `make demo` runs): wall time until validation HR@10 first reaches `target`."""
    result = run_measured(python("-m", "training", "--data", data, "--log_path", DATA / "time-to-hr.jsonl"))
    history = [json.loads(line) for line in (DATA / "time-to-hr.jsonl").read_text().splitlines()]
    (DATA / "time-to-hr.jsonl").unlink()
    (DATA / "time-to-hr.png").unlink(missing_ok=True)
    reached = next((h for h in history if h["valid_hr"] >= target), None)
    summary = summary_of(result)
    return {"target_hr": target, "seconds_to_target": reached and reached["elapsed_seconds"],
            "epoch_reached": reached and reached["epoch"], "best_hr": summary["best_hr"],
            "toppop_hr": summary["toppop_hr"], "time_to_best": summary["time_to_best"],
            "wall_seconds": result["seconds"]}


def run(quick: bool) -> dict:
    load_before = os.getloadavg()[0]
    results = {"throughput": throughput_rows(quick), "time_to_hr": time_to_hr(prepared("ml-1m"), target=0.65)}
    save("train", {"quick": quick, "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                   "results": results})
    return results
