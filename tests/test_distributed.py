import pytest
import torch

from lib.core import distributed
from tests._ddp_worker import train_linear


def test_two_gloo_processes_equal_one_process_on_the_same_global_batch():
    single = torch.tensor(train_linear(steps=5, global_batch=8, seed=0))
    results = distributed.launch(train_linear, 2, 5, 8, 0)
    assert sorted(results) == [0, 1]
    rank0, rank1 = (torch.tensor(results[r]) for r in (0, 1))
    assert torch.equal(rank0, rank1), "DDP replicas must stay identical"
    # the gradient all-reduce sums in another order than one process: float round-off only
    assert torch.allclose(rank0, single, atol=1e-6, rtol=0)
    assert not torch.allclose(single, torch.tensor(train_linear(5, 8, 1)), atol=1e-3)


def test_shard_splits_evenly_or_refuses():
    batch = torch.arange(8)
    assert distributed.shard(batch, 1, 2).tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="does not split"):
        distributed.shard(torch.arange(7), 0, 2)
    assert distributed.rank_and_world() == (0, 1)
