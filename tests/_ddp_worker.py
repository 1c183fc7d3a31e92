"""Worker for the DDP equivalence test (importable, so spawned processes can run it)."""

import torch

from lib.core import distributed


def train_linear(steps: int, global_batch: int, seed: int) -> list[float]:
    """SGD on a linear model; each rank takes its shard of the same global batch."""
    rank, world = distributed.init_distributed("gloo")
    torch.manual_seed(seed)
    model = torch.nn.Linear(5, 3)
    data_g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(steps, global_batch, 5, generator=data_g)
    y = torch.randn(steps, global_batch, 3, generator=data_g)
    ddp = distributed.wrap_ddp(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        opt.zero_grad()
        xb, yb = distributed.shard(x[step], rank, world), distributed.shard(y[step], rank, world)
        torch.nn.functional.mse_loss(ddp(xb), yb).backward()  # DDP averages over ranks
        opt.step()
    out = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    distributed.cleanup()
    return out
