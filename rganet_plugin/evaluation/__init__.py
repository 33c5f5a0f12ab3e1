"""Evaluation for RGANet: eq. (10) distances, vectorised ranking metrics, faiss top-k search,
and the fast-reid evaluator that ties them together (see each module's docstring)."""
from .distance import (  # noqa: F401
    Features,
    as_features,
    global_distance,
    weighted_embedding,
    weighted_region_distance,
    weighted_region_distance_naive,
)
from .ranking import (  # noqa: F401
    QueryRanks,
    compute_query_ranks,
    evaluate_rank,
    ranks_to_metrics,
    summarize,
)
from .weighted_region_evaluator import WeightedRegionEvaluator  # noqa: F401

#: The faiss path is imported when first used (a dense evaluation never loads it, nor faiss).
_FAISS_NAMES = ("GalleryIndex", "TopK", "evaluate_topk", "index_gallery", "search_gallery",
                "search_topk", "topk_query_ranks")


def __getattr__(name):
    if name in _FAISS_NAMES:
        from . import faiss_search

        return getattr(faiss_search, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Features", "as_features", "global_distance", "weighted_embedding",
    "weighted_region_distance", "weighted_region_distance_naive",
    "GalleryIndex", "TopK", "evaluate_topk", "index_gallery", "search_gallery", "search_topk",
    "topk_query_ranks",
    "QueryRanks", "compute_query_ranks", "evaluate_rank", "ranks_to_metrics", "summarize",
    "WeightedRegionEvaluator",
]
