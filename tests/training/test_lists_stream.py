"""The lists stream: Merlin loader batches as CSR on the device, every training user once per epoch, equal
steps on every rank, held-out users split over ranks, train lists in fewer files than ranks."""

import torch

from contract.feature_spec import FeatureSpec
from training.data.lists import ListStream, load_heldout
from training.data.popularity import checked_item_counts
from training.runtime import Runtime

from ..etl.test_lists import lists_of


def _rows(x: torch.Tensor) -> list:
    crow, cols = x.crow_indices(), x.col_indices()
    return [tuple(cols[crow[r]:crow[r + 1]].tolist()) for r in range(x.shape[0])]


def test_an_epoch_is_every_training_user_once_as_csr(prepared_lists):
    spec = FeatureSpec.from_yaml(prepared_lists)
    stream = ListStream(spec, users_per_rank=64, runtime=Runtime(), seed=0)
    batches = list(stream.epoch(0))
    stream.close()
    assert all(x.layout == torch.sparse_csr and x.shape[1] == spec.item_cardinality for x in batches)
    assert [x.shape[0] for x in batches[:-1]] == [64] * (len(batches) - 1)
    train = sorted(tuple(sorted(v[0])) for v in lists_of(spec, "train").values())
    assert sorted(row for x in batches for row in _rows(x)) == train
    assert all(torch.all(x.values() == 1) for x in batches)
    again = [_rows(x) for x in ListStream(spec, 64, Runtime(), seed=0).epoch(0)]
    assert again == [_rows(x) for x in batches], "an epoch's order is not reproducible from the seed"
    other = [_rows(x) for x in ListStream(spec, 64, Runtime(), seed=0).epoch(1)]
    assert other != again, "every epoch has the same order"
    counts = checked_item_counts(spec)
    assert counts.sum() == sum(len(r) for r in train) and counts[:3].sum() == 0


def test_held_out_users_are_split_over_ranks(prepared_lists):
    spec = FeatureSpec.from_yaml(prepared_lists)
    shares = [load_heldout(spec, "validation", Runtime(rank=r, world=2)) for r in range(2)]
    users = [u for s in shares for u in s.users.tolist()]
    assert len(users) == len(set(users)) == 40 == shares[0].total_users
    expected = lists_of(spec, "validation")
    for share in shares:
        n_items = spec.item_cardinality
        fold_in, target = share.fold_in.rows(0, len(share.users), n_items), share.target.rows(0, len(share.users), n_items)
        for r, user in enumerate(share.users.tolist()):
            assert _rows(fold_in)[r] == tuple(sorted(expected[user][0]))
            assert _rows(target)[r] == tuple(sorted(expected[user][1]))


def test_fewer_files_than_ranks_are_rewritten(prepared_lists, tmp_path):
    import yaml

    raw = yaml.safe_load((prepared_lists / "feature_spec.yaml").read_text())
    raw["source_spec"]["train"][0]["files"] = [str(prepared_lists / raw["source_spec"]["train"][0]["files"][0])]
    for mapping in ("validation", "test", "known"):
        for chunk in raw["source_spec"][mapping]:
            chunk["files"] = [str(prepared_lists / f) for f in chunk["files"]]
    (tmp_path / "feature_spec.yaml").write_text(yaml.safe_dump(raw))
    spec = FeatureSpec.from_yaml(tmp_path)
    stream = ListStream(spec, 8, Runtime(rank=1, world=3), seed=0)
    assert len(stream.files) == 8 and stream._scratch is not None
    stream.close()
    assert not stream._scratch.folder.exists()
