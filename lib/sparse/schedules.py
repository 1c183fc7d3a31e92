"""Sparsity schedules."""

from __future__ import annotations


def cubic_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                   initial_sparsity: float = 0.0) -> float:
    """Gradual pruning schedule of Zhu & Gupta (2017), eq. (1):

    s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_end - t_0))^3   for t_0 <= t <= t_end,

    ``s_i`` before ``t_0`` and ``s_f`` after ``t_end``. Prunes fast early, slowly late.
    """
    if not (0.0 <= initial_sparsity <= 1.0 and 0.0 <= final_sparsity <= 1.0):
        raise ValueError(f"sparsities must lie in [0, 1], got {initial_sparsity}, {final_sparsity}")
    if end_step <= begin_step:
        raise ValueError(f"end_step ({end_step}) must be > begin_step ({begin_step})")
    if step <= begin_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    progress = (step - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3
