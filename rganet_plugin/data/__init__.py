"""Data: datasets registered into fast-reid's DATASET_REGISTRY, pseudo masks, safe image reading."""
from . import datasets  # noqa: F401
