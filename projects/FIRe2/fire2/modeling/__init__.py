"""FIRe²'s model: the meta-architecture (registered as ``FIRe2`` in fast-reid's
``META_ARCH_REGISTRY``), FFM (clustering, fine-grained classifier, attribute-aware loss) and FAR."""
from .far import FARHead, recompose, sample_partners, stripe_partners  # noqa: F401
from .ffm import (FineGrainedClassifier, attribute_aware_loss, cluster_identities,  # noqa: F401
                  k_reciprocal_jaccard)
from .meta_arch import FIRe2  # noqa: F401
