"""``RGANetTrainer``: fast-reid's ``DefaultTrainer`` with RGANet's data, hooks and evaluator.

What changes relative to ``DefaultTrainer`` (everything else - optimizer, LR schedule, AMP,
checkpointing, TensorBoard/JSON writers, DDP wrapping, the training loop - is fast-reid's):

* datasets are built with the plugin's root and keyword arguments (``rganet_plugin.data.build``);
  the training set once, in ``__init__`` (``datasets.PluginDatasets``: fast-reid's PreciseBN
  hook asks ``build_train_loader`` again for another dataset);
* the number of cameras is filled into ``MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS`` like fast-reid fills
  ``NUM_CLASSES``;
* hooks: :class:`~rganet_plugin.engine.hooks.MemoryBankHook` (stage 2 with regions) and
  :class:`~rganet_plugin.engine.hooks.PromptCacheHook` (stage 1);
* the checkpointer is :class:`~rganet_plugin.engine.checkpoint.ModelCheckpointer` (fast-reid's,
  refusing a ``MODEL.WEIGHTS`` of another model);
* stage 1 (``MODEL.META_ARCHITECTURE: RGANetPromptLearner``, run by ``stages.py``) trains on images
  with pseudo part masks, without ReID evaluation;
* evaluation uses :class:`~rganet_plugin.evaluation.WeightedRegionEvaluator` (eq. 10), which reads
  the packed output layout that the config's meta-architecture class gives
  (``modeling.meta_arch.layout_for``).
* the LR schedule is checked, ``SOLVER.STEPS`` are the epochs at which the rate decays, and the
  run's schedule is logged at its start (:class:`~rganet_plugin.engine.schedule.ScheduleMixin`).
"""
from __future__ import annotations

import logging

from fastreid.engine import DefaultTrainer
from fastreid.engine.hooks import EvalHook, PeriodicCheckpointer

from ..data import build as data_build
from ..data.pseudo_masks import build_pseudo_mask_set
from ..modeling.meta_arch.prompt_learner import is_prompt_stage
from .checkpoint import ModelCheckpointer
from .hooks import MemoryBankHook, PromptCacheHook, unwrap
from .datasets import PluginDatasets
from .schedule import ScheduleMixin

logger = logging.getLogger(__name__)


class RGANetTrainer(ScheduleMixin, PluginDatasets, DefaultTrainer):
    # ------------------------------------------------------------------ data
    @classmethod
    def build_train_set(cls, cfg, items):
        if is_prompt_stage(cfg):
            return build_pseudo_mask_set(cfg, items)
        return super().build_train_set(cfg, items)

    def auto_scale_hyperparams(self, cfg, num_classes):
        cfg = DefaultTrainer.auto_scale_hyperparams(cfg, num_classes)
        sie = cfg.MODEL.BACKBONE.CLIP.SIE
        if sie.ENABLED and sie.NUM_CAMERAS == 0:
            frozen = cfg.is_frozen()
            cfg.defrost()
            sie.NUM_CAMERAS = self.train_set.num_cameras
            logger.info("Auto-scaling SIE.NUM_CAMERAS=%d", sie.NUM_CAMERAS)
            if frozen:
                cfg.freeze()
        return cfg

    def _memory_init_loader(self):
        return data_build.train_feature_loader(self.cfg, self.train_items)

    # ------------------------------------------------------------------ hooks
    def build_hooks(self):
        # (called once, at the end of DefaultTrainer.__init__): the checkpointer that loads
        # MODEL.WEIGHTS / resumes checks the checkpoint first; the periodic hook saves with it
        self.checkpointer = ModelCheckpointer.like(self.checkpointer, strict=False)
        ret = super().build_hooks()
        model = unwrap(self.model)
        r = self.cfg.MODEL.RGANET
        prompt_stage = is_prompt_stage(self.cfg)
        if getattr(model, "region_head", None) is not None and not prompt_stage:
            ret.insert(0, MemoryBankHook(self._memory_init_loader, r.MEMORY.INIT,
                                         r.MEMORY.INIT_MAX_IMAGES))
        if prompt_stage:
            idx = next((i for i, h in enumerate(ret) if isinstance(h, PeriodicCheckpointer)), len(ret))
            ret.insert(idx, PromptCacheHook())
            # Stage 1 changes only the prompts: the ReID features (frozen backbone, untrained
            # heads) are not what stage 2 will give, so a ReID evaluation here only misleads.
            ret = [h for h in ret if not isinstance(h, EvalHook)]
            self._last_eval_results = {}
        return ret

    # ------------------------------------------------------------------ evaluation
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        from ..evaluation import WeightedRegionEvaluator
        from ..modeling.meta_arch import layout_for

        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        return data_loader, WeightedRegionEvaluator(cfg, num_query, layout_for(cfg), output_dir)
