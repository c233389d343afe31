"""`etl transform`: apply a saved workflow to new raw data without refitting."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .atomic import atomic_dir
from .cluster import resolve_device
from .errors import UserError
from .feature_spec import encoded_spec
from .progress import StageLog, compute_with_progress
from .readers import ColumnNames, resolve_input, stage_ratings, staged_files
from .workflow import LABEL, OOV_INDEX, cardinalities

OUTPUT_COLUMNS = ["user_id", "item_id", LABEL, "timestamp", "rating"]


def load_workflow(workflow_dir):
    """Load a saved NVTabular workflow. It is pickled code: only load folders you trust."""
    import nvtabular as nvt

    workflow_dir = Path(workflow_dir)
    if not (workflow_dir / "workflow.pkl").is_file() or not (workflow_dir / "metadata.json").is_file():
        raise UserError(f"{workflow_dir} is not a saved workflow (no workflow.pkl/metadata.json); "
                        "point --workflow at the folder that `etl prepare` wrote")
    try:
        return nvt.Workflow.load(str(workflow_dir))
    except Exception as exc:  # unpickling can fail in many ways; all mean "not usable"
        raise UserError(f"cannot load the workflow in {workflow_dir}: {type(exc).__name__}: {exc}")


def transform(workflow_dir, input_path, output, fmt="auto", columns=ColumnNames(), device="auto",
              overwrite=False, quiet=False) -> dict:
    import nvtabular as nvt

    log = StageLog(quiet)
    device = resolve_device(device)
    workflow = load_workflow(workflow_dir)
    cards = cardinalities(workflow)
    output = Path(output)
    with atomic_dir(output, overwrite) as out:
        with log.stage("transform", f"applying {workflow_dir} to {input_path}"):
            path, fmt = resolve_input(input_path, fmt, out / "_scratch")
            stage_ratings(path, fmt, columns, out / "_scratch" / "raw", quiet=quiet)
            dataset = nvt.Dataset(staged_files(out / "_scratch" / "raw"), engine="parquet", cpu=device == "cpu")
            encoded = workflow.transform(dataset).to_ddf()[OUTPUT_COLUMNS]
            (out / "data").mkdir()
            import dask

            tasks = [dask.delayed(_write)(part, out / "data" / f"part_{i:05d}.parquet")
                     for i, part in enumerate(encoded.to_delayed())]
            counts = compute_with_progress(*tasks, quiet=quiet)
            shutil.rmtree(out / "_scratch")
        rows = sum(c["rows"] for c in counts)
        if rows == 0:
            raise UserError(f"{input_path} holds no interactions")
        encoded_spec(out, cards, {"train": "data"}).to_yaml(out / "feature_spec.yaml")
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
    if hasattr(df, "to_pandas"):
        df = df.to_pandas()
    if len(df):
        df.to_parquet(path, index=False)
    return {"rows": len(df), "oov_user_rows": int((df["user_id"] == OOV_INDEX).sum()),
            "oov_item_rows": int((df["item_id"] == OOV_INDEX).sum())}
