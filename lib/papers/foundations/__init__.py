"""The Foundations chapter's code: a tiny task (an MLP on bundled digits) that runs the
book's machinery end to end, and the harness that kills and resumes it."""

from . import toy
from .toy import CONFIGS, ToyConfig, kill_and_resume, train_toy, trained_toy

#: Foundations tests the machinery, not a paper: it makes no claim for the scoreboard.
CLAIMS: list = []
#: One process: the toy MLP is far too small for data-parallel training.
DATA_PARALLEL = False

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "ToyConfig", "kill_and_resume", "toy",
           "train_toy", "trained_toy"]
