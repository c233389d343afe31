"""python -m training: train NeuMF on a FeatureSpec dataset, or evaluate a checkpoint."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from etl.errors import UserError
from etl.feature_spec import FeatureSpec

from . import checkpoint
from .args import parse_args
from .data import TrainStream, epoch_seed, load_test_series, scan_train
from .distributed import Dist, init_distributed, shutdown
from .evaluate import evaluate, evaluate_toppop
from .model import NeuMF
from .report import EpochReport


def autocast_for(dist: Dist, amp: bool):
    """fp16 on CUDA (with a GradScaler), bf16 on CPU (no scaler needed); nothing without --amp."""
    if dist.device.type == "cuda":  # TF32 matmuls: free speed for the fp32 parts on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if not amp:
        return contextlib.nullcontext
    if dist.device.type == "cpu" and dist.is_main and not cpu_has_native_bf16():
        print("warning: this CPU has no native bf16 (AVX512-BF16/AMX); PyTorch emulates it and --amp "
              "will be slower than fp32", file=sys.stderr)
    dtype = torch.float16 if dist.device.type == "cuda" else torch.bfloat16
    return lambda: torch.autocast(dist.device.type, dtype=dtype)


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def grad_scaler(dist: Dist, amp: bool):
    enabled = amp and dist.device.type == "cuda"
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


def adam(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    kwargs = dict(lr=args.learning_rate, betas=(args.beta1, args.beta2), eps=args.eps)
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused Adam is missing for this device or torch version
        return torch.optim.Adam(model.parameters(), **kwargs)


def cardinalities(spec: FeatureSpec) -> dict:
    return {"users": spec.user_cardinality, "items": spec.item_cardinality}


def build_model(arch: dict, cards: dict, dropout: float) -> NeuMF:
    return NeuMF(cards["users"], cards["items"], arch["factors"], arch["layers"], dropout, arch["variant"])


def load_spec(args, required) -> FeatureSpec:
    return FeatureSpec.from_yaml(Path(args.data) / args.feature_spec_file, required)


def run_test(args, dist: Dist) -> dict:
    spec = load_spec(args, ("test",))
    payload = checkpoint.load(args.load_checkpoint_path)
    checkpoint.check_fits(payload, args.load_checkpoint_path, cardinalities(spec))
    model = build_model(payload["meta"]["architecture"], cardinalities(spec), 0.0).to(dist.device)
    model.load_state_dict(payload["model"])
    test = load_test_series(spec, dist)
    result = evaluate(model, test, args.topk, args.valid_batch_size, dist, autocast_for(dist, args.amp))
    return {"hr": result["hr"], "ndcg": result["ndcg"], "k": args.topk, "eval_throughput": result["eval_throughput"],
            "series": test.total_series, "checkpoint": str(args.load_checkpoint_path)}


class Trainer:
    """Owns the model, optimizer and data for one training run; `fit` reads top to bottom."""

    def __init__(self, args, dist: Dist):
        self.args, self.dist = args, dist
        self.report = EpochReport(args, dist)
        self.spec = load_spec(args, ("train",))
        has_test = "test" in self.spec.source_spec and not args.no_eval
        if "test" not in self.spec.source_spec:
            self.report.say("note: the FeatureSpec has no test mapping; training without evaluation")
        self.cards = cardinalities(self.spec)
        # --init_from continues someone's model: its architecture wins over the flags.
        self.init_payload = checkpoint.load(args.init_from) if args.init_from else None
        self.arch = self.init_payload["meta"]["architecture"] if self.init_payload else checkpoint.architecture(args)
        per_rank = args.batch_size // (dist.world * (1 + args.negative_samples))
        if per_rank < 1:
            raise UserError(f"-b {args.batch_size} is too small for {dist.world} ranks x {1 + args.negative_samples} "
                            "samples per positive")
        torch.manual_seed(args.seed)
        self.model = build_model(self.arch, self.cards, args.dropout).to(dist.device)
        self.optimizer = adam(self.model, args)
        self.scaler = grad_scaler(dist, args.amp)
        self.autocast = autocast_for(dist, args.amp)
        self.start_epoch = 0
        self._restore()
        self.ddp = DistributedDataParallel(self.model) if dist.world > 1 else None
        self.popularity = torch.from_numpy(scan_train(self.spec)).to(dist.device)
        self.test = load_test_series(self.spec, dist) if has_test else None
        self.stream = TrainStream(self.spec, per_rank, args.negative_samples, dist, args.seed)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

    def _restore(self) -> None:
        args = self.args
        if args.resume:
            path = args.checkpoint_dir / checkpoint.LAST
            payload = checkpoint.load(path)
            checkpoint.check_fits(payload, path, self.cards, self.arch)
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scaler.load_state_dict(payload["scaler"])
            self.start_epoch = payload["meta"]["epoch"] + 1
            self.report.restore(payload["meta"]["report"])
        elif self.init_payload:
            checkpoint.check_fits(self.init_payload, args.init_from, self.cards)
            self.model.load_state_dict(self.init_payload["model"])

    def meta(self, epoch: int) -> dict:
        return {"epoch": epoch, "cardinalities": self.cards, "architecture": self.arch,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                "report": self.report.state()}

    def train_epoch(self, epoch: int) -> dict:
        torch.manual_seed(epoch_seed(self.args.seed, epoch, self.dist.rank))  # dropout
        self.model.train()
        acc = self.args.grads_accumulated
        net = self.ddp or self.model
        total_loss = torch.zeros((), dtype=torch.float64, device=self.dist.device)
        steps, samples, begin = 0, 0, time.perf_counter()
        bar = tqdm(self.stream.epoch(epoch, self.args.steps_per_epoch), desc=f"epoch {epoch}", unit="step",
                   leave=False, file=sys.stderr, disable=not (self.dist.is_main and sys.stderr.isatty()))
        for users, items, labels in bar:
            for j, (u, i, y) in enumerate(zip(users.chunk(acc), items.chunk(acc), labels.chunk(acc))):
                sync = j == acc - 1 or self.ddp is None
                with (contextlib.nullcontext() if sync else self.ddp.no_sync()), self.autocast():
                    loss = self.loss_fn(net(u, i).float(), y) / acc
                self.scaler.scale(loss).backward()
                total_loss += loss.detach()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            steps += 1
            samples += users.numel()
        seconds = time.perf_counter() - begin
        loss_sum, steps_all, samples_all = self.dist.sum(total_loss.item(), steps, samples)
        return {"loss": loss_sum / max(steps_all, 1), "train_seconds": seconds,
                "train_throughput": samples_all / max(seconds, 1e-9), "steps": steps}

    def fit(self) -> dict:
        args, dist = self.args, self.dist
        if self.test is not None:
            self.report.baseline(evaluate_toppop(self.popularity, self.test, args.topk, dist))
        self.report.start(self)
        for epoch in range(self.start_epoch, args.epochs):
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            if self.test is not None:
                record.update(evaluate(self.model, self.test, args.topk, args.valid_batch_size, dist, self.autocast))
            improved = self.report.add(record)
            if dist.is_main and args.checkpoint_dir:
                state = {"model": self.model.state_dict(), "meta": self.meta(epoch)}
                if improved:
                    checkpoint.save(args.checkpoint_dir / checkpoint.BEST, state)
                checkpoint.save(args.checkpoint_dir / checkpoint.LAST, {
                    **state, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()})
            if record.get("hr", 0.0) >= args.threshold:
                self.report.say(f"HR@{args.topk} {record['hr']:.4f} reached --threshold {args.threshold}: stopping")
                break
        dist.barrier()
        self.stream.close()
        return self.report.summary()


def run(argv=None) -> dict:
    """Train or evaluate as the command line would, and return the summary (for notebooks too)."""
    args = parse_args(argv)
    dist = init_distributed()
    try:
        return run_test(args, dist) if args.mode == "test" else Trainer(args, dist).fit()
    finally:
        shutdown(dist)


def main(argv=None) -> int:
    try:
        summary = run(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
