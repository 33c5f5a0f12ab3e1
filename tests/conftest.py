import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import rganet_plugin  # noqa: E402,F401  (patch fast-reid, register components)
from rganet_tiny import tiny_cfg  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def make_cfg():
    return tiny_cfg
