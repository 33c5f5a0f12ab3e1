"""FIRe²'s tests: the repository root (for ``rganet_plugin``) and ``projects/FIRe2`` (for
``fire2``) on ``sys.path``, fast-reid patched and every FIRe² component registered."""
import os
import sys

import torch

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PROJECT))
for p in (REPO, PROJECT):
    if p not in sys.path:
        sys.path.insert(0, p)

import fire2  # noqa: E402,F401  (patches fast-reid, registers the datasets and FIRe2)

torch.set_num_threads(min(2, torch.get_num_threads()))
