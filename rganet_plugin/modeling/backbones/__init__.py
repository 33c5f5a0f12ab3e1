from .clip_vit import CLIPViTBackbone, build_clip_vit_backbone  # noqa: F401  (registers)
from .clip_text import CLIPTextTower  # noqa: F401
from .clip_weights import CLIPWeightsError, build_clip_model  # noqa: F401
from .vit_tokens import ViTTokenMap, build_vit_tokens_backbone  # noqa: F401  (registers)
