"""The generated world: the data the project draws itself, and what is built and checked on it.

The generated person ReID datasets, split by concern:

No public ReID dataset can be downloaded on the project's machines, so tests, CI and the demos
train on data the project draws itself, written in real datasets' layouts and file naming:

* :mod:`.params`: the ``DATASETS.SYNTHETIC`` parameters, their checks and the cache hash;
* :mod:`.people`: an identity's appearance and one drawn view of it (part mask + colours);
* :mod:`.bags`: bags of some identities (``BAGS_PERCENT``; part label 5);
* :mod:`.scenes`: each camera's background, colour cast and noise;
* :mod:`.occluders`: cars, walls, trees and pillars;
* :mod:`.render`: one image from a person, a scene and maybe an occluder;
* :mod:`.cache`: generate once, atomically, under a lock;
* :mod:`.occluded_duke`: the occluded set in Occluded-Duke's layout;
* :mod:`.cloth_changing`: the cloth-changing set in LTCC's layout (outfits, clothes ids).

and beside them the image-caption pairs (:mod:`.captions`, :mod:`.image_text`), the small CLIP's
pre-training (:mod:`.clip_pretrain`, its command :mod:`.command`), its zero-shot checks
(:mod:`.zero_shot`) and the measures against the generator's part masks (:mod:`.region_metrics`).

The fast-reid datasets that read the generated sets are registered outside this package, so the
method core imports none of it until such a dataset is built:
:mod:`rganet_plugin.data.datasets.synthetic` (``SyntheticOccludedDuke``) and FIRe²'s
``fire2.data.synthetic`` (``SyntheticLTCC``).
"""
from .bags import BAG_KINDS, BAG_LABEL  # noqa: F401
from .cache import MANIFEST_NAME, read_manifest  # noqa: F401
from .occluded_duke import (  # noqa: F401
    DATASET_DIR,
    OCCLUSION_RATIOS,
    SPLIT_DIRS,
    ensure_synthetic_occluded_duke,
    generate_occluded_duke,
)
from .occluders import OCCLUDED_AREA  # noqa: F401
from .params import (  # noqa: F401
    DRAWING_VERSION,
    GENERATOR_VERSION,
    SYNTHETIC_DEFAULTS,
    params_hash,
    synthetic_cache_dir,
    synthetic_params,
)
from .people import PART_LABELS  # noqa: F401
