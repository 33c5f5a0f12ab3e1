"""``FIRe2Trainer``: the plugin's trainer (:class:`rganet_plugin.engine.RGANetTrainer`, fast-reid's
``DefaultTrainer`` with the plugin's datasets, checkpointer and hooks) with FFM's epoch hook and
the cloth-changing evaluator. One trainer base for both methods: data building (the plugin's
root and keyword arguments, so the cloth-changing loaders' items, ``ClothesItem``, carry their
clothes ids), the test loader and the checkpointer are the plugin's; the RGANet-only hooks are
added only to an RGANet model (a region head, the prompt stage).

What FIRe² changes:

* the training set is built once (``rganet_plugin.engine.datasets``), so FFM clusters the
  training set even when fast-reid's PreciseBN hook builds a loader of another;
* the optimizer is built with ``contiguous=False`` (one param group per parameter), because FFM
  replaces the fine-grained classifier's weight every epoch (its number of classes changes);
* :class:`~fire2.engine.hooks.FIRe2EpochHook` runs first in every epoch (of a FIRe² model: a
  fast-reid meta-architecture such as BoT's ``Baseline`` trains unchanged, so the toolbox's
  recipes get the clothes-changing protocol through the same entry point);
* evaluation is :class:`fire2.evaluation.cloth_changing.ClothChangingEvaluator`: the
  standard and the clothes-changing protocol (and PRCC's same/changed-clothes split);
* :class:`~fire2.engine.hooks.BestEvaluationHook` (last) logs the best of every Rank-1 / mAP
  over the run's evaluations, the released code's reporting rule, and writes
  ``best_evaluation.json``; the final model's results stay what the run reports;
* the LR schedule is the plugin's (:class:`rganet_plugin.engine.schedule.ScheduleMixin`, through
  ``RGANetTrainer``): checked at start-up, ``SOLVER.STEPS`` the epochs at which the rate decays,
  summarised in the log.
"""
from __future__ import annotations

import logging

from fastreid.solver import build_optimizer
from fastreid.utils import comm

from rganet_plugin.data import build as data_build
from rganet_plugin.engine.trainer import RGANetTrainer

from ..data.clothes import clothes_of
from ..evaluation.cloth_changing import ClothChangingEvaluator
from .hooks import BestEvaluationHook, FIRe2EpochHook, unwrap

logger = logging.getLogger(__name__)

__all__ = ["FIRe2Trainer"]


class FIRe2Trainer(RGANetTrainer):
    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model, contiguous=False)

    def _feature_loader(self):
        return data_build.train_feature_loader(self.cfg, self.train_items,
                                               self.cfg.MODEL.FIRE2.FFM.FEATURE_BATCH)

    def build_hooks(self):
        ret = super().build_hooks()
        if hasattr(unwrap(self.model), "set_epoch"):  # FIRe²; fast-reid's own meta-archs train as they are
            clothes = {it[0]: clothes_of(it) for it in self.train_items}
            ret.insert(0, FIRe2EpochHook(self._feature_loader, clothes, self.cfg.OUTPUT_DIR))
        if comm.is_main_process():  # after fast-reid's EvalHook: the best of its evaluations
            ret.append(BestEvaluationHook(self.cfg.OUTPUT_DIR))
        return ret

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        clothes = {it[0]: clothes_of(it) for it in data_loader.dataset.img_items}
        return data_loader, ClothChangingEvaluator(cfg, num_query, clothes, output_dir)
