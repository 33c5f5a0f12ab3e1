from .hooks import MemoryBankHook, PromptCacheHook  # noqa: F401
from .trainer import RGANetTrainer  # noqa: F401
