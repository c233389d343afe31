"""python -m training.vae: train Mult-VAE (VAE-CF) on the lists layout, evaluate it (--mode test), recommend.

`python -m training.vae --data DATA_DIR` trains; `python -m training.vae recommend ...` (training/vae_recommend.py)
gives top-K items for raw user ids. `VaeTrainer.fit` reads top to bottom: the popularity baseline, then per
epoch train, validate (NDCG@K picks the best model), report, checkpoint; at the end the chosen model's test
figures. Re-runs follow `python -m training`: an earlier run's checkpoints or log are replaced only with
--overwrite, continued with --resume (every random stream derives from (seed, epoch, rank), so a resumed run
ends as an uninterrupted one).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from contract.errors import UserError, print_error

from . import checkpoint
from .data.lists import ListStream, checked_item_counts, load_heldout
from .models import build_list_model
from .models.multvae import anneal, elbo_loss
from .optim import adam
from .runtime import Runtime, shutdown, start_runtime
from .seeds import epoch_seed
from .train import refuse_to_replace_an_earlier_run
from .vae_args import parse_args
from .vae_evaluate import candidates, evaluate_checkpoint, evaluate_model, evaluate_popularity, lists_spec
from .vae_report import VaeReport


class VaeTrainer:
    """Owns the model, optimizer and data of one Mult-VAE training run."""

    def __init__(self, args, runtime: Runtime):
        self.args, self.runtime = args, runtime
        refuse_to_replace_an_earlier_run(args, runtime)
        self.report = VaeReport(args, runtime)
        self.spec = lists_spec(args.data / args.feature_spec_file, ("train",))
        mappings = self.spec.source_spec
        if "validation" not in mappings:
            self.report.chosen_on = "test"
            self.report.say("note: the FeatureSpec has no validation mapping; the best epoch is chosen on the test users"
                            if "test" in mappings else "note: no validation or test mapping; training without evaluation")
        self.users_per_rank = args.batch_size_train // runtime.world
        if self.users_per_rank < 1:
            raise UserError(f"--batch_size_train {args.batch_size_train} is smaller than the {runtime.world} ranks")
        if self.users_per_rank * runtime.world != args.batch_size_train:
            self.report.say(f"note: --batch_size_train {args.batch_size_train} is rounded down to "
                            f"{self.users_per_rank * runtime.world} users per step ({self.users_per_rank} per rank)")
        torch.manual_seed(args.seed)
        self.arch = {"variant": "multvae", "dims": list(args.layers), "activation": args.activation}
        self.model = build_list_model(self.arch, self.spec.table_sizes, args.dropout).to(runtime.device)
        self.optimizer = adam(self.model.parameters(), args.lr, args.beta1, args.beta2)
        self.scaler = runtime.grad_scaler()
        self.start_epoch, self.step, self.best_state = 0, 0, None
        self._restore()
        self.ddp = DistributedDataParallel(self.model) if runtime.world > 1 else None
        self.counts = torch.from_numpy(checked_item_counts(self.spec)).to(runtime.device)
        self.allowed = candidates(self.counts, self.spec.first_index)
        self.test = load_heldout(self.spec, "test", runtime) if "test" in mappings else None
        self.validation = load_heldout(self.spec, "validation", runtime) if "validation" in mappings else self.test
        self.stream = ListStream(self.spec, self.users_per_rank, runtime, args.seed)

    def _restore(self) -> None:
        if not self.args.resume:
            return
        path = self.args.checkpoint_dir / checkpoint.LAST
        payload = checkpoint.load(path)
        checkpoint.check_fits(payload, path, self.spec.table_sizes, self.arch)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.start_epoch, self.step = payload["meta"]["epoch"] + 1, payload["meta"]["step"]
        self.report.restore(payload["meta"]["report"])
        best = self.args.checkpoint_dir / checkpoint.BEST
        self.best_state = checkpoint.load(best)["model"] if best.exists() else None

    def meta(self, epoch: int) -> dict:
        return {"epoch": epoch, "step": self.step, "cardinalities": self.spec.table_sizes, "architecture": self.arch,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                "report": self.report.state()}

    def train_epoch(self, epoch: int) -> dict:
        args, runtime = self.args, self.runtime
        torch.manual_seed(epoch_seed(args.seed, epoch, runtime.rank))  # input dropout, latent samples
        self.model.train()
        net = self.ddp or self.model
        sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)  # loss, nll, kl
        steps, users, begin = 0, 0, time.perf_counter()
        bar = tqdm(self.stream.epoch(epoch, args.steps_per_epoch), desc=f"epoch {epoch}", unit="step", leave=False,
                   file=sys.stderr, disable=not (runtime.is_main and sys.stderr.isatty()))
        for x in bar:
            beta = anneal(self.step, args.total_anneal_steps, args.anneal_cap)
            with runtime.autocast():
                loss, parts = elbo_loss(net, self.model, x, beta, args.lam)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            sums += torch.stack([loss.detach().double(), parts["nll"].double(), parts["kl"].double()])
            self.step += 1
            steps += 1
            users += x.shape[0]
        seconds = time.perf_counter() - begin
        loss_sum, nll_sum, kl_sum, steps_all, users_all = runtime.sum(*sums.tolist(), steps, users)
        return {"loss": loss_sum / max(steps_all, 1), "nll": nll_sum / max(steps_all, 1),
                "kl": kl_sum / max(steps_all, 1), "beta": anneal(self.step, args.total_anneal_steps, args.anneal_cap),
                "steps": steps, "train_seconds": seconds, "train_throughput": users_all / max(seconds, 1e-9)}

    def evaluate(self, heldout) -> dict:
        return evaluate_model(self.model, heldout, self.allowed, self.args.top_results,
                              self.args.batch_size_validation, self.runtime)

    def save(self, epoch: int, improved: bool) -> None:
        state = {"model": self.model.state_dict(), "meta": self.meta(epoch)}
        if improved:
            checkpoint.save(self.args.checkpoint_dir / checkpoint.BEST, state)
        checkpoint.save(self.args.checkpoint_dir / checkpoint.LAST, {
            **state, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()})

    def fit(self) -> dict:
        args, runtime = self.args, self.runtime
        if self.test is not None:
            self.report.baseline(evaluate_popularity(self.counts, self.test, self.allowed, args.top_results,
                                                     args.batch_size_validation, runtime))
        self.report.start(self)
        prefix = "valid_" if self.report.chosen_on == "validation" else "test_"
        for epoch in range(self.start_epoch, args.epochs):
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            if self.validation is not None:
                found = self.evaluate(self.validation)
                record.update({(prefix + k if "@" in k else k): v for k, v in found.items()})
            improved = self.report.add(record)
            if improved:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if runtime.is_main and args.checkpoint_dir:
                self.save(epoch, improved)
        runtime.barrier()
        self.stream.close()
        if self.test is not None and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            result = self.evaluate(self.test)
            self.report.final({k: v for k, v in result.items() if "@" in k} | {"test_users": self.test.total_users})
        return self.report.summary()


def run(argv=None) -> dict:
    """Train or evaluate as the command line would, and return the summary (for notebooks too)."""
    args = parse_args(argv)
    runtime = start_runtime(args.amp)
    try:
        return evaluate_checkpoint(args, runtime) if args.mode == "test" else VaeTrainer(args, runtime).fit()
    finally:
        shutdown(runtime)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["recommend"]:
        from .vae_recommend import main as recommend

        return recommend(argv[1:])
    try:
        summary = run(argv)
    except UserError as exc:
        return print_error(exc)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
