"""Worker for the omni-sparsity DDP test (importable, so spawned processes can run it)."""

import torch

from lib.core import distributed

SUBNETS = [(0.0, 0.0, 0.0), (0.5, 0.9, 0.2), (0.3, 0.3, 0.7)]


def supernet_steps(steps: int, seed: int) -> list[float]:
    """``steps`` omni-supernet updates; under DDP each rank takes half of every batch."""
    from lib.asr import ASRModel, collate, small_rnnt_config
    from lib.papers.omni_sparsity import attach_dense_masks, omni_supernet_step, weight_groups

    rank, world = distributed.init_distributed("gloo")
    torch.manual_seed(seed)
    config = small_rnnt_config(6, encoding_dim=32, time_reduction_input_dim=8, num_heads=2,
                               ffn_dim=32, num_layers=3, symbol_embedding_dim=16, dropout=0.0)
    model = ASRModel(config)
    groups = weight_groups(model, "encoder", "block")
    attach_dense_masks(groups)
    ddp = distributed.wrap_ddp(model) if world > 1 else None
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        lengths = torch.randint(30, 90, (4,), generator=g)
        feats = [torch.randn(int(n), 80, generator=g) for n in lengths]
        labels = [[1, 2], [3], [0, 4, 4], [2]]
        mine = range(4) if world == 1 else range(rank * 2, rank * 2 + 2)
        batch = collate([feats[i] for i in mine], [labels[i] for i in mine])
        omni_supernet_step(model, groups, batch, SUBNETS, opt, ddp=ddp, clip_grad_norm=1e9)
    out = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    distributed.cleanup()
    return out
