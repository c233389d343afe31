"""python -m serving.export: a checkpoint of any family as a Triton model repository for the Merlin GPU container.

NeuMF (and GMF, MLP; pairs data):
    DIR/neumf/1/model.pt | model.onnx    (user index, item index) INT64 -> logit FP32, one value per pair
    DIR/neumf/config.pbtxt
Mult-VAE (lists data):
    DIR/multvae/1/model.pt | model.onnx  fold_in FP32 [-1, items] -> logits FP32 [-1, items]: a user's items as
                                         a dense multi-hot row over the item indices (the workflow's encoding,
                                         reserved indices included), the decoder's logit of every item; the
                                         client masks what `training.recommend` masks (the user's items, the
                                         reserved indices, items no training user has) before its top K
    DIR/multvae/config.pbtxt
Every model is checked against the PyTorch model before anything is written (random pairs; random multi-hot
rows, which the PyTorch model reads as CSR), and written as TorchScript or ONNX (checked with onnxruntime).
Triton's platform is pytorch_libtorch | onnxruntime_onnx, with dynamic batching.

With --data, the data the model was trained on (its layout is checked against the checkpoint's family):
    DIR/workflow/     the workflow step, a python-backend model mapping raw user_id / item_id to indices
                      with the saved workflow's vocabularies (both families)
    DIR/score/        NeuMF only: the ensemble raw ids -> workflow -> neumf -> score, the same interface as
                      `python -m serving`'s `score` model. Mult-VAE gets none: it scores a user from their
                      history, which the repository does not hold (`python -m serving` reads it from --data);
                      a client maps the user's items with the workflow step and sends multvae the multi-hot row.

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
from contract.console import entry_point
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from training import checkpoint, saved
from training.recommend import load_vocabularies, workflow_of
from training.sparse import Lists

FORMATS = {  # file and Triton platform
    "torchscript": {"file": "model.pt", "platform": "pytorch_libtorch"},
    "onnx": {"file": "model.onnx", "platform": "onnxruntime_onnx"},
}
# max |exported - PyTorch| on the check inputs, relative to the largest |logit| where that exceeds 1 (a dense
# matmul and the PyTorch model's sparse path add the same products in another order)
TOLERANCE = 1e-5
MAX_BATCH = {"pairs": 65536, "history": 256, "workflow": 65536, "score": 65536}  # pairs, users, rows, pairs


def no_score_ensemble(title: str, family: str) -> str:
    return (f"{title} scores a user from their history, which the repository does not hold: no `score` ensemble; "
            f"map the user's items with `workflow` and send `{family}` their multi-hot row (fold_in)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth of any family")
    p.add_argument("--output", type=Path, required=True, help="the Triton model repository to write")
    p.add_argument("--format", choices=tuple(FORMATS), default="torchscript")
    p.add_argument("--data", type=Path, help="DATA_DIR the model was trained on: adds the workflow step and, for NeuMF, "
                                             "the `score` ensemble (raw ids in)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded --data "
                                                  "(default: the one its FeatureSpec records)")
    p.add_argument("--max-batch", type=int, help="Triton max_batch_size of every model (default: "
                   + ", ".join(f"{name} {n}" for name, n in MAX_BATCH.items()) + "; pairs: a pair-scoring family's "
                   "model, history: a history-reading family's)")
    p.add_argument("--overwrite", action="store_true")
    return p


class Scorer(nn.Module):
    """What a pair-scoring family's exported file computes (NeuMF's): logits of (user index, item index) pairs,
    float32 whatever the model's dtype. Its repository gets the raw-id `score` ensemble."""

    kind = "pairs"
    inputs, output = ("user_index", "item_index"), "score"

    def __init__(self, model: nn.Module, sizes: dict, task):
        super().__init__()
        self.model, self.sizes, self.family, self.title = model, sizes, task.family, task.title

    def forward(self, user_index: torch.Tensor, item_index: torch.Tensor) -> torch.Tensor:
        return self.model(user_index, item_index).float()

    def check_inputs(self, n: int = 4096, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random (user, item) index pairs over the whole tables, reserved indices included."""
        rng = np.random.default_rng(seed)
        return (torch.from_numpy(rng.integers(0, self.sizes["users"], n)),
                torch.from_numpy(rng.integers(0, self.sizes["items"], n)))

    def reference(self, *inputs: torch.Tensor) -> torch.Tensor:
        """What the PyTorch model answers (its own forward pass on the pairs)."""
        return self(*inputs)

    def tensors(self) -> tuple[list, list]:
        """(inputs, outputs) of config.pbtxt as (name, data type, dims, reshape): one value per pair, 1-D tensors."""
        return ([(name, "TYPE_INT64", [1], True) for name in self.inputs], [(self.output, "TYPE_FP32", [1], True)])


class FoldInScorer(nn.Module):
    """What a history-reading family's exported file computes (Mult-VAE's): logits of every item from dense
    multi-hot rows of the users' items. The model's forward pass reads CSR rows, which neither tracing nor ONNX
    export take; `dense_logits` is the same computation on dense rows with the model's own weights."""

    kind = "history"
    inputs, output = ("fold_in",), "logits"

    def __init__(self, model: nn.Module, sizes: dict, task):
        super().__init__()
        self.model, self.sizes, self.family, self.title = model, sizes, task.family, task.title

    def forward(self, fold_in: torch.Tensor) -> torch.Tensor:
        return self.model.dense_logits(fold_in).float()

    def check_inputs(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random multi-hot rows of every density from none to all items, reserved indices included."""
        rng = np.random.default_rng(seed)
        n_items = self.sizes["items"]
        density = np.concatenate([[0.0, 1.0], rng.random(n - 2) ** 3])[:n, None]
        return (torch.from_numpy((rng.random((n, n_items)) < density).astype(np.float32)),)

    def reference(self, fold_in: torch.Tensor) -> torch.Tensor:
        """What the PyTorch model answers: its forward pass on the rows as CSR, as recommend and serving run it."""
        rows, items = torch.nonzero(fold_in, as_tuple=True)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(rows, minlength=len(fold_in)).cumsum(0)])
        return self.model(Lists(offsets, items).rows(0, len(fold_in), fold_in.shape[1]))[0].float()

    def tensors(self) -> tuple[list, list]:
        n_items = self.sizes["items"]
        return ([(self.inputs[0], "TYPE_FP32", [n_items], False)], [(self.output, "TYPE_FP32", [n_items], False)])


def load_exportable(path: Path, spec: FeatureSpec | None = None) -> tuple[Scorer | FoldInScorer, dict]:
    """The checkpoint's model wrapped as its family's exported computation (eval mode), and its meta; checked
    against the data it was trained on where that is given."""
    loaded = saved.load(path, spec, tables="exact")
    wrapper = FoldInScorer if loaded.task.needs_history else Scorer
    return wrapper(loaded.build()[0], loaded.sizes, loaded.task).eval(), loaded.meta


def names(module: Scorer | FoldInScorer, fmt: str) -> tuple[list[str], str]:
    """Tensor names as the backend wants them (libtorch: NAME__INDEX)."""
    if fmt == "torchscript":
        return [f"{name}__{i}" for i, name in enumerate(module.inputs)], f"{module.output}__0"
    return list(module.inputs), module.output


def write_model(module: Scorer | FoldInScorer, fmt: str, path: Path, example: tuple[torch.Tensor, ...]) -> None:
    with torch.no_grad():
        if fmt == "torchscript":
            path.write_bytes(checkpoint.serialized(torch.jit.save, torch.jit.trace(module, example)))
            return
        inputs, output = names(module, fmt)
        extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}  # torch >= 2.5
        batch = {0: "batch"}
        with warnings.catch_warnings():  # the legacy exporter needs no onnxscript and handles these models fine
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
            path.write_bytes(checkpoint.serialized(
                lambda model, file: torch.onnx.export(model, example, file, input_names=inputs, output_names=[output],
                                                      dynamic_axes={name: batch for name in (*inputs, output)},
                                                      opset_version=17, **extra), module))


def run_exported(module: Scorer | FoldInScorer, fmt: str, path: Path, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Answers of the exported file, run the way Triton's backend would (ONNX: onnxruntime on CPU)."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path), map_location="cpu")(*inputs).numpy()
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--format onnx needs onnxruntime to check the export (pip install -r requirements/cpu.txt)")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names(module, fmt)[0], (t.numpy() for t in inputs))))[0]


def check_exported(module: Scorer | FoldInScorer, fmt: str, path: Path) -> float:
    """max |exported - PyTorch| on the check inputs; refuses the export beyond TOLERANCE."""
    inputs = module.check_inputs()
    with torch.no_grad():
        expected = module.reference(*inputs).numpy()
    got = run_exported(module, fmt, path, inputs)
    if got.shape != expected.shape:
        raise UserError(f"the exported {fmt} model answers shape {got.shape}, the PyTorch model {expected.shape}: "
                        "not written")
    difference = float(np.abs(got - expected).max())
    allowed = TOLERANCE * max(1.0, float(np.abs(expected).max()))
    if not difference <= allowed:
        raise UserError(f"the exported {fmt} model differs from the PyTorch model by {difference:.2e} "
                        f"(more than {allowed:.2g}): not written")
    return difference


# ---- config.pbtxt (Triton's protobuf text format) ----------------------------------------------
def _tensor(name: str, dtype: str, dims=(1,), reshape: bool = False) -> str:
    return (f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ]'
            + (" reshape: { shape: [ ] }" if reshape else "") + " }")


def _io(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


def model_config(module: Scorer | FoldInScorer, fmt: str, max_batch: int) -> str:
    inputs, outputs = module.tensors()
    input_names, output_name = names(module, fmt)
    return (f'name: "{module.family}"\nplatform: "{FORMATS[fmt]["platform"]}"\nmax_batch_size: {max_batch}\n'
            + _io("input", [_tensor(n, t, d, r) for n, (_, t, d, r) in zip(input_names, inputs)])
            + _io("output", [_tensor(output_name, t, d, r) for _, t, d, r in outputs])
            + "dynamic_batching { }\n")


def workflow_config(max_batch: int) -> str:
    return (f'name: "workflow"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
            + _io("input", [_tensor("user_id", "TYPE_STRING"), _tensor("item_id", "TYPE_STRING")])
            + _io("output", [_tensor("user_index", "TYPE_INT64"), _tensor("item_index", "TYPE_INT64")])
            + "dynamic_batching { }\ninstance_group [ { kind: KIND_CPU count: 1 } ]\n")


def score_config(module: Scorer, fmt: str, max_batch: int) -> str:
    input_names, output_name = names(module, fmt)

    def step(model: str, inputs: dict, outputs: dict) -> str:
        maps = [f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        maps += [f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        return f'    {{\n      model_name: "{model}"\n      model_version: -1\n      ' + "\n      ".join(maps) + "\n    }"

    steps = [step("workflow", {"user_id": "user_id", "item_id": "item_id"},
                  {"user_index": "user_index", "item_index": "item_index"}),
             step(module.family, dict(zip(input_names, ("user_index", "item_index"))), {output_name: "score"})]
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
    if args.max_batch is not None and args.max_batch < 1:
        raise UserError(f"--max-batch must be at least 1, not {args.max_batch}")
    spec = FeatureSpec.from_yaml(args.data) if args.data is not None else None
    module, meta = load_exportable(args.checkpoint, spec)
    family, fmt = module.family, args.format
    models = [family]
    if spec is not None:  # the raw-id ensemble only where the repository holds all a score needs
        models += ["workflow", "score"] if module.kind == "pairs" else ["workflow"]
    batch = {name: args.max_batch or MAX_BATCH[module.kind if name == family else name] for name in models}
    with atomic_dir(args.output, args.overwrite) as tmp:
        model_file = tmp / family / "1" / FORMATS[fmt]["file"]
        model_file.parent.mkdir(parents=True)
        write_model(module, fmt, model_file, module.check_inputs(n=8, seed=1))
        difference = check_exported(module, fmt, model_file)
        (tmp / family / "config.pbtxt").write_text(model_config(module, fmt, batch[family]))
        if spec is not None:
            write_workflow_step(tmp / "workflow", spec, args.workflow, batch["workflow"])
        if "score" in models:
            (tmp / "score" / "1").mkdir(parents=True)
            (tmp / "score" / "config.pbtxt").write_text(score_config(module, fmt, batch["score"]))
    input_names, output_name = names(module, fmt)
    summary = {"output": str(args.output), "format": fmt, "model": meta["architecture"]["variant"], "models": models,
               "inputs": input_names, "outputs": [output_name], "max_abs_difference": difference}
    if module.kind == "history":
        summary["note"] = no_score_ensemble(module.title, family)
    if args.data is None:
        print("note: without --data the repository holds the model alone (indices in); add --data for the workflow "
              "step" + ("" if "note" in summary else " and the `score` ensemble (raw ids in)"),
              file=sys.stderr)
    return summary


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return entry_point(lambda: export(args))


if __name__ == "__main__":
    sys.exit(main())
