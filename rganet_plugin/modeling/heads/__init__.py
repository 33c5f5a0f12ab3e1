from .memory_bank import MemoryBank  # noqa: F401
from .prompts import TABLE_VI_TEMPLATES, LearnablePrompts, TemplatePrompts  # noqa: F401
from .region_assessment import RegionAssessmentModule  # noqa: F401
from .region_generation import (FixedStripes, RegionGenerationModule,  # noqa: F401
                                masked_average_pool, region_masks, stripe_masks)
from .rganet_region_head import RGANetRegionHead  # noqa: F401  (registers)
