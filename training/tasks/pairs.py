"""What every family of the pairs layout shares (NeuMF and its variants, or a new pairs family): batches of
positives with their negatives drawn on the device, -b sized to the data, micro-batches of whole
positives, DLE's sampled evaluation (each series' positive among its sampled negatives) on validation and test,
and with --eval full|both the chosen model's full-catalogue ranking of each test positive against every item its
user does not have, with the popularity baseline under the same protocols. A user's own split
(`etl prepare --test-input`: several test positives per user, no sampled negatives) is ranked against the
whole catalogue on validation and test alike, and epochs are chosen on validation Recall@K.

A pairs family subclasses `PairsTask` and brings its flags, architecture, model and all-items scoring. The
flags of the loss and its negatives (`--loss`, `--negative_sampler`, `--shared_negatives`, ...) are declared
here for every pairs family (`PairsTask.add_arguments`, which a family's own extends), and so is the loss:
`losses.py` on the logits of each positive and its negatives, plus --l2 (a family brings its own `loss` to
differ).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from contract.errors import UserError

from .. import losses
from ..data.carve import carve_pairs
from ..data.heldout_pairs import load_heldout_pairs
from ..data.negatives import POPULARITY_EXPONENT, SAMPLERS, make_sampler
from ..data.pairs import SharedBatch, TrainStream
from ..data.popularity import checked_item_counts
from ..data.test_series import load_test_series
from ..ranking import RankingSet, evaluate_ranking, popularity_scores
from ..sampled import check_topk, evaluate_popularity, evaluate_series
from ..sizing import power_of_two_per_step
from ..sparse import Lists
from .base import Batch, Task

# -b by default: about this many steps per epoch whatever the data's size (a fixed -b 65536 suits ml-1m,
# 75 steps, but leaves ml-100k 8 steps an epoch, too few to learn in 10 epochs); bounded by DLE's ml-20m
# batch and a floor where per-step overhead dominates. Evidence: bench/accuracy.py (BENCHMARKS.md).
STEPS_PER_EPOCH = 64
MIN_BATCH, MAX_BATCH = 2**10, 2**20
# Mappings whose pairs a user already has in full ranking; test negatives are sampled, so only its positives count.
KNOWN_MAPPINGS = ("train", "validation", "known")
# A user's own split: figures at the run's -k, and Recall at the benchmarks' other cutoffs.
GIVEN_METRICS = ("recall", "ndcg", "hr")
RECALL_AT = (20, 50)
# The pairs flags' values where a family's `defaults` (or `variant_defaults`) says nothing: SimpleX's margin and
# negative weight are its published settings (Mao et al. 2021; reczoo/RecBox's MF-CCL and SimpleX runs on Yelp18:
# margin 0.9, negative_weight 150 with 800-1000 negatives, the negative term a mean over them).
PAIRS_DEFAULTS = {"loss": "bce", "negative_sampler": "uniform", "popularity_exponent": POPULARITY_EXPONENT,
                  "shared_negatives": 0, "temperature": 1.0, "margin": 0.9, "negative_weight": 150.0}


def option(settings, name: str):
    """A pairs flag's value: the run's, or PAIRS_DEFAULTS' for a family that does not declare it."""
    value = getattr(settings, name, None)
    return PAIRS_DEFAULTS[name] if value is None else value


def scored_per_positive(settings) -> int:
    """Samples (scored pairs) per positive: itself and the items it is ranked against, its -n negatives or the
    --shared_negatives draw of its step."""
    return 1 + (option(settings, "shared_negatives") or settings.negative_samples)


def batch_size_for(train_positives: int, negatives: int, steps_per_epoch: int = STEPS_PER_EPOCH) -> int:
    """Samples per step (negatives included): the power of two nearest to one epoch / steps_per_epoch."""
    return power_of_two_per_step(train_positives * (1 + negatives), steps_per_epoch, MIN_BATCH, MAX_BATCH)


def batch_for(settings, positives: int, world: int, steps_per_epoch: int = STEPS_PER_EPOCH) -> Batch:
    """-b of `settings` (or, unset, sized to `positives` train positives) as whole positives on each rank.

    A sample is a scored (user, item) pair: a positive brings 1 + n of them with -n negatives, and 1 + N with
    --shared_negatives N (it is scored against the step's N shared items), so -b, its sizing to the data and
    the throughput count the same thing in both modes. Sized to the data, the batch stays within
    [MIN_BATCH, MAX_BATCH] samples: with hundreds of shared negatives MAX_BATCH binds first (2**20 / 1001 = 1,047
    positives a step), so an epoch takes more steps than STEPS_PER_EPOCH on large data, and a step's memory
    (NeuMF's MLP runs on every scored pair) stays that of DLE's largest batch."""
    per_positive = scored_per_positive(settings)
    asked, notes = settings.batch_size, ()
    if asked is None:
        asked = batch_size_for(positives, per_positive - 1, steps_per_epoch)
    per_rank = asked // (world * per_positive)
    if per_rank < 1:
        raise UserError(f"-b {asked} is too small for {world} ranks x {per_positive} samples per positive")
    used = per_rank * world * per_positive
    if settings.batch_size is None:
        notes = (f"-b {used} samples chosen for {positives:,} train positives: about "
                 f"{positives * per_positive / used:.0f} steps per epoch (pass -b to choose)",)
    elif used != asked:
        notes = (f"note: -b {asked} is rounded down to whole positives: {used} samples per step "
                 f"({per_rank} positives x {per_positive} on each of {world} rank(s))",)
    return Batch(used, per_rank, notes)


class PairsTask(Task):
    layout = "pairs"
    prepare_hint = "`etl prepare`"
    unit = "samples"
    eval_unit = "samples"
    selection_metric = "hr"
    shown_metrics = ("hr", "ndcg")
    protocols = ("auto", "sampled", "full", "both")

    @classmethod
    def steps_per_epoch(cls, settings) -> int:
        """About how many optimizer steps an epoch takes when -b is sized to the data."""
        return STEPS_PER_EPOCH

    # ---- flags -------------------------------------------------------------------------------
    @classmethod
    def default_text(cls, name: str) -> str:
        """'(default: X)', or '(default: X; Y for VARIANT)', from the family's `defaults` and `variant_defaults`."""
        own = [f"{chosen[name]} for {variant}" for variant, chosen in cls.variant_defaults.items() if name in chosen]
        return f"(default: {getattr(cls, 'defaults', {}).get(name, PAIRS_DEFAULTS[name])}" + "".join(f"; {o}" for o in own) + ")"

    @classmethod
    def add_arguments(cls, group) -> None:
        """The loss and its negatives, for every pairs family: a family's own add_arguments calls this first.
        A second pairs family shares the flags the first declared (argparse takes a flag once)."""
        def add(flag: str, **kwargs) -> None:
            declared = group._option_string_actions.get(flag)
            if declared is not None:  # another pairs family's group holds it: this family takes it too
                group._group_actions.append(declared)
            else:
                text = kwargs.pop("help")
                group.add_argument(flag, **kwargs, help=f"{text} {cls.default_text(flag[2:])}")

        add("--loss", choices=tuple(losses.LOSSES),
            help="bce: cross-entropy of each scored pair (DLE); bpr: -log sigmoid(positive - negative), mean over "
                 "each positive's negatives (Rendle et al. 2009); softmax: sampled softmax of each positive against "
                 "its negatives, logits - log q(item) for the sampler's q (Yi et al. 2019); simplex: SimpleX's cosine "
                 "contrastive loss (Mao et al. 2021): mf and gmf then score with the cosine of user and item vectors "
                 "(recorded in the checkpoint; evaluation and serving score the same), mlp and neumf take it on "
                 "tanh(logit), which ranks as the logit does")
        add("--negative_sampler", choices=SAMPLERS,
            help="negatives drawn on the device: uniform over the items (DLE), or popularity: in proportion to train "
                 "positives ** --popularity_exponent (--loss softmax corrects for it with log q; the other losses "
                 "simply see harder negatives)")
        add("--popularity_exponent", type=float, help="of the train counts, for --negative_sampler popularity")
        add("--shared_negatives", type=int, metavar="N",
            help="N > 0: one draw of N negatives per step, shared by every positive of the step and scored as a "
                 "matrix product (-n unused; -b counts 1 + N samples per positive); 0: -n negatives of each "
                 "positive's own")
        add("--temperature", type=float, help="--loss softmax: the scores are divided by it")
        add("--margin", type=float, help="--loss simplex: a negative whose similarity is below it costs nothing")
        add("--negative_weight", type=float,
            help="--loss simplex: weight of the mean over negatives (SimpleX's with 800-1000 negatives)")

    @classmethod
    def check_args(cls, args, error) -> None:
        """Refuse values of the loss's flags that cannot work (a family's own check_args calls this)."""
        if option(args, "shared_negatives") < 0:
            error("--shared_negatives must not be negative (0: -n negatives per positive)")
        if not option(args, "popularity_exponent") > 0:
            error("--popularity_exponent must be positive")
        if not option(args, "temperature") > 0:
            error("--temperature must be positive")
        if option(args, "temperature") != 1 and option(args, "loss") != "softmax":
            error(f"--temperature divides the scores of --loss softmax; this run's loss is {option(args, 'loss')}")
        if not -1 <= option(args, "margin") < 1:
            error("--margin is a cosine similarity: in [-1, 1)")
        if option(args, "negative_weight") < 0:
            error("--negative_weight must not be negative")

    def __init__(self, args, spec, runtime, say):
        super().__init__(args, spec, runtime, say)
        self.counts = torch.from_numpy(checked_item_counts(spec)).to(runtime.device)
        self._series: dict = {}
        self.given = spec.given_split
        if self.given:
            self.selection_metric = "recall"
            self.recall_at = tuple(r for r in RECALL_AT if r != args.topk)
            self.shown_metrics = GIVEN_METRICS + tuple(f"recall@{r}" for r in self.recall_at)

    def describe(self, model) -> str:
        sizes = self.spec.table_sizes
        variant = getattr(model, "variant", self.args.model)  # NeuMF's may come from a checkpoint, not --model
        return f"{variant} for users/items {sizes['users']:,}/{sizes['items']:,}"

    @classmethod
    def for_data(cls, settings, spec) -> dict:
        """--eval auto: full ranking on a user's own split (it has no sampled negatives), else DLE's sampled
        protocol."""
        if spec.given_split:
            if settings.eval in ("sampled", "both"):
                raise UserError(f"--eval {settings.eval}: {spec.base_directory} is a given split (etl prepare "
                                "--test-input) with no sampled negatives to rank among; its users' items are ranked "
                                "against the whole catalogue (--eval full, or auto)")
            return {"eval": "full"}
        return {"eval": "sampled"} if settings.eval == "auto" else {}

    # ---- training ----------------------------------------------------------------------------
    @classmethod
    def batch(cls, settings, spec, world) -> Batch:
        """-b counts samples (positives and their negatives) over all ranks, as in DLE; a rank's share is positives."""
        positives = int(checked_item_counts(spec).sum()) if settings.batch_size is None else 0
        return batch_for(settings, positives, world, cls.steps_per_epoch(settings))

    @functools.cached_property
    def sampler(self):
        """The negative sampler (--negative_sampler) over this data's items, on the device."""
        return make_sampler(option(self.args, "negative_sampler"), self.counts, option(self.args, "popularity_exponent"))

    def stream(self, per_rank: int) -> TrainStream:
        return TrainStream(self.spec, per_rank, self.args.negative_samples, self.runtime, self.args.seed,
                           self.sampler, option(self.args, "shared_negatives"))

    def loss(self, net, model, batch, step):
        """--loss on the logits of each positive and its negatives (`losses.py`), plus --l2 on the embedding rows
        the batch uses (not whole tables, as the regularised MF baselines of Rendle et al. 2020, so rare items
        are not shrunk every step).

        A batch is (users (P,), items (1 + n, P), labels) with -n negatives per positive, or a SharedBatch
        (users, items (P,), negatives (N,)): scored by one forward call either way, as (P, 1 + n) or (P, 1 + N)
        logits, column 0 the positive. softmax subtracts the sampler's log q of each column's item; simplex
        takes the model's cosine where it scores with one (`model.similarity`), else tanh(logit)."""
        name = option(self.args, "loss")
        if isinstance(batch, SharedBatch):
            users, items, negatives = batch
            scores, labels = net(users, items, negatives).float(), None
            columns = (items[:, None], negatives[None, :])  # each score's item: positive, then the shared ones
            penalty = (users, items, negatives)
        else:
            users, items, labels = batch
            scores, labels = net(users, items).float().T, labels.T
            columns = (items[:1].T, items[1:].T)
            penalty = (users, items)
        if name == "bce":
            value = losses.bce(scores, labels)
        elif name == "bpr":
            value = losses.bpr(scores)
        else:
            positive, negative = columns
            valid = negative != positive  # a negative that is the positive's own item is left out
            if name == "softmax":
                log_q = self.sampler.log_q
                value = losses.sampled_softmax(
                    scores, torch.cat([log_q[positive], log_q[negative].expand(len(scores), -1)], dim=1), valid,
                    option(self.args, "temperature"))
            else:
                similarity = scores if getattr(model, "similarity", "dot") == "cosine" else torch.tanh(scores)
                value = losses.cosine_contrastive(similarity, option(self.args, "margin"),
                                                  option(self.args, "negative_weight"), valid)
        if self.args.l2:
            value = value + self.args.l2 * model.embedding_penalty(*penalty).float()
        return value, {}

    def micro_batches(self, batch, n: int):
        """Whole columns (a positive and its negatives), each slice weighted by its share of the samples; with
        shared negatives, slices of the positives, each with all the shared negatives."""
        if isinstance(batch, SharedBatch):
            users, items, negatives = batch
            return [(SharedBatch(u, i, negatives), len(u) / len(users)) for u, i in zip(users.chunk(n), items.chunk(n))]
        users, items, labels = batch
        return [((u, i, y), y.numel() / labels.numel())
                for u, i, y in zip(users.chunk(n), items.chunk(n, dim=-1), labels.chunk(n, dim=-1))]

    def batch_units(self, batch) -> int:
        """Scored pairs: 1 + n per positive, or 1 + N with shared negatives."""
        if isinstance(batch, SharedBatch):
            return len(batch.users) * (1 + len(batch.negatives))
        return batch[2].numel()

    # ---- evaluation --------------------------------------------------------------------------
    carve_validation = staticmethod(carve_pairs)

    def series(self, split: str):
        if split not in self._series:
            check_topk(self.args.topk, self.spec)
            self._series[split] = load_test_series(self.spec, self.runtime, split)
        return self._series[split]

    def heldout(self, split: str):
        """A given split's ranking set (validation or test), this rank's share of its users."""
        if "heldout" not in self._series:
            splits = tuple(s for s in ("validation", "test") if s in self.spec.source_spec)
            self._series["heldout"] = load_heldout_pairs(self.spec, self.runtime, splits=splits, shard=True)
        return self._series["heldout"].splits[split]

    def rank_all(self, score_users, split: str) -> dict:
        return evaluate_ranking(score_users, self.heldout(split), self.candidates(self.counts, self.spec.first_index),
                                self.args.topk, max(1, self.args.valid_batch_size // self.spec.item_cardinality),
                                self.runtime, self.recall_at)

    def evaluate(self, model, split: str) -> dict:
        if self.given:
            was_training = model.training
            model.eval()
            result = self.rank_all(lambda users, fold_in: self.score_users_amp(model, users), split)
            model.train(was_training)
            return result
        if self.args.eval == "full" and split == "test":
            return {}  # only the full-ranking protocol was asked for
        was_training = model.training
        model.eval()
        result = evaluate_series(model, self.series(split), self.args.topk, self.args.valid_batch_size, self.runtime)
        model.train(was_training)
        return result

    def evaluated(self, split: str) -> int:
        if self.given:
            return self.heldout(split).total_users
        return self.ranking_set().total_users if self.args.eval == "full" and split == "test" else \
            self.series(split).total_series

    def baseline(self, split: str) -> dict:
        if self.given:
            result = self.rank_all(popularity_scores(self.counts), split)
            return {key: value for key, value in result.items() if not key.startswith("eval_")}
        result = {} if self.args.eval == "full" and split == "test" else \
            evaluate_popularity(self.counts, self.series(split), self.args.topk, self.runtime)
        if split == "test" and self.args.eval != "sampled":
            full = evaluate_ranking(popularity_scores(self.counts), self.ranking_set(), self.candidates(
                self.counts, self.spec.first_index), self.args.topk, 1024, self.runtime)
            result.update({f"full_{key}": full[key] for key in ("hr", "ndcg")})
        return result

    def extra_test(self, model) -> dict:
        if self.args.eval == "sampled" or self.given:  # a given split's test is already the full ranking
            return {}
        was_training = model.training
        model.eval()
        result = evaluate_ranking(lambda users, fold_in: self.score_users_amp(model, users), self.ranking_set(),
                                  self.candidates(self.counts, self.spec.first_index), self.args.topk,
                                  max(1, self.args.valid_batch_size // self.spec.item_cardinality), self.runtime)
        model.train(was_training)
        return {f"full_{key}": value for key, value in result.items() if key != "eval_throughput"}

    def score_users_amp(self, model, users):
        with self.runtime.autocast():
            return self.score_users(model, users, None)

    def ranking_set(self) -> RankingSet:
        """Each test positive against the whole catalogue minus what its user has (train, validation, known);
        this rank's share of the users."""
        if "ranking" in self._series:
            return self._series["ranking"]
        spec, n_items = self.spec, self.spec.item_cardinality
        test = spec.read("test")
        test = test[test[spec.label_feature] == 1]
        users, positives = (test[f].to_numpy(np.int64) for f in (spec.user_feature, spec.item_feature))
        share = np.array_split(np.arange(len(users)), self.runtime.world)[self.runtime.rank]
        keys = []
        for mapping in KNOWN_MAPPINGS:
            if mapping in spec.source_spec:
                frame = spec.read(mapping)
                if mapping == "validation":
                    frame = frame[frame[spec.label_feature] == 1]
                keys.append(frame[spec.user_feature].to_numpy(np.int64) * n_items
                            + frame[spec.item_feature].to_numpy(np.int64))
        known = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
        device = self.runtime.device
        have = Lists.from_keys(known, users[share], n_items, device)
        self._series["ranking"] = RankingSet(
            torch.from_numpy(users[share]).to(device), have, have,
            Lists.from_numpy(np.arange(len(share) + 1), positives[share], device), n_items, len(users))
        return self._series["ranking"]

    # ---- all-items scoring -------------------------------------------------------------------
    @classmethod
    def score_pairs(cls, model, users, items, fold_in):
        """One forward pass over the pairs: no all-items grid."""
        return model(users, items)
