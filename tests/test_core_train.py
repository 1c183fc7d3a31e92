"""The training loop: determinism, exact resume after SIGKILL, data order by (seed, step)."""

import pytest
import torch

from lib.core import IndexBatches, seed_everything
from lib.papers.foundations.toy import CONFIGS, kill_and_resume, train_toy


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_gives_bit_identical_training():
    cfg = CONFIGS["smoke"]
    a, ra = train_toy(cfg, seed=3, show_progress=False)
    b, rb = train_toy(cfg, seed=3, show_progress=False)
    c, _ = train_toy(cfg, seed=4, show_progress=False)
    assert torch.equal(_weights(a), _weights(b))
    assert ra.history == rb.history
    assert not torch.equal(_weights(a), _weights(c)), "another seed must give another run"


def test_in_process_stop_and_resume_is_exact(tmp_path):
    cfg = CONFIGS["smoke"]
    ref, ref_result = train_toy(cfg, seed=0, show_progress=False)
    _, partial = train_toy(cfg, seed=0, ckpt_dir=tmp_path, stop_after=25, show_progress=False)
    assert partial.steps == 25
    resumed, result = train_toy(cfg, seed=0, ckpt_dir=tmp_path, show_progress=False)
    assert result.resumed_from == 25
    assert torch.equal(_weights(ref), _weights(resumed))
    assert result.history == ref_result.history and result.evals == ref_result.evals


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = CONFIGS["smoke"]
    out = kill_and_resume(cfg, 0, tmp_path / "killed", kill_at=30, step_delay=0.02,
                          reference_dir=tmp_path / "reference")
    assert out["returncode_killed"] == -9, "the child must really have been SIGKILLed"
    assert 30 <= out["killed_at_checkpoint"] < cfg.steps
    assert out["resumed_from"] == out["killed_at_checkpoint"]
    ref = out["reference"]
    assert ref["resumed_from"] is None
    assert out["weight_bytes_sha"] == ref["weight_bytes_sha"]
    assert out["history"] == ref["history"] and out["evals"] == ref["evals"]


def test_index_batches_depend_only_on_seed_and_step():
    a, b = IndexBatches(50, 8, seed=1), IndexBatches(50, 8, seed=1)
    seq = [a.indices(s).tolist() for s in range(20)]
    assert [b.indices(s).tolist() for s in reversed(range(20))][::-1] == seq
    epoch0 = sorted(i for s in range(a.per_epoch) for i in seq[s])
    assert epoch0 == sorted(set(epoch0)) and len(epoch0) == 6 * 8, "an epoch has no repeats"
    assert seq[:6] != seq[6:12], "each epoch is reshuffled"
    assert IndexBatches(50, 8, seed=2).indices(0).tolist() != seq[0]


def test_seed_everything_validates():
    import pytest

    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)
    g1, g2 = seed_everything(7), seed_everything(7)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_a_run_with_another_config_does_not_resume_the_first_runs_checkpoint(tmp_path):
    """The review's case: same folder, another learning rate (or width) -> fresh start."""
    import dataclasses
    import warnings

    from lib.core import ForeignCheckpointWarning

    cfg = CONFIGS["smoke"]
    train_toy(cfg, seed=0, ckpt_dir=tmp_path, stop_after=30, show_progress=False)
    other_lr = dataclasses.replace(cfg, lr=cfg.lr / 2)
    ref, _ = train_toy(other_lr, seed=0, show_progress=False)
    with pytest.warns(ForeignCheckpointWarning, match="another run"):
        got, result = train_toy(other_lr, seed=0, ckpt_dir=tmp_path, show_progress=False)
    assert result.resumed_from is None and torch.equal(_weights(got), _weights(ref))
    wider = dataclasses.replace(cfg, hidden=cfg.hidden * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ForeignCheckpointWarning)
        _, result = train_toy(wider, seed=0, ckpt_dir=tmp_path, show_progress=False)
    assert result.resumed_from is None, "another width starts fresh instead of crashing"


def test_checkpointed_run_needs_its_run_key(tmp_path):
    from lib.core import train_loop

    with pytest.raises(ValueError, match="run_key"):
        train_loop(lambda s: {}, 3, state={}, ckpt_dir=tmp_path)


def test_step_limit_caps_the_loop(monkeypatch):
    from lib.core import train_loop

    monkeypatch.setenv("BOOK_MAX_STEPS", "4")
    seen = []
    result = train_loop(lambda s: seen.append(s) or {}, 100, state={}, show_progress=False)
    assert seen == [0, 1, 2, 3] and result.steps == 4
