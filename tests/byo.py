"""Write data files matching feature_specs/byo_csv/feature_spec.yaml into a test folder."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "feature_specs" / "byo_csv" / "feature_spec.yaml"


def write_byo_dataset(folder: Path, users=60, items=40, seed=0, header=True) -> Path:
    """Each user likes items of one residue class mod 4: learnable, and far from popularity."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, folder / "feature_spec.yaml")
    rows, tests = [], []
    for user in range(users):
        liked = [i for i in range(items) if i % 4 == user % 4]
        picks = rng.choice(liked, size=7, replace=False)
        rows += [(user, int(i)) for i in picks[:-1]]
        others = [i for i in range(items) if i not in picks]
        tests.append([(user, int(picks[-1]), 1.0)] + [(user, int(i), 0.0) for i in rng.choice(others, 5, replace=False)])
    ids = pd.DataFrame(rows, columns=["customer", "product"])
    labels = pd.DataFrame({"clicked": np.ones(len(ids), dtype=np.float32)})
    half = len(ids) // 2
    for i, part in enumerate((slice(0, half), slice(half, None))):
        ids.iloc[part].to_csv(folder / f"train_ids_{i}.csv", index=False, header=header)
        labels.iloc[part].to_csv(folder / f"train_labels_{i}.csv", index=False, header=header)
    pd.DataFrame([r for t in tests for r in t], columns=["customer", "product", "clicked"]).to_csv(
        folder / "test.csv", index=False, header=header)
    return folder
