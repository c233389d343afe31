"""How figures are named on screen: hr -> HR@10, recall@20 -> Recall@20, full_hr -> full-ranking HR@10."""
from __future__ import annotations


def label(metric: str, k) -> str:
    if metric.startswith("full_"):
        return "full-ranking " + label(metric[5:], k)
    name, _, at = metric.partition("@")
    return f"{ {'hr': 'HR', 'ndcg': 'NDCG', 'recall': 'Recall'}.get(name, name)}@{at or k}"


def figures(metrics: dict, k: int, prefix: str = "") -> str:
    return "  ".join(f"{prefix}{label(m, k)} {v:.4f}" for m, v in metrics.items()
                     if isinstance(v, float) and "eval_" not in m)


def is_metric(name: str) -> bool:
    return name.split("@")[0] in ("hr", "ndcg", "recall")
