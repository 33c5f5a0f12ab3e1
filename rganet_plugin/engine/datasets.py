"""A trainer's datasets, built with the plugin's root and keyword arguments
(``rganet_plugin.data.build``): the training set once, from ``DATASETS.NAMES``, owned by the
trainer, and the test loaders.

fast-reid's ``DefaultTrainer.build_train_loader(cfg)`` is called twice: by ``__init__`` for
training, and by ``build_hooks`` for the PreciseBN hook with ``DATASETS.NAMES`` replaced by
``TEST.PRECISE_BN.DATASET``. A trainer that kept "the training items" from inside that method
would keep the PreciseBN set's when PreciseBN is on, and initialise its memory bank (RGANet) or
cluster (FIRe²'s FFM) on the wrong images. :class:`PluginDatasets` builds the items and the set in
``__init__``, before fast-reid's, and hands a loader of any other dataset (PreciseBN's) a set of
its own without touching them.
"""
from __future__ import annotations

import logging

from fastreid.data.common import CommDataset
from fastreid.data.transforms import build_transforms

from ..data import build as data_build

logger = logging.getLogger(__name__)

__all__ = ["PluginDatasets"]


class PluginDatasets:
    """Mixin for a ``DefaultTrainer`` subclass (put it first): ``self.train_items`` (the items of
    ``DATASETS.NAMES``), ``self.train_set`` (the training dataset over them) and the test
    loaders of the plugin's datasets."""

    def __init__(self, cfg):
        self.train_names = tuple(cfg.DATASETS.NAMES)
        self.train_items = data_build.train_items(cfg)
        self.train_set = self.build_train_set(cfg, self.train_items)
        super().__init__(cfg)

    @classmethod
    def build_train_set(cls, cfg, items):
        """The training dataset over ``items`` (fast-reid's ``CommDataset``, relabelled)."""
        return CommDataset(items, build_transforms(cfg, is_train=True), relabel=True)

    def build_train_loader(self, cfg):
        """The loader of the training set; for any other ``DATASETS.NAMES`` (fast-reid's PreciseBN
        hook asks with ``TEST.PRECISE_BN.DATASET``) a loader over a set built for it alone."""
        if tuple(cfg.DATASETS.NAMES) == self.train_names:
            train_set = self.train_set
        else:
            logger.info("Building %s for a loader other than training's", list(cfg.DATASETS.NAMES))
            train_set = self.build_train_set(cfg, data_build.train_items(cfg))
        return data_build.build_train_loader(cfg, train_set)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return data_build.build_test_loader(cfg, dataset_name)
