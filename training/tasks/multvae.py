"""Mult-VAE (DeepLearningExamples' VAE-CF) on the lists layout.

Batches are users' item lists as CSR multi-hot rows; the loss is the negative ELBO with the KL weight
annealed over optimizer steps (plus --l2 x |W|^2). Evaluation folds in each held-out user's fold-in
list and ranks the whole catalogue against the target list (`ranking.py`), with the popularity
baseline on the same users; NDCG@K picks the best epoch, as in Liang et al. and DLE. On a lists folder built
from a user's own split (`python -m training.compare`, metadata.protocol.split given), Recall@K over all of a
user's targets picks it instead, as for every family on that split.
"""
from __future__ import annotations

import math

import torch

from contract.errors import UserError

from ..data.carve import carve_lists
from ..data.lists import ListStream, count_rows, load_heldout
from ..data.lists_from_pairs import write_lists_folder
from ..data.popularity import checked_item_counts
from ..models.multvae import ACTIVATIONS, VARIANTS, MultVAE, anneal, elbo_loss
from ..ranking import RankingSet, evaluate_ranking, popularity_scores
from ..sizing import power_of_two_per_step
from ..sparse import Lists
from .base import Batch, Task

RECALL_AT = (20, 50)  # DLE VAE-CF's Recall@20 and Recall@50, reported beside the -k figures
ANNEAL_STEPS, ANNEAL_CAP, ACTIVATION = 2000, 0.2, "tanh"
# -b by default: about this many steps per epoch (DLE's 500 users per step leaves data of a few hundred users one
# step an epoch, and the KL weight a few hundredths of its cap at the end), between MIN_USERS and DLE's 500.
STEPS_PER_EPOCH, MIN_USERS, MAX_USERS = 32, 32, 500


def users_per_step_for(train_users: int) -> int:
    """Users per step: the power of two nearest to train_users / STEPS_PER_EPOCH, within [MIN_USERS, MAX_USERS]."""
    return power_of_two_per_step(train_users, STEPS_PER_EPOCH, MIN_USERS, MAX_USERS)


class MultVAETask(Task):
    variants = VARIANTS
    layout = "lists"
    prepare_hint = "`etl prepare --split users`"
    unit = "users"
    eval_unit = "users"
    selection_metric = "ndcg"
    shown_metrics = ("ndcg", "recall@20", "recall@50")
    protocols = ("full",)
    needs_history = True
    title = "Mult-VAE"
    compared = ("multvae",)
    loss_parts = ("nll", "kl")
    schedule_parts = ("beta",)
    defaults = {"epochs": 60, "learning_rate": 0.001, "layers": [600, 200], "dropout": 0.5, "topk": 100,
                "valid_batch_size": 2000, "l2": 0.0, "eval": "full",
                "total_anneal_steps": ANNEAL_STEPS, "anneal_cap": ANNEAL_CAP, "activation": ACTIVATION}
    flag_help = {"batch_size": f"users, sized to about {STEPS_PER_EPOCH} steps per epoch within {MIN_USERS}-{MAX_USERS}",
                 "valid_batch_size": "users", "layers": "encoder sizes, the last the latent size",
                 "threshold": "NDCG@K", "dropout": "input dropout", "l2": "L2 on the weight matrices",
                 "eval": "ranks the whole catalogue only"}
    recipe = ("DLE VAE-CF on ml-20m (GPUs): --model multvae -b 24576 -l 0.004 --beta2 0.9 --total_anneal_steps 15000 "
              "--anneal_cap 0.1 -e 400 --amp")

    @classmethod
    def add_arguments(cls, group) -> None:
        group.add_argument("--total_anneal_steps", type=int,
                           help=f"optimizer steps over which the KL weight grows linearly from 0 to --anneal_cap "
                                f"(default: {ANNEAL_STEPS})")
        group.add_argument("--anneal_cap", type=float, help=f"largest KL weight, beta (default: {ANNEAL_CAP})")
        group.add_argument("--activation", choices=tuple(ACTIVATIONS), help=f"(default: {ACTIVATION})")

    @classmethod
    def check_args(cls, args, error) -> None:
        if args.total_anneal_steps < 0 or args.anneal_cap < 0:
            error("--total_anneal_steps and --anneal_cap must not be negative")
        if min(args.layers) < 1:
            error("--layers: sizes must be positive")

    def __init__(self, args, spec, runtime, say):
        super().__init__(args, spec, runtime, say)
        self.counts = torch.from_numpy(checked_item_counts(spec)).to(runtime.device)
        self.allowed = self.candidates(self.counts, spec.first_index)
        self._heldout: dict = {}
        self.given = spec.given_split
        self.recall_at = RECALL_AT
        if self.given:  # the protocol of the pairs families on a given split (`PairsTask`)
            self.selection_metric = "recall"
            self.recall_at = tuple(r for r in RECALL_AT if r != args.topk)
            self.shown_metrics = ("recall", "ndcg", *(f"recall@{r}" for r in self.recall_at))

    def architecture(self) -> dict:
        return {"variant": "multvae", "dims": list(self.args.layers), "activation": self.args.activation}

    @classmethod
    def build(cls, arch, sizes, dropout):
        return MultVAE(sizes["items"], arch["dims"], dropout, arch["activation"])

    @classmethod
    def compare_flags(cls, spec_file, spec, data, scratch):
        """The same train positives, grouped per user."""
        return ["--data", write_lists_folder(data, spec, scratch)]

    def describe(self, model) -> str:
        n = self.spec.item_cardinality
        dims = "-".join(map(str, [n, *model.dims, *reversed(model.dims[:-1]), n]))
        return f"Mult-VAE {dims}"

    # ---- training ----------------------------------------------------------------------------
    @classmethod
    def batch(cls, settings, spec, world) -> Batch:
        """-b counts users over all ranks; by default sized to the number of training users."""
        asked, notes = settings.batch_size, []
        if asked is None:
            users = count_rows(spec, "train")
            asked = users_per_step_for(users)
            notes.append(f"-b {asked} users chosen for {users:,} training users: about "
                         f"{math.ceil(users / asked)} steps per epoch (pass -b to choose)")
        per_rank = asked // world
        if per_rank < 1:
            raise UserError(f"-b {asked} users is smaller than the {world} ranks")
        if per_rank * world != asked:
            notes.append(f"note: -b {asked} is rounded down to {per_rank * world} users per step ({per_rank} per rank)")
        return Batch(per_rank * world, per_rank, tuple(notes))

    def stream(self, per_rank: int) -> ListStream:
        return ListStream(self.spec, per_rank, self.runtime, self.args.seed)

    def beta(self, step: int) -> float:
        return anneal(step, self.args.total_anneal_steps, self.args.anneal_cap)

    def loss(self, net, model, x, step):
        loss, parts = elbo_loss(net, model, x, self.beta(step), self.args.l2)
        return loss, parts

    def micro_batches(self, x, n: int):
        """Whole users (CSR rows), each slice weighted by its share of the users (the loss is a mean over users)."""
        rows = Lists(x.crow_indices(), x.col_indices())
        bounds = torch.arange(x.shape[0]).chunk(n)
        return [(rows.rows(int(b[0]), int(b[-1]) + 1, x.shape[1]), len(b) / x.shape[0]) for b in bounds if len(b)]

    def batch_units(self, x) -> int:
        return x.shape[0]

    def epoch_parts(self, step: int) -> dict:
        return {"beta": self.beta(step)}

    # ---- evaluation --------------------------------------------------------------------------
    carve_validation = staticmethod(carve_lists)

    def heldout(self, split: str) -> RankingSet:
        if split not in self._heldout:
            held = load_heldout(self.spec, split, self.runtime)
            self._heldout[split] = RankingSet(held.users, held.fold_in, held.fold_in, held.target,
                                              self.spec.item_cardinality, held.total_users, recall_of_all=self.given)
        return self._heldout[split]

    def _rank(self, score_users, split: str) -> dict:
        return evaluate_ranking(score_users, self.heldout(split), self.allowed, self.args.topk,
                                self.args.valid_batch_size, self.runtime, self.recall_at)

    def evaluate(self, model, split: str) -> dict:
        was_training = model.training
        model.eval()

        def score(users, fold_in):
            with self.runtime.autocast():
                return self.score_users(model, users, fold_in)

        result = self._rank(score, split)
        model.train(was_training)
        return result

    def evaluated(self, split: str) -> int:
        return self.heldout(split).total_users

    def baseline(self, split: str) -> dict:
        result = self._rank(popularity_scores(self.counts), split)
        return {key: value for key, value in result.items() if not key.startswith("eval_")}

    # ---- all-items scoring -------------------------------------------------------------------
    @staticmethod
    def score_users(model, users, fold_in):
        """Mult-VAE folds in the user's history: the logits of its decoder from the encoded mean."""
        return model(fold_in)[0]

    @staticmethod
    def candidates(counts, first_index):
        """Items some training user has: the decoder has never been asked to rank any other."""
        mask = counts > 0
        mask[:first_index] = False
        return mask
