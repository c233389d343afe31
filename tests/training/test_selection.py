"""The loop's choice of the model: the best validation figure wins, a tie keeps the earlier epoch, starting
weights must be beaten, nothing evaluated keeps the last epoch; test figures are named after the choice."""
from training.selection import START_EPOCH, Selection, with_test_figures


def record(epoch: int, hr: float | None, elapsed: float = 1.0) -> dict:
    found = {"epoch": epoch, "loss": 0.5, "elapsed_seconds": elapsed}
    return found if hr is None else {**found, "valid_hr": hr, "valid_ndcg": hr / 2, "eval_seconds": 0.1}


def test_the_best_validation_figure_is_chosen_and_a_tie_keeps_the_earlier_epoch():
    choice = Selection("validation", "hr")
    assert choice.best == {"best_epoch": None, "time_to_best": None, "selected_on": None}  # nothing chosen yet
    assert choice.key == "valid_hr" and choice.prefix == "valid_"
    assert [choice.consider(record(e, hr, elapsed=e + 1.0)) for e, hr in enumerate((0.5, 0.7, 0.7, 0.6))] == \
        [True, True, False, False]
    assert choice.best == {"best_epoch": 1, "time_to_best": 2.0, "selected_on": "validation", "best_valid_hr": 0.7,
                           "best_valid_ndcg": 0.35}


def test_starting_weights_must_be_beaten():
    choice = Selection("validation", "hr")
    choice.start({"valid_hr": 0.8, "valid_ndcg": 0.4, "eval_seconds": 2.0, "hr": 0.9}, elapsed=3.0)
    # a test figure never enters the choice
    assert choice.best == {"best_epoch": START_EPOCH, "time_to_best": 3.0, "selected_on": "validation",
                           "best_valid_hr": 0.8, "best_valid_ndcg": 0.4}
    assert not choice.consider(record(0, 0.79)) and choice.best["best_epoch"] == START_EPOCH
    assert choice.consider(record(1, 0.81)) and choice.best["best_epoch"] == 1


def test_without_evaluation_every_epoch_is_the_latest_choice():
    choice = Selection(None, "hr")
    assert choice.key == "hr" and choice.consider(record(0, None)) and choice.consider(record(1, None))
    assert choice.best["best_epoch"] == 1 and choice.best["selected_on"] is None


def test_the_threshold_reads_the_choosing_figure():
    choice = Selection("validation", "ndcg")
    assert choice.reached({"valid_ndcg": 0.5}, 0.5) and not choice.reached({"valid_ndcg": 0.49}, 0.5)
    assert not choice.reached({"ndcg": 0.9}, 0.5)  # a test figure never stops training


def test_an_older_checkpoints_choice_is_read_under_todays_keys():
    choice = Selection("validation", "ndcg")
    choice.restore({"best_epoch": 3, "chosen_on": "validation", "valid_ndcg@100": 0.4, "test_ndcg@100": 0.38})
    assert choice.best == {"best_epoch": 3, "selected_on": "validation", "best_valid_ndcg": 0.4, "best_ndcg": 0.38}


def test_test_figures_are_named_best_and_other_protocols_keep_their_names():
    tested = with_test_figures({"best_epoch": 2}, {"hr": 0.6, "full_hr": 0.1, "eval_seconds": 1.0})
    assert tested == {"best_epoch": 2, "best_hr": 0.6, "full_hr": 0.1}
