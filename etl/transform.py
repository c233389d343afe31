"""`etl transform`: apply a saved workflow to new raw data without refitting.

Rows keep their input order; positives go to `data/` (the train mapping), interactions below the
workflow's positive rule to `known/`. Unseen ids map to the out-of-vocabulary index and are counted.
To also get a leave-latest-out split and test series, use `etl prepare --workflow` instead.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from contract.atomic import atomic_dir
from contract.errors import UserError

from .backend import resolve_device, to_host
from .output_spec import encoded_spec, encoding_metadata
from .pipeline import RawInput, encode, stage
from .progress import StageLog, compute_with_progress
from .readers import ColumnNames
from .workflow import OOV_INDEX, fitted_cardinalities, load_workflow


def transform(workflow_dir, input_path, output, fmt="auto", columns=ColumnNames(), device="auto",
              overwrite=False, quiet=False) -> dict:
    log = StageLog(quiet)
    device = resolve_device(device)
    workflow = load_workflow(workflow_dir)
    cards = fitted_cardinalities(workflow)
    output = Path(output)
    with atomic_dir(output, overwrite) as out:
        with log.stage("transform", f"applying {workflow_dir} to {input_path}"):
            dataset, _ = stage(RawInput(Path(input_path), fmt, columns), out / "_scratch", device, quiet=quiet)
            encoded = encode(workflow, dataset)
            for folder in FOLDERS.values():
                (out / folder).mkdir()
            import dask

            tasks = [dask.delayed(_write)(part, out, f"part_{i:05d}.parquet") for i, part in enumerate(encoded.to_delayed())]
            counts = compute_with_progress(*tasks, quiet=quiet)
            shutil.rmtree(out / "_scratch")
        totals = {key: sum(c[key] for c in counts) for key in counts[0]}
        if totals["rows"] == 0:
            raise UserError(f"{input_path} holds no positive interactions for this workflow")
        encoding = encoding_metadata(workflow_dir, output)
        folders = {mapping: folder for mapping, folder in FOLDERS.items() if any((out / folder).iterdir())}
        encoded_spec(out, cards, folders, encoding).to_yaml(out / "feature_spec.yaml")
        stats = {"input": str(input_path), "workflow_dir": str(workflow_dir), **totals,
                 "cardinalities": cards, "timings_s": {**log.timings, "total": log.total}}
        (out / "stats.json").write_text(json.dumps(stats, indent=2))
    log.say(_summary(output, totals))
    return stats


# mapping -> folder: positives are what training reads, the rest is history for recommend.
FOLDERS = {"train": "data", "known": "known"}


def _write(df, out: Path, name: str) -> dict:
    df = to_host(df)
    positive = df["label"] > 0
    for rows, folder in ((df[positive], FOLDERS["train"]), (df[~positive], FOLDERS["known"])):
        if len(rows):
            rows.to_parquet(out / folder / name, index=False)
    return {"rows": int(positive.sum()), "known_rows": int((~positive).sum()),
            "oov_user_rows": int((df["user_id"] == OOV_INDEX).sum()),
            "oov_item_rows": int((df["item_id"] == OOV_INDEX).sum()),
            "oov_rows": int(((df["user_id"] == OOV_INDEX) | (df["item_id"] == OOV_INDEX)).sum())}


def _summary(output: Path, totals: dict) -> str:
    every = totals["rows"] + totals["known_rows"]
    return (f"transformed {every:,} rows into {output} ({totals['rows']:,} positives, {totals['known_rows']:,} "
            f"known below the positive rule): {totals['oov_rows']:,} rows ({totals['oov_rows'] / every:.1%}) fell to "
            f"the out-of-vocabulary index {OOV_INDEX} ({totals['oov_user_rows']:,} with an unseen user, "
            f"{totals['oov_item_rows']:,} with an unseen item)")
