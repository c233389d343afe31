"""python -m training.export: a checkpoint as a Triton model repository for the Merlin GPU container.

    DIR/neumf/1/model.pt | model.onnx   (user index, item index) int64 -> logit float32, checked
                                        against the PyTorch model on random pairs before it is written
    DIR/neumf/config.pbtxt              platform pytorch_libtorch | onnxruntime_onnx, dynamic batching
    DIR/workflow/                       with --data: the workflow step, a python-backend model mapping raw
                                        user_id / item_id to indices with the saved workflow's vocabularies
    DIR/score/config.pbtxt              with --data: the ensemble raw ids -> workflow -> neumf -> score,
                                        the same interface as `python -m serving`'s `score` model

`tritonserver --model-repository DIR` serves it in the Merlin container (docker compose up serve).
"""
from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.atomic import atomic_dir
from contract.errors import UserError, print_error
from contract.feature_spec import FeatureSpec

from . import checkpoint
from .models import build_model
from .recommend import load_vocabularies, workflow_of

FORMATS = {  # file, Triton platform, and the tensor names its backend wants
    "torchscript": {"file": "model.pt", "platform": "pytorch_libtorch",
                    "inputs": ("user_index__0", "item_index__1"), "output": "score__0"},
    "onnx": {"file": "model.onnx", "platform": "onnxruntime_onnx",
             "inputs": ("user_index", "item_index"), "output": "score"},
}
TOLERANCE = 1e-5  # max |exported - PyTorch| on the check pairs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth")
    p.add_argument("--output", type=Path, required=True, help="the Triton model repository to write")
    p.add_argument("--format", choices=tuple(FORMATS), default="torchscript")
    p.add_argument("--data", type=Path, help="DATA_DIR the model was trained on: adds the workflow step and the "
                                             "`score` ensemble (raw ids in)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded --data "
                                                  "(default: the one its FeatureSpec records)")
    p.add_argument("--max-batch", type=int, default=65536, help="Triton max_batch_size of every model")
    p.add_argument("--overwrite", action="store_true")
    return p


class Scorer(nn.Module):
    """What the exported file computes: logits of (user index, item index) pairs, float32 whatever the model's dtype."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, user_index: torch.Tensor, item_index: torch.Tensor) -> torch.Tensor:
        return self.model(user_index, item_index).float()


def load_scorer(path: Path) -> tuple[Scorer, dict]:
    payload = checkpoint.load(path)
    model = build_model(payload["meta"]["architecture"], payload["meta"]["cardinalities"])
    model.load_state_dict(payload["model"])
    return Scorer(model).eval(), payload["meta"]


def check_pairs(sizes: dict, n: int = 4096, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (user, item) index pairs over the whole tables, reserved indices included."""
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(rng.integers(0, sizes["users"], n)), torch.from_numpy(rng.integers(0, sizes["items"], n)))


def write_model(scorer: Scorer, fmt: str, path: Path, example: tuple[torch.Tensor, torch.Tensor]) -> None:
    names = FORMATS[fmt]
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(scorer, example).save(str(path))
            return
        extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}  # torch >= 2.5
        batch = {0: "batch"}
        with warnings.catch_warnings():  # the legacy exporter needs no onnxscript and handles this model fine
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
            torch.onnx.export(scorer, example, str(path), input_names=list(names["inputs"]),
                              output_names=[names["output"]],
                              dynamic_axes={name: batch for name in (*names["inputs"], names["output"])},
                              opset_version=17, **extra)


def run_exported(fmt: str, path: Path, users: torch.Tensor, items: torch.Tensor) -> np.ndarray:
    """Scores from the exported file, run the way Triton's backend would (ONNX: onnxruntime on CPU)."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path), map_location="cpu")(users, items).numpy()
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--format onnx needs onnxruntime to check the export (pip install -r requirements/cpu.txt)")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = FORMATS[fmt]["inputs"]
    return session.run(None, {names[0]: users.numpy(), names[1]: items.numpy()})[0]


def max_difference(scorer: Scorer, fmt: str, path: Path, sizes: dict) -> float:
    users, items = check_pairs(sizes)
    with torch.no_grad():
        expected = scorer(users, items).numpy()
    return float(np.abs(run_exported(fmt, path, users, items) - expected).max())


# ---- config.pbtxt (Triton's protobuf text format) ----------------------------------------------
def _tensor(name: str, dtype: str, reshape: bool = False) -> str:
    return (f'  {{ name: "{name}" data_type: {dtype} dims: [ 1 ]' + (" reshape: { shape: [ ] }" if reshape else "")
            + " }")


def _io(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


def neumf_config(fmt: str, max_batch: int) -> str:
    names = FORMATS[fmt]
    return (f'name: "neumf"\nplatform: "{names["platform"]}"\nmax_batch_size: {max_batch}\n'
            # the exported model takes and returns 1-D tensors: one value per pair
            + _io("input", [_tensor(n, "TYPE_INT64", reshape=True) for n in names["inputs"]])
            + _io("output", [_tensor(names["output"], "TYPE_FP32", reshape=True)])
            + "dynamic_batching { }\n")


def workflow_config(max_batch: int) -> str:
    return (f'name: "workflow"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
            + _io("input", [_tensor("user_id", "TYPE_STRING"), _tensor("item_id", "TYPE_STRING")])
            + _io("output", [_tensor("user_index", "TYPE_INT64"), _tensor("item_index", "TYPE_INT64")])
            + "dynamic_batching { }\ninstance_group [ { kind: KIND_CPU count: 1 } ]\n")


def score_config(fmt: str, max_batch: int) -> str:
    names = FORMATS[fmt]

    def step(model: str, inputs: dict, outputs: dict) -> str:
        maps = [f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        maps += [f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        return f'    {{\n      model_name: "{model}"\n      model_version: -1\n      ' + "\n      ".join(maps) + "\n    }"

    steps = [step("workflow", {"user_id": "user_id", "item_id": "item_id"},
                  {"user_index": "user_index", "item_index": "item_index"}),
             step("neumf", dict(zip(names["inputs"], ("user_index", "item_index"))), {names["output"]: "score"})]
    return (f'name: "score"\nplatform: "ensemble"\nmax_batch_size: {max_batch}\n'
            + _io("input", [_tensor("user_id", "TYPE_STRING"), _tensor("item_id", "TYPE_STRING")])
            + _io("output", [_tensor("score", "TYPE_FP32")])
            + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n")


def write_workflow_step(folder: Path, spec: FeatureSpec, workflow: Path | None, max_batch: int) -> None:
    """The python-backend model, the workflow's two vocabularies and what it needs to know of the encoding."""
    workflow_dir = workflow_of(spec, workflow)
    load_vocabularies(spec, workflow_dir)  # refuses a workflow that did not encode the data
    reserved = spec.encoding.get("reserved_indices") or {}
    if "out_of_vocabulary" not in reserved:
        raise UserError(f"{spec.base_directory}: metadata.encoding.reserved_indices names no out_of_vocabulary index")
    version = folder / "1"
    version.mkdir(parents=True)
    inputs = {}
    for name, feature, output in (("user_id", spec.user_feature, "user_index"), ("item_id", spec.item_feature, "item_index")):
        shutil.copy(spec.vocabulary_file(workflow_dir, feature), version / f"{name}.parquet")
        inputs[name] = {"file": f"{name}.parquet", "feature": feature, "output": output}
    (version / "encoding.json").write_text(json.dumps(
        {"out_of_vocabulary": int(reserved["out_of_vocabulary"]), "workflow_id": spec.workflow_id, "inputs": inputs},
        indent=2))
    shutil.copy(Path(__file__).with_name("triton_workflow.py"), version / "model.py")
    (folder / "config.pbtxt").write_text(workflow_config(max_batch))


def export(args) -> dict:
    if args.max_batch < 1:
        raise UserError(f"--max-batch must be at least 1, not {args.max_batch}")
    scorer, meta = load_scorer(args.checkpoint)
    spec = None
    if args.data is not None:
        spec = FeatureSpec.from_yaml(args.data)
        checkpoint.check_fits({"meta": meta}, args.checkpoint, spec.table_sizes)
    fmt, sizes = args.format, meta["cardinalities"]
    with atomic_dir(args.output, args.overwrite) as tmp:
        model_file = tmp / "neumf" / "1" / FORMATS[fmt]["file"]
        model_file.parent.mkdir(parents=True)
        write_model(scorer, fmt, model_file, check_pairs(sizes, n=8, seed=1))
        difference = max_difference(scorer, fmt, model_file, sizes)
        if not difference <= TOLERANCE:
            raise UserError(f"the exported {fmt} model differs from the PyTorch model by {difference:.2e} "
                            f"(more than {TOLERANCE:g}): not written")
        (tmp / "neumf" / "config.pbtxt").write_text(neumf_config(fmt, args.max_batch))
        if spec is not None:
            write_workflow_step(tmp / "workflow", spec, args.workflow, args.max_batch)
            (tmp / "score" / "1").mkdir(parents=True)
            (tmp / "score" / "config.pbtxt").write_text(score_config(fmt, args.max_batch))
    models = ["neumf"] + (["workflow", "score"] if spec is not None else [])
    return {"output": str(args.output), "format": fmt, "models": models, "max_abs_difference": difference}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        summary = export(args)
    except UserError as exc:
        return print_error(exc)
    if args.data is None:
        print("note: without --data the repository holds the model alone (indices in); add --data for the workflow "
              "step and the `score` ensemble (raw ids in)", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
