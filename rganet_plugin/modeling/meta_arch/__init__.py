from .rganet import RGANet, backbone_out_dim, layout_for  # noqa: F401  (registers)
from .prompt_learner import PROMPT_STAGE_KEYS, RGANetPromptLearner  # noqa: F401  (registers)
