"""``RGANetPromptLearner`` (``MODEL.META_ARCHITECTURE: RGANetPromptLearner``): stage 1 of RGANet.

An RGANet model whose CoOp context vectors (and background embedding ``p_0``) learn against
pseudo part masks with ``L_seg`` (eq. 3); everything else is frozen and stays in eval mode. It owns
what only this stage needs as ordinary sub-modules: the learnable prompts (``prompts``) and CLIP's
frozen text tower (``text_tower``), through which the prototypes are computed live, with
gradients into the context. After every epoch and at the end (:class:`~rganet_plugin.engine.hooks.
PromptCacheHook`) it writes the prototypes into the region head's buffer, so its checkpoint is
what stage 2 (``RGANet``) starts from: the same keys, plus ``prompts.*`` and ``text_tower.*``,
which stage 2 does not have and ignores.
"""
from __future__ import annotations

import torch
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils.events import get_event_storage
from torch import nn

from ..heads.prompts import LearnablePrompts
from ..losses import patch_targets, segmentation_loss, soft_segmentation_loss
from .rganet import RGANet

#: checkpoint keys only the prompt learner has (stage 2 loads its checkpoint without them)
PROMPT_STAGE_KEYS = ("prompts.", "text_tower.")
PROMPT_LEARNER = "RGANetPromptLearner"


def is_prompt_stage(cfg) -> bool:
    """Does ``cfg`` build the prompt-learning model (stage 1, or a registered subclass of it)?"""
    cls = META_ARCH_REGISTRY._obj_map.get(cfg.MODEL.META_ARCHITECTURE)
    return cls is not None and issubclass(cls, RGANetPromptLearner)


@META_ARCH_REGISTRY.register()
class RGANetPromptLearner(RGANet):
    def __init__(self, cfg):
        super().__init__(cfg)
        if not isinstance(getattr(self, "prompts", None), LearnablePrompts):
            raise ValueError("RGANetPromptLearner learns CoOp context vectors: it needs "
                             "MODEL.RGANET.REGION_MODE 'rgm' and PROMPT.TYPE 'learnable'")
        self.seg_scale = cfg.MODEL.LOSSES.SEG.SCALE
        self.seg_targets = cfg.MODEL.LOSSES.SEG.TARGETS
        for p in self.parameters():
            p.requires_grad_(False)
        self.prompts.ctx.requires_grad_(True)
        self.region_head.background.requires_grad_(True)

    def keep_prompts(self, prompts: nn.Module, tower: nn.Module) -> None:
        self.prompts = prompts
        self.text_tower = tower

    def train(self, mode: bool = True):
        super().train(mode)
        # frozen parts keep eval behaviour (BN statistics, dropout)
        self.backbone.eval()
        self.heads.eval()
        self.text_tower.eval()
        return self

    def live_prototypes(self) -> torch.Tensor:
        return self.prompts(self.text_tower).to(self.region_head.prototypes.dtype)

    @torch.no_grad()
    def refresh_prototypes(self) -> None:
        """Write the prototypes of the learned context into the region head's buffer."""
        self.region_head.set_prototypes(self.live_prototypes())

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        if not isinstance(batched_inputs, dict) or "masks" not in batched_inputs:
            raise KeyError("the prompt-learning stage needs pseudo part masks in the batch "
                           "('masks'); see docs/datasets.md")
        images = self.preprocess_image(batched_inputs)
        with torch.no_grad():
            fmap, _ = self.extract(images, self.camera_ids(batched_inputs))
            fmap = self.region_head.project(fmap)
        all_masks = self.region_head.masks(fmap, self.live_prototypes())
        labels = batched_inputs["masks"].to(self.device)
        targets = patch_targets(labels, all_masks.shape[-2:], all_masks.shape[1],
                                self.seg_targets)
        loss_fn = soft_segmentation_loss if self.seg_targets == "soft" else segmentation_loss
        loss = loss_fn(all_masks, targets, include_background=True) * self.seg_scale
        try:  # fast-reid logs single-loss dicts only as total_loss; keep the name visible
            get_event_storage().put_scalar("loss_seg", loss.detach().item())
        except AssertionError:
            pass
        return {"loss_seg": loss}
