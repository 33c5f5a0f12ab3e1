"""AG-ReID's tests: the repository root (for ``rganet_plugin``) and ``projects/AGReID`` (for
``agreid``) on ``sys.path``, fast-reid patched and the AGReID meta-architecture registered.
(Shared helpers live in ``agreid_tiny.py``, imported by that unique name: the plugin's and
FIRe²'s tests have conftests of their own.)"""
import os
import sys

import torch

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PROJECT))
for p in (REPO, PROJECT, os.path.dirname(os.path.abspath(__file__))):
    if p not in sys.path:
        sys.path.insert(0, p)

import agreid  # noqa: E402,F401  (patches fast-reid, registers AGReID)

torch.set_num_threads(min(2, torch.get_num_threads()))
