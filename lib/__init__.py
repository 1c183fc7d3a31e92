"""Shared library of the reproduction book on efficient and robust machine learning.

Layers (imports run one way only)::

    lib.core  <-  lib.sparse, lib.quant, lib.energy  <-  lib.asr, lib.vision, lib.rl
              <-  lib.papers.*  <-  chapters/*.ipynb
"""

__version__ = "0.1.0"
