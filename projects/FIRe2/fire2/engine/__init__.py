from .hooks import FIRe2EpochHook, swap_parameter  # noqa: F401
from .trainer import FIRe2Trainer  # noqa: F401
