from .rganet import RGANet, backbone_out_dim, output_layout  # noqa: F401  (registers)
from .prompt_learner import PROMPT_STAGE_KEYS, RGANetPromptLearner  # noqa: F401  (registers)
