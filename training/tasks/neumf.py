"""NeuMF, GMF, MLP (DeepLearningExamples' NCF) and MF on the pairs layout (`pairs.py` is what they share).

Batches are positives with `-n` negatives each (or --shared_negatives for the whole step) drawn on the device;
the loss is --loss (`pairs.py`, `losses.py`: BCE on the logits by default) plus --l2 on the embedding rows the
batch uses. --loss simplex makes mf and gmf score with the cosine (`NeuMF(similarity=)`, recorded in the
architecture); mlp and neumf keep their logit and take SimpleX's loss on tanh(logit).

Evaluation is DLE's sampled protocol (each series' positive among its sampled negatives) on validation and test,
and with --eval full|both the chosen model's full-catalogue ranking of each test positive against every item its
user does not have.
"""
from __future__ import annotations

import time

import torch

from contract.errors import UserError

from .. import checkpoint
from ..models.neumf import VARIANTS, NeuMF, architecture_of, from_pretrained
from . import pretrain
from .base import path
from .pairs import PAIRS_DEFAULTS, STEPS_PER_EPOCH, PairsTask, option
from .pretrain import PART_EPOCHS

# --model mf: a step of a dot product costs a fraction of NeuMF's, and it learns best from many small ones
# (1,024 an epoch: -b 8192 on ml-1m, chosen on validation of real MovieLens, bench/NOTES.md)
MF_STEPS_PER_EPOCH = 1024
ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


class NeuMFTask(PairsTask):
    variants = VARIANTS
    title = "NeuMF"
    compared = ("neumf", "mf")
    flag_help = {"batch_size": "samples (a positive and each item it is scored against count: its -n negatives, or the "
                               "--shared_negatives draw), sized to about 64 steps per epoch "
                               f"({MF_STEPS_PER_EPOCH} for mf) within 2^10-2^20 samples",
                 "valid_batch_size": "samples", "layers": "MLP layer sizes", "threshold": "HR@K",
                 "dropout": "MLP dropout", "l2": "L2 on the embedding rows each batch uses (squared norms, batch mean)",
                 "eval": "auto: on a given split (etl prepare --test-input) every user's validation and test items "
                         "ranked against the whole catalogue, epochs chosen on Recall@K; else sampled: K among each "
                         "series' sampled negatives (DLE NCF, epochs and test); full: the chosen model's test "
                         "positives ranked against the whole catalogue instead; both: both test protocols"}
    recipe = "DLE NCF on ml-20m: -b 1048576 -l 0.0045 --beta1 0.25 --beta2 0.5 --layers 256 256 128 64"
    # Chosen on validation of real MovieLens (the NCF ml-1m split, ml-100k) against the earlier
    # -f 32 --layers 128 64 32 -n 4 --l2 0: a wider model, regularised, with more negatives per positive
    # (bench/NOTES.md, "Tuning on real MovieLens"); the batch is sized to the data (batch_size_for).
    FACTORS, NEGATIVES = 64, 8
    defaults = {"epochs": 10, "learning_rate": 0.005, "layers": [256, 128, 64], "dropout": 0.0, "topk": 10,
                "valid_batch_size": 2**18, "l2": 1e-4, "eval": "auto",
                "factors": FACTORS, "negative_samples": NEGATIVES, **PAIRS_DEFAULTS, "pretrain": False}
    # mf: longer, with smaller steps and an L2 that binds (its head is fixed); chosen on validation of the NCF
    # ml-1m split, ml-100k and the ml-1m pairs (bench/NOTES.md, "A dot product: --model mf")
    variant_defaults = {"mf": {"epochs": 30, "learning_rate": 0.001, "l2": 1e-3}}

    @classmethod
    def add_arguments(cls, group) -> None:
        super().add_arguments(group)  # --loss and its negatives
        group.add_argument("-f", "--factors", type=int, help=f"GMF factors (default: {cls.FACTORS})")
        group.add_argument("-n", "--negative_samples", type=int,
                           help=f"negatives per positive, without --shared_negatives (default: {cls.NEGATIVES})")
        group.add_argument("--pretrained_gmf", type=path, help="NeuMF from this GMF (or MF) checkpoint and --pretrained_mlp")
        group.add_argument("--pretrained_mlp", type=path, help="NeuMF from this MLP checkpoint and --pretrained_gmf")
        group.add_argument("--alpha", type=float,
                           help="weight of the GMF head in the pretrained NeuMF (default: the best of 0, 0.1, ..., 1 "
                                "on validation; 0.5 without one)")
        group.add_argument("--pretrain", action="store_true", default=None,
                           help=f"train GMF, then MLP ({PART_EPOCHS} x -e epochs each, Adam), then NeuMF from both "
                                f"(-e / {PART_EPOCHS * 2} epochs, plain SGD), under CHECKPOINT_DIR/{{gmf,mlp,neumf}}")

    @classmethod
    def check_args(cls, args, error) -> None:
        super().check_args(args, error)
        for name in ("factors", "negative_samples"):
            if getattr(args, name) < 1:
                error(f"--{name} must be at least 1")
        if min(args.layers) < 1 or args.layers[0] % 2 or len(args.layers) < 2:
            error("--layers: at least two sizes, all positive, the first even (it is the user and item vectors "
                  "side by side)")
        if args.alpha is not None and not 0 <= args.alpha <= 1:
            error("--alpha must be in [0, 1]")
        if bool(args.pretrained_gmf) != bool(args.pretrained_mlp):
            error("--pretrained_gmf and --pretrained_mlp come together")
        if args.pretrained_gmf and (args.init_from or args.resume or args.pretrain or args.model != "neumf"):
            error("--pretrained_gmf/--pretrained_mlp build a new NeuMF: not with --init_from, --resume, --pretrain "
                  "or another --model")
        if args.pretrain and args.optimizer != "adam":
            error("--pretrain picks its optimizers (Adam for GMF and MLP, plain SGD to fine-tune NeuMF): "
                  "not with --optimizer")
        if args.pretrain and (args.mode != "train" or not args.checkpoint_dir or args.resume or args.init_from
                              or args.model != "neumf"):
            error("--pretrain trains neumf from scratch in three stages: it needs --checkpoint_dir, and not --resume, "
                  "--init_from or another --model")
        if args.pretrain and option(args, "loss") == "simplex":
            error("--pretrain blends a GMF into NeuMF's dot-product GMF branch; --loss simplex trains a cosine GMF: "
                  "not together")

    @classmethod
    def drive(cls, settings, fit):
        return pretrain.drive(settings, fit) if settings.pretrain else fit(settings)

    def __init__(self, args, spec, runtime, say):
        super().__init__(args, spec, runtime, say)
        self.pretrained = ([self.read_part(p) for p in (args.pretrained_gmf, args.pretrained_mlp)]
                           if getattr(args, "pretrained_gmf", None) else None)

    @staticmethod
    def read_part(where) -> dict:
        payload = checkpoint.read(where)
        if payload["meta"] is None:
            raise UserError(f"--pretrained_gmf/--pretrained_mlp {where} is a bare state_dict; give a gmf (or mf) and "
                            "an mlp checkpoint of `python -m training`")
        return payload

    # ---- model -------------------------------------------------------------------------------
    def architecture(self) -> dict:
        if self.pretrained:
            gmf, mlp = (payload["meta"]["architecture"] for payload in self.pretrained)
            if gmf["variant"] not in ("gmf", "mf") or mlp["variant"] != "mlp":
                raise UserError(f"--pretrained_gmf/--pretrained_mlp are a {gmf['variant']} and an {mlp['variant']} "
                                "checkpoint; expected a gmf (or mf) and an mlp")
            if gmf.get("similarity", "dot") != "dot":
                raise UserError(f"--pretrained_gmf {self.args.pretrained_gmf} scores with the {gmf['similarity']} "
                                "(trained with --loss simplex); NeuMF's GMF branch is a dot product")
            return {"variant": "neumf", "factors": gmf["factors"], "layers": mlp["layers"]}
        arch = {"variant": self.args.model, "factors": self.args.factors, "layers": list(self.args.layers)}
        if option(self.args, "loss") == "simplex" and self.args.model in ("gmf", "mf"):
            arch["similarity"] = "cosine"  # recorded only when not the dot product, as every earlier checkpoint is
        return arch

    @classmethod
    def build(cls, arch, sizes, dropout):
        """An architecture without "similarity" (every checkpoint before it, DLE's state_dicts) is a dot product."""
        return NeuMF(sizes["users"], sizes["items"], arch["factors"], arch["layers"], dropout, arch["variant"],
                     arch.get("similarity", "dot"))

    @classmethod
    def from_state_dict(cls, state):
        try:
            return architecture_of(state)
        except KeyError:
            return None

    def initialise(self, model):
        if not self.pretrained:
            return None
        for payload, where in zip(self.pretrained, (self.args.pretrained_gmf, self.args.pretrained_mlp)):
            checkpoint.check_fits(payload, where, self.spec.table_sizes)
        gmf, mlp = (payload["model"] for payload in self.pretrained)
        alpha = self.choose_alpha(model, gmf, mlp) if self.args.alpha is None else self.args.alpha
        model.load_state_dict(from_pretrained(gmf, mlp, alpha))
        return {"alpha": alpha}

    def choose_alpha(self, model, gmf: dict, mlp: dict) -> float:
        """The blend of the two heads with the best validation figure (0.5 without validation).

        The blend is most of what pretraining gives (bench/NOTES.md): the NCF ml-1m split's validation
        HR@10 went 0.8219 / 0.8321 / 0.8353 at alpha 0.3 / 0.5 / 0.7, and fine-tuning moved it by < 0.001.
        """
        if self.args.no_eval or "validation" not in self.spec.source_spec:
            return 0.5
        figures, begin = {}, time.perf_counter()
        for alpha in ALPHAS:
            model.load_state_dict(from_pretrained(gmf, mlp, alpha))
            figures[alpha] = self.evaluate(model, "validation")[self.selection_metric]
        best = max(figures, key=lambda alpha: (figures[alpha], -abs(alpha - 0.5)))
        self.initialise_seconds += time.perf_counter() - begin
        self.say(f"--alpha {best} chosen on validation {self.selection_metric.upper()}@{self.args.topk} among "
                 + " ".join(f"{alpha}:{figure:.4f}" for alpha, figure in figures.items()))
        return best

    # ---- training ----------------------------------------------------------------------------
    @classmethod
    def steps_per_epoch(cls, settings) -> int:
        return MF_STEPS_PER_EPOCH if settings.model == "mf" else STEPS_PER_EPOCH

    # ---- all-items scoring -------------------------------------------------------------------
    @staticmethod
    def score_users(model, users, fold_in):
        """NeuMF scores from the user's row alone: the history is what it was trained on."""
        return model.score_grid(users, torch.arange(model.item_embed.shape[0], device=users.device))
