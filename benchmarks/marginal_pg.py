"""Speed of the marginal policy gradient pieces on this machine (prints figures).

    python benchmarks/marginal_pg.py

Platform2D steps per second (native NumPy vector env vs gymnasium's SyncVectorEnv), the cost
of the angular Gaussian log-probability with its backward pass against the plain Gaussian
one, and A2C updates per second for each Platform2D method. Timings on a shared CPU are
upper bounds.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lib.papers import marginal_pg as mpg
from lib.rl import ESTIMATORS, A2CSettings, DirectionalHead, make_platform_vector_env, train_a2c


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    actions = rng.normal(size=(200, 16, 2)).astype(np.float32)
    for native in (True, False):
        envs = make_platform_vector_env(16, native=native, step_size=0.1, goal_radius=0.1)
        envs.reset(seed=0)
        seconds = best_of(lambda envs=envs: [envs.step(a) for a in actions])
        name = "native NumPy" if native else "SyncVectorEnv"
        print(f"Platform2D x16, {name:13s}: {200 * 16 / seconds:10.0f} env steps / s")

    loc = torch.randn(80, 2, requires_grad=True)
    a = loc.detach() + 0.3 * torch.randn(80, 2)
    a[:8] = -3 * loc.detach()[:8]  # a few directions opposite the mean: the continued fraction
    for estimator in ESTIMATORS:
        head = DirectionalHead(0.3, 2, estimator)

        def step(head=head):
            for _ in range(100):
                head(loc).log_prob(a).sum().backward()

        print(f"log_prob + backward, 80 actions, {estimator:8s}: "
              f"{best_of(step) / 100 * 1e3:6.2f} ms")

    cfg = mpg.CONFIGS["tutorial"]
    # warm-up: the first seed_everything imports torch._inductor (seconds, once per process)
    train_a2c(make_platform_vector_env(2), mpg.platform_head("angle", 0.3, 0.3),
              A2CSettings(n_envs=2, updates=1), 0, show_progress=False)
    for method in mpg.PLATFORM_METHODS:
        envs = make_platform_vector_env(cfg.n_envs, step_size=cfg.step_size,
                                        goal_radius=cfg.goal_radius,
                                        max_episode_steps=cfg.max_episode_steps)
        settings = A2CSettings(n_envs=cfg.n_envs, n_steps=cfg.n_steps, updates=100,
                               optimizer="sgd", lr=0.1)
        head = mpg.platform_head(method, cfg.sigma, cfg.angle_sigma)
        result = train_a2c(envs, head, settings, 0, show_progress=False)
        print(f"A2C on Platform2D, {method:8s}: {100 / result.wall_time_s:6.1f} updates / s "
              f"({100 * cfg.n_envs * cfg.n_steps / result.wall_time_s:7.0f} env steps / s)")


if __name__ == "__main__":
    main()
