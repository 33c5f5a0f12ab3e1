from .build import REGION_HEAD_REGISTRY, build_region_head  # noqa: F401
from .memory_bank import MemoryBank  # noqa: F401
from .prompts import LearnablePrompts, TemplatePrompts, build_prompts  # noqa: F401
from .region_assessment import RegionAssessmentModule  # noqa: F401
from .region_generation import (FixedStripes, RegionGenerationModule,  # noqa: F401
                                masked_average_pool, region_masks, stripe_masks)
from .rganet_region_head import RGANetRegionHead  # noqa: F401  (registers)
