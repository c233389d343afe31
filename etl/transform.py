"""`etl transform`: apply a saved workflow to new raw data without refitting."""
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
            (out / "data").mkdir()
            import dask

            tasks = [dask.delayed(_write)(part, out / "data" / f"part_{i:05d}.parquet")
                     for i, part in enumerate(encoded.to_delayed())]
            counts = compute_with_progress(*tasks, quiet=quiet)
            shutil.rmtree(out / "_scratch")
        rows = sum(c["rows"] for c in counts)
        if rows == 0:
            raise UserError(f"{input_path} holds no positive interactions for this workflow")
        encoding = encoding_metadata(workflow_dir, output)
        encoded_spec(out, cards, {"train": "data"}, encoding).to_yaml(out / "feature_spec.yaml")
        stats = {
            "input": str(input_path), "workflow_dir": str(workflow_dir), "rows": rows,
            "oov_user_rows": sum(c["oov_user_rows"] for c in counts),
            "oov_item_rows": sum(c["oov_item_rows"] for c in counts),
            "cardinalities": cards, "timings_s": {**log.timings, "total": log.total},
        }
        (out / "stats.json").write_text(json.dumps(stats, indent=2))
    log.say(f"transformed {rows:,} rows into {output}: {stats['oov_user_rows']:,} rows with an unseen user, "
            f"{stats['oov_item_rows']:,} with an unseen item (mapped to index {OOV_INDEX})")
    return stats


def _write(df, path: Path) -> dict:
    df = to_host(df)
    if len(df):
        df.to_parquet(path, index=False)
    return {"rows": len(df), "oov_user_rows": int((df["user_id"] == OOV_INDEX).sum()),
            "oov_item_rows": int((df["item_id"] == OOV_INDEX).sum())}
