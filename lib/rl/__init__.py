"""Reinforcement learning layer: gymnasium environments, fixed-scale policies (including the
angular and clipped Gaussians of marginal policy gradients), A2C."""

from .a2c import (
    A2CResult,
    A2CSettings,
    PolicyHead,
    Rollout,
    a2c_update,
    evaluate_policy,
    make_optimizer,
    nstep_returns,
    tanh_mlp,
    train_a2c,
)
from .angular import (
    AngularGaussian,
    angular_gaussian_log_prob,
    angular_gaussian_score,
    angular_gaussian_score_isotropic,
    log_m,
    m_functions,
    m_ratio,
)
from .clipped import clipped_gaussian_log_prob, clipped_gaussian_score_loc
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
    ESTIMATORS,
    AngleGaussianPolicy,
    AngleHead,
    ClippedGaussianPolicy,
    ClippedHead,
    DiagonalGaussianPolicy,
    DirectionalGaussianPolicy,
    DirectionalHead,
    Estimator,
    GaussianHead,
)

__all__ = [
    "ENV_ID", "ESTIMATORS", "GOAL", "START", "A2CResult", "A2CSettings", "AngleGaussianPolicy",
    "AngleHead", "AngularGaussian", "ClippedGaussianPolicy", "ClippedHead",
    "DiagonalGaussianPolicy", "DirectionalGaussianPolicy", "DirectionalHead", "Estimator",
    "GaussianHead", "Platform2D", "Platform2DVectorEnv", "PlatformGeometry", "PolicyHead",
    "Rollout", "a2c_update", "angular_gaussian_log_prob", "angular_gaussian_score",
    "angular_gaussian_score_isotropic", "clipped_gaussian_log_prob",
    "clipped_gaussian_score_loc", "evaluate_policy", "log_m", "m_functions", "m_ratio",
    "make_optimizer", "make_platform_vector_env", "nstep_returns", "platform_transition",
    "potential", "tanh_mlp", "train_a2c",
]
