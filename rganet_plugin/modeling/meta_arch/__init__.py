from .rganet import RGANet, layout_for  # noqa: F401  (registers)
from .prompt_learner import PROMPT_STAGE_KEYS, RGANetPromptLearner  # noqa: F401  (registers)
