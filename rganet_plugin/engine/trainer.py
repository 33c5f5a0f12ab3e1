"""``RGANetTrainer``: fast-reid's ``DefaultTrainer`` with RGANet's data, hooks and evaluator.

What changes relative to ``DefaultTrainer`` (everything else - optimizer, LR schedule, AMP,
checkpointing, TensorBoard/JSON writers, DDP wrapping, the training loop - is fast-reid's):

* datasets are built with the plugin's root and keyword arguments (``rganet_plugin.data.build``);
  the training set once, in ``__init__`` (``datasets.PluginDatasets``: fast-reid's PreciseBN
  hook asks ``build_train_loader`` again for another dataset);
* ``SIE.NUM_CAMERAS`` is filled in like fast-reid fills ``NUM_CLASSES``; hooks: ``MemoryBankHook``
  (stage 2 with regions) and ``PromptCacheHook`` (stage 1) of :mod:`~rganet_plugin.engine.hooks`;
* the checkpointer is :class:`~rganet_plugin.engine.checkpoint.ModelCheckpointer` (fast-reid's,
  refusing a ``MODEL.WEIGHTS`` of another model, writing atomically);
* :class:`~rganet_plugin.engine.hooks.StopOnSignalHook` (Ctrl-C / SIGTERM: stop after the
  iteration with a checkpoint) and :class:`~rganet_plugin.engine.hooks.EpochLineHook` (one
  console line per epoch);
* ``--resume`` of a run that already finished evaluates its final model instead of training
  (fast-reid's ``EvalHook`` would fail on the empty loop: ``no attribute 'epoch'``); from a
  checkpoint that the stop hook wrote mid-epoch it goes on at the next iteration: the batches
  already drawn are drawn again and dropped (so the identity sampler and the data-loader workers
  continue their streams), the iterations already trained are passed over, and the random states
  are restored, so the run ends as the uninterrupted one would;
* stage 2's switches (``region_keeping.py``, off by default): backbone rates, mask distillation;
* every trainer starts from ``SEED`` (stage 2 does not depend on whether stage 1 ran before it);
* stage 1 (``RGANetPromptLearner``, run by ``stages.py``) trains on images with pseudo part masks,
  without ReID evaluation;
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
from fastreid.utils import comm
from fastreid.utils.env import seed_all_rng

from ..data import build as data_build
from ..data.pseudo_masks import build_pseudo_mask_set
from ..modeling.meta_arch.prompt_learner import is_prompt_stage
from .checkpoint import ModelCheckpointer
from .datasets import PluginDatasets
from .hooks import (PROGRESS_LOGGER, EpochLineHook, MemoryBankHook, PromptCacheHook,
                    StopOnSignalHook, set_rng_state, unwrap)
from .schedule import ScheduleMixin

logger = logging.getLogger(__name__)


class RGANetTrainer(ScheduleMixin, PluginDatasets, DefaultTrainer):
    def __init__(self, cfg):
        self._resume_at = None  # (iterations done, random states) of a mid-epoch stop
        self._replay = 0  # iterations of the resumed epoch that were trained before the stop
        self._passing = False
        if cfg.SEED >= 0:
            seed_all_rng(cfg.SEED + comm.get_rank())
        super().__init__(cfg)

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
        ret.insert(0, EpochLineHook("stage 1 " if prompt_stage else ""))  # before the evaluation
        if comm.get_world_size() == 1:
            ret.append(StopOnSignalHook())  # last: after the epoch's checkpoint and evaluation
        return ret

    # ------------------------------------------------------------------ training
    @classmethod
    def build_optimizer(cls, cfg, model):
        if cfg.SOLVER.BACKBONE_LR_FACTOR == 1 and cfg.SOLVER.LAYER_DECAY == 1:
            return super().build_optimizer(cfg, model)
        from .region_keeping import scaled_backbone_lr  # stage 2's switches, off by default
        with scaled_backbone_lr(cfg, model):
            return super().build_optimizer(cfg, model)

    def resume_or_load(self, resume=True):
        """fast-reid's, also reading where a stopped run stopped (``StopOnSignalHook``)."""
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if self.cfg.MODEL.LOSSES.MASK_DISTILL.SCALE != 0 and not is_prompt_stage(self.cfg):
            from .region_keeping import attach_mask_teacher
            attach_mask_teacher(self.cfg, unwrap(self.model), ModelCheckpointer)
        if resume and self.checkpointer.has_checkpoint():
            self.start_epoch = checkpoint.get("epoch", -1) + 1
            if "iteration" in checkpoint and "rng" in checkpoint:
                self._resume_at = (int(checkpoint["iteration"]), checkpoint["rng"])

    def before_train(self):
        super().before_train()  # the hooks (the memory bank's start, ...)
        if self._resume_at is None:
            return
        done, rng = self._resume_at
        self._replay = max(0, done - self.start_epoch * self.iters_per_epoch)
        logging.getLogger(PROGRESS_LOGGER).info(
            "Resuming after iteration %d: drawing its %d batches again, passing over the %d "
            "iterations of epoch %d already trained", done, done, self._replay,
            self.start_epoch + 1)
        for _ in range(done):
            next(self._trainer._data_loader_iter)
        set_rng_state(rng)

    def before_step(self):
        self._passing = self._replay > 0
        if not self._passing:
            super().before_step()

    def run_step(self):
        if self._passing:
            self._replay -= 1
            return
        super().run_step()

    def after_step(self):
        if not self._passing:
            super().after_step()

    def train(self):
        if self.start_epoch >= self.max_epoch:  # --resume of a finished run
            logging.getLogger(PROGRESS_LOGGER).info(
                "This run already finished (%d of %d epochs, %s): nothing to train, evaluating "
                "its final model", self.start_epoch, self.max_epoch, self.cfg.OUTPUT_DIR)
            self.epoch = self.max_epoch - 1
            if is_prompt_stage(self.cfg):
                return {}
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results
        return super().train()

    # ------------------------------------------------------------------ evaluation
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        from ..evaluation import WeightedRegionEvaluator
        from ..modeling.meta_arch import layout_for

        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        return data_loader, WeightedRegionEvaluator(cfg, num_query, layout_for(cfg), output_dir)
