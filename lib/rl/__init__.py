"""Reinforcement learning layer: gymnasium environments, fixed-scale policies, A2C."""

from .a2c import A2CResult, A2CSettings, PolicyHead, nstep_returns, tanh_mlp, train_a2c
from .platform2d import (
    ENV_ID,
    GOAL,
    START,
    Platform2D,
    Platform2DVectorEnv,
    PlatformGeometry,
    make_platform_vector_env,
    platform_transition,
    potential,
)
from .policies import (
    AngleGaussianPolicy,
    AngleHead,
    DiagonalGaussianPolicy,
    GaussianHead,
)

__all__ = [
    "ENV_ID", "GOAL", "START", "A2CResult", "A2CSettings", "AngleGaussianPolicy", "AngleHead",
    "DiagonalGaussianPolicy", "GaussianHead", "Platform2D", "Platform2DVectorEnv",
    "PlatformGeometry", "PolicyHead", "make_platform_vector_env", "nstep_returns",
    "platform_transition", "potential", "tanh_mlp", "train_a2c",
]
