"""Render bench/results/*.json into BENCHMARKS.md (tables) and bench/results/*.png (curves)."""
from __future__ import annotations

import json

from .common import RESULTS, ROOT

NOTES = ROOT / "bench" / "NOTES.md"  # hand-written: the optimisation log, kept below the tables


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(payload) -> str:
    m = payload["machine"]
    mode = "quick" if payload.get("quick") else "full"
    bf16 = m.get("native_bf16", payload.get("native_bf16"))
    bf16 = "" if bf16 is None else f", native bf16 {'yes' if bf16 else 'no (emulated)'}"
    load = payload.get("load_average")
    load = f", 1-minute load average {load[0]} at the start and {load[1]} at the end" if load else ""
    return (f"*{m['cpu']}, {m['cores']} cores{bf16}, {m['memory_gib']} GiB, Python {m['python']}, "
            f"commit {m['commit']}, {mode} mode{load}.*")


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]


def etl_section(p) -> list[str]:
    rows = [(f"{r['rows']:,}", f"{r['users']:,} / {r['items']:,}", f"{r['nvtabular']['seconds']:.1f}",
             f"{r['nvtabular']['rows_per_s'] / 1e6:.2f}M", f"{r['nvtabular']['peak_rss_mib']:,.0f}",
             f"{r['pandas']['seconds']:.1f}", f"{r['pandas']['peak_rss_mib']:,.0f}", f"{r['time_ratio_vs_pandas']:.2f}")
            for r in p["results"]]
    return ["## ETL: `etl prepare` vs plain pandas (`bench/etl.py`)", _machine(p), "",
            "Synthetic ml-20m-layout CSV in, train/test parquet out (100 negatives per test user). "
            f"Median of {p['results'][0]['nvtabular']['runs']} run(s); peak RSS is the whole process tree.", "",
            *_table(["rows", "users / items", "NVTabular s", "rows/s", "peak RSS MiB", "pandas s",
                     "pandas RSS MiB", "time ÷ pandas"], rows)]


def train_section(p) -> list[str]:
    def k(x):
        return f"{x / 1e3:,.0f}k"

    rows = [(r["config"], r["precision"], k(r["ours"]), k(r["ours_in_memory"]), k(r["bare"]),
             f"**{r['ratio_vs_bare']:.2f}**", f"{100 * r['data_path_cost']:.0f}%") for r in p["results"]["throughput"]]
    t = p["results"]["time_to_hr"]
    reached = (f"Time to validation HR@10 ≥ {t['target_hr']} with the default flags on synthetic ml-1m: "
               f"**{t['seconds_to_target']:.0f} s** (epoch {t['epoch_reached']}); " if t["seconds_to_target"] else
               f"validation HR@10 target {t['target_hr']} not reached; ")
    return ["## Training samples/s: end to end vs a bare in-memory loop (`bench/train.py`)", _machine(p), "",
            "Samples (positives and 4 negatives each) per second, one process. *Ours end to end* = "
            "`python -m training --no_eval` over whole epochs (ml-20m tables: 2 epochs of 40 steps), each epoch "
            "starting its loader: parquet, TorchAsyncItr, negatives drawn per step, the step. *Ours in memory* "
            "= our model and step on random ids already in memory (`bench/bare_loop.py --project-model`). "
            "*Bare loop* = `bench/bare_loop.py`: NeuMF as DeepLearningExamples writes it, fused Adam, random "
            "ids in memory, no loader. Data path cost = 1 − end to end ÷ in memory, what reading and "
            "shuffling the files costs as training sees it (negative: within noise). Medians of interleaved "
            "runs.", "",
            *_table(["model, data", "precision", "ours end to end", "ours in memory", "bare loop",
                     "end to end ÷ bare", "data path cost"], rows),
            reached + f"best HR@10 {t['best_hr']:.3f} vs TopPop {t['toppop_hr']:.3f}.", ""]


def inference_section(p) -> list[str]:
    def m(x):
        return f"{x / 1e6:,.2f}M"

    scoring = [(r["config"], f"{s['batch']:,}", m(s["fp32"]), m(s["bf16"])) for r in p["results"] for s in r["scoring"]]
    grid = [(r["config"], precision, m(g["pairwise"]), m(g["score_grid"]), f"{g['score_grid'] / g['pairwise']:.1f}×")
            for r in p["results"] for precision, g in r["all_items"].items()]
    recommend = []
    for r in p["results"]:
        a = r["recommend_all_users"]
        how = (f"extrapolated: {a['one_user_seconds']:.1f} s for 1 user, {a['users_per_s']:,.0f} users/s over "
               f"{a['users_timed']:,}" if a["extrapolated"] else "measured")
        recommend.append((r["config"], f"{r['sizes']['users']:,} × {r['sizes']['items']:,}", f"{a['seconds']:,.0f}", how))
    return ["## Inference (`bench/inference.py`)", _machine(p), "",
            "Scoring: the project's NeuMF in eval mode under `torch.inference_mode`, random (user, item) ids, one "
            "process; bf16 = bf16 autocast. Samples/s:", "",
            *_table(["model, tables", "batch", "fp32", "bf16"], scoring),
            f"All items for {p['grid_users']} users at a time (what `recommend` and full ranking do), pairs/s: the "
            "forward over every (user, item) pair vs `NeuMF.score_grid`, which computes the GMF head as one "
            "matrix product and the first MLP layer's user and item parts once per user and once per item.", "",
            *_table(["model, tables", "precision", "pairwise forward", "score_grid", "speed-up"], grid),
            "`python -m training.recommend --all-users --topk 10` (fp32, default flags), wall seconds including "
            "start-up and writing the CSV:", "",
            *_table(["model", "users × items", "seconds", "how"], recommend)]


def loader_section(p) -> list[str]:
    rows = [(f"{r['batch']:,}", f"{r['ours'] / 1e6:.2f}M", f"{r['batch_sampler'] / 1e6:.2f}M",
             f"{r['per_item'] / 1e6:.3f}M", f"{r['speedup_vs_per_item']:.0f}×")
            for r in p["results"]]
    return ["## Loader rows/s (`bench/loader.py`)", _machine(p), "",
            "Rows (positives + negatives) per second at ml-20m table sizes; ours = NVTabular TorchAsyncItr + "
            "on-device negatives, with nothing else running; what the loader costs training is in the "
            "training section (data path cost).", "",
            *_table(["batch", "ours", "DataLoader batch-sampler", "DataLoader per-item", "ours ÷ per-item"], rows)]


def scale_section(p) -> list[str]:
    etl_rows = [(f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['time_per_row_vs_smallest']:.2f}",
                 f"{r['peak_rss_mib']:,.0f}", f"{r['rss_vs_smallest']:.2f}") for r in p["etl"]]
    train_rows = [(f"{r['rows']:,}", f"{r['users']:,} / {r['items']:,}", f"{r['samples_per_s'] / 1e3:,.0f}k",
                   f"{r['peak_rss_mib']:,.0f}") for r in p["training"]]
    _plot_scale(p)
    return ["## Scale (`bench/scale.py`)", _machine(p), "",
            "ETL from synthetic parquet; time per row and peak RSS relative to the smallest size.", "",
            *_table(["rows", "ETL s", "time/row vs smallest", "peak RSS MiB", "RSS vs smallest"], etl_rows),
            "Training (DLE architecture, fp32) with the same tables and more interactions:", "",
            *_table(["rows", "users / items", "samples/s", "peak RSS MiB"], train_rows),
            "![ETL scaling](bench/results/scale.png)", ""]


def _plot_scale(p) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2)
    rows = [r["rows"] / 1e6 for r in p["etl"]]
    left.plot(rows, [r["seconds"] for r in p["etl"]], marker="o")
    left.set(title="ETL wall time", xlabel="rows (millions)", ylabel="seconds")
    right.plot(rows, [r["peak_rss_mib"] for r in p["etl"]], marker="o")
    right.set(title="ETL peak RSS", xlabel="rows (millions)", ylabel="MiB", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=100)


def accuracy_section(p) -> list[str]:
    lines = ["## Accuracy of the defaults and alternatives (`bench/accuracy.py`)", _machine(p), "",
             "Synthetic data at MovieLens sizes (`python -m bench --only accuracy`). Test HR@10 / NDCG@10 of the epoch "
             "chosen on validation (100 sampled negatives), full-ranking HR@10 of that model, seconds end to end.", ""]
    for size, result in p["sizes"].items():
        runs = result["runs"]
        top = next(iter(runs.values()))
        lines += [f"**{size}** (default batch {result['default_batch']:,}; TopPop HR@10 {top['toppop_hr']:.3f}"
                  + (f", full-ranking {top['toppop_full_hr']:.3f}" if top.get("toppop_full_hr") is not None else "")
                  + ")", ""]
        lines += _table(["setting", "flags", "HR@10", "NDCG@10", "validation HR@10", "full HR@10", "best epoch", "s"], [
            (name, f"`{r['flags']}`", f"{r['best_hr']:.4f}", f"{r['best_ndcg']:.4f}",
             f"{r['best_valid_hr']:.4f}" if r["best_valid_hr"] is not None else "-",
             f"{r['full_hr']:.4f}" if r.get("full_hr") is not None else "-",
             r["best_epoch"] if r["best_epoch"] != -1 else "start", f"{r['seconds']:.0f}")
            for name, r in runs.items()])
    return lines


def accuracy_real_section(p) -> list[str]:
    from .accuracy import PUBLISHED

    lines = ["## Accuracy on real data (`bench/accuracy.py --data`)", _machine(p), "",
             "`python -m bench --only accuracy --data NAME=PATH` on real MovieLens built as `../shared/realdata/` says "
             "(never in the repository). Test figures of the epoch chosen on validation (carved from train where the "
             "data has none: never test), each family's default flags unless the flags say otherwise; seconds end to "
             "end including evaluation; time to best = training and evaluation seconds until the chosen epoch (for "
             "`--pretrain`, the parts' included); best epoch `start` = no epoch beat the weights the run started from "
             "(`--pretrain`: the blend of the two parts, not fine-tuned).", ""]
    for name, families in p["data"].items():
        for family, runs in families.items():
            first = next(iter(runs.values()))
            k = first.get("k")
            if family == "neumf":
                cells = (("HR", "best_hr", "toppop_hr"), ("NDCG", "best_ndcg", "toppop_ndcg"))
            else:
                cells = (("NDCG", "best_ndcg", "toppop_ndcg"), ("Recall@20", "best_recall@20", "toppop_recall@20"),
                         ("Recall@50", "best_recall@50", "toppop_recall@50"))
            chosen_on = f"validation {cells[0][0]}@{k}"  # the figure that chose the epoch, beside the test ones
            header = ["setting", "flags", *(f"{c[0]}@{k}" if "@" not in c[0] else c[0] for c in cells), chosen_on,
                      "best epoch", "time to best s", "s"]
            valid = "best_valid_" + cells[0][1].removeprefix("best_")
            rows = [(setting, f"`{r['flags']}`", *(f"{r[c[1]]:.4f}" if r.get(c[1]) is not None else "-" for c in cells),
                     f"{r[valid]:.4f}" if r.get(valid) is not None else "-",
                     r["best_epoch"] if r["best_epoch"] != -1 else "start",
                     f"{r['time_to_best']:.0f}" if r.get("time_to_best") else "-", f"{r['seconds']:.0f}")
                    for setting, r in runs.items()]
            rows.append(("TopPop", "", *(f"{first[c[2]]:.4f}" if first.get(c[2]) is not None else "-" for c in cells),
                         "", "", "", ""))
            shown = [c[1].removeprefix("best_") for c in cells]
            rows += [(who, "", *(f"{fig[m]:.4f}" if m in fig else "" for m in shown), "", "", "", "")
                     for who, fig in PUBLISHED.get(name, []) if set(fig) <= set(shown) | {"hr"} and
                     (family == "neumf") == ("hr" in fig)]
            source = (first.get("validation") or "-").removeprefix("validation ")
            lines += [f"**{name}**, {family} (validation: {source})", "", *_table(header, rows)]
    return lines


def serving_section(p) -> list[str]:
    def cells(r):
        return [f"{r['requests_per_s']:,.1f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['requests']:,}"]

    rows = [(r["model"], f"{r['rows']:,}", r["in_flight"], *cells(r["triton"]), f"{r['triton']['rows_per_s']:,.0f}",
             *(cells(r["in_process"])[:3] if r["in_process"] else ["–"] * 3)) for r in p["results"]]
    return ["## Serving (`bench/serving.py`)", _machine(p), "",
            "`python -m bench --only serving`: "
            f"`python -m serving` (Triton 2.51 from PyTriton, CPU) on loopback, queried with `tritonclient.http`, beside "
            f"the same computation called in-process (`training.recommend`'s `Recommender`: encode the raw ids, "
            f"then `top` for `recommend`, `score` for `score`). Synthetic ml-1m tables ({p['users']:,} users × "
            f"{p['items']:,} items), the default architecture, top {p['topk']}; each row runs about "
            f"{p['budget_s']:.0f} s back to back after a warm-up request (at least 5 requests). Rows = users "
            f"(`recommend`) or pairs (`score`) per request. Server start-up: {p['startup_s']:.1f} s. The machine "
            f"was shared: 1-minute load average {p['load_average'][0]} at the start, {p['load_average'][1]} at the end "
            f"(on 2 cores, anything above 2 means other work competed for the CPU and the numbers are pessimistic).", "",
            *_table(["model", "rows / request", "in flight", "Triton req/s", "p50 ms", "p99 ms", "requests timed",
                     "rows/s", "in-process req/s", "p50 ms", "p99 ms"], rows)]


def vae_section(p) -> list[str]:
    r = p["results"]

    def row(name, x):
        return (name, f"{x['ndcg@100']:.4f}", f"{x['recall@20']:.4f}", f"{x['recall@50']:.4f}",
                f"{x['train_throughput']:,.0f}", f"{x['wall_seconds']:.0f}", f"{x['peak_rss_mib']:,.0f}")

    runs = " / ".join(f"seed {seed}: NDCG@100 {a['ndcg@100']:.4f} vs {b['ndcg@100']:.4f}, "
                      f"{a['train_throughput']:,.0f} vs {b['train_throughput']:,.0f} users/s"
                      for seed, a, b in zip(p["seeds"], r["ours"]["runs"], r["plain"]["runs"]))
    return ["## VAE-CF: `python -m training.vae` vs a plain PyTorch Mult-VAE (`bench/vae.py`)", _machine(p), "",
            f"Synthetic ml-1m in the lists layout (`etl prepare --split users --min-rating {p['min_rating']}`): "
            f"{p['train_users']:,} training users, {p['heldout_users']:,} validation and as many test users, "
            f"{p['items']:,} items. Both train I-600-200-600-I for {p['epochs']} epochs with the same flags "
            "(batch 500 users, Adam 1e-3, KL annealed over 2,000 steps to 0.2, input dropout 0.5); figures are "
            "the test users' at the epoch with the best validation NDCG@100, median of seeds "
            f"{', '.join(map(str, p['seeds']))} (ours vs plain, {runs}; each seed runs ours then plain back to back). "
            "Ours streams users "
            "through the Merlin loader as CSR batches; plain = `bench/vae_reference.py`, dense user rows and "
            "nn.Linear. Users/s over the training steps (evaluation excluded); wall time includes start-up and "
            f"evaluation. 1-minute load average {p['load_average'][0]} at the start, {p['load_average'][1]} at the "
            "end (2 cores: above 2, other work competed for the CPU).", "",
            *_table(["", "NDCG@100", "Recall@20", "Recall@50", "train users/s", "wall s", "peak RSS MiB"],
                    [row("ours (`python -m training.vae`)", r["ours"]), row("plain PyTorch", r["plain"]),
                     ("popularity", f"{r['pop_ndcg@100']:.4f}", f"{r['pop_recall@20']:.4f}",
                      f"{r['pop_recall@50']:.4f}", "", "", "")])]


def compare_section(p) -> list[str]:
    lines = ["## Which model for my data: `python -m training.compare` (`bench/compare.py`)", "",
             "Every family and two baselines with their defaults on one protocol: each test user's held-out latest "
             "positive ranked against the whole catalogue minus the user's own items (ties against the model); "
             "NeuMF (10 epochs) and Mult-VAE (60 epochs) pick their best epoch on their validation, EASE its lambda "
             "on validation NDCG@10. Seconds = training (or fitting, EASE's lambda search included) plus "
             "evaluation, one process.", ""]
    for name, run in p["datasets"].items():
        ease = run["models"].get("ease")
        lines += [f"**{name}**: {run['users']['test']:,} test users"
                  + (" (a seeded sample)" if run["users"]["sampled"] else "") + f", {run['items']:,} items"
                  + (f"; EASE lambda {ease['lambda']:g}" if ease else ""), "",
                  _machine({**run, "quick": run.get("quick")}) + f" Whole command {run['wall_seconds']:.0f} s, "
                  f"peak RSS {run['peak_rss_mib']:,.0f} MiB.", ""]
        lines += _table(["model", "HR@10", "NDCG@10", "Recall@20", "HR@50", "HR@100", "coverage@10", "coverage@100",
                         "seconds"],
                        [(model, *(f"{r[key]:.4f}" for key in ("hr@10", "ndcg@10", "recall@20", "hr@50", "hr@100")),
                          f"{r['coverage@10']:.3f}", f"{r['coverage@100']:.3f}", f"{r['seconds']:.0f}")
                         for model, r in run["models"].items()])
    return lines


def full_ranking_section(p) -> list[str]:
    k = p["k"]
    lines = ["## A user's own split, full ranking on real data (`bench/full_ranking.py`)", _machine(p), "",
             "Seeded per-user random splits of real MovieLens written as given files (`python -m bench.given_split`), "
             f"then `etl prepare --test-input`, the default run `python -m training --data D -k {k}`, and "
             f"`python -m training.compare -k {k} 50` (every family with its defaults, EASE, TopPop; the pick on "
             f"validation Recall@{k}). Recall@K is over all of a user's test items (NGCF/LightGCN/SimpleX); every "
             "figure is the test figure of the model chosen on validation. Seconds are end to end.", ""]
    for run in p["data"]:
        d, c = run["default_run"], run["compare"]
        pick = (c.get("pick") or {}).get("model")
        lines += [f"**{run['name']}**: {run['users']:,} users, {run['items']:,} items, {run['train_rows']:,} train and "
                  f"{run['test_rows']:,} test pairs; ETL {run['etl_seconds']:.0f} s, the default run "
                  f"(`{d['model']}`) {d['seconds']:.0f} s, compare {c['seconds']:.0f} s.", ""]
        rows = [(f"default run: {d['model']}", f"{d['best_valid_recall']:.4f}", f"{d['best_recall']:.4f}",
                 f"{d['best_ndcg']:.4f}", f"{d['best_recall@50']:.4f}" if d.get("best_recall@50") else "",
                 f"{d['seconds']:.0f}")]
        rows += [(model + (" (pick)" if model == pick else ""), f"{r.get(f'validation_recall@{k}', float('nan')):.4f}",
                  f"{r[f'recall@{k}']:.4f}", f"{r[f'ndcg@{k}']:.4f}", f"{r['recall@50']:.4f}", f"{r['seconds']:.0f}")
                 for model, r in c["models"].items()]
        lines += _table(["model", f"valid Recall@{k}", f"Recall@{k}", f"NDCG@{k}", "Recall@50", "seconds"], rows)
    return lines


SECTIONS = {"etl": etl_section, "train": train_section, "inference": inference_section, "loader": loader_section,
            "scale": scale_section, "accuracy": accuracy_section, "accuracy-real": accuracy_real_section,
            "serving": serving_section, "vae": vae_section, "compare": compare_section, "full_ranking": full_ranking_section}


def write():
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (or `make bench-quick`) from `bench/results/*.json`; do not edit the "
             "tables by hand. Every number comes from the command named in its heading.", ""]
    for name, render in SECTIONS.items():
        payload = _load(name)
        if payload:
            lines += render(payload)
    if NOTES.exists():
        lines += [NOTES.read_text()]
    path = ROOT / "BENCHMARKS.md"
    path.write_text("\n".join(lines))
    return path
