"""AG-ReID's model: the meta-architecture (registered as ``AGReID`` in fast-reid's
``META_ARCH_REGISTRY``) and its losses."""
from .losses import attribute_ce, attribute_sentences, global_text_contrast, image_text_contrast  # noqa: F401
from .meta_arch import AGReID, attribute_pool  # noqa: F401
