"""``AGReIDTrainer``: the plugin's trainer (:class:`rganet_plugin.engine.RGANetTrainer`: fast-reid's
``DefaultTrainer`` with the plugin's datasets, checkpointer, hooks, evaluator and schedule) that
hands the model its attribute pseudo-labels.

Stage 1 runs here when needed: the labels file is ``MODEL.AGREID.LABELS.FILE`` if set, else
``<dataset>/agreid_labels/<settings hash>.json`` (:func:`agreid.labels.default_labels_path`);
a file made with the same settings is read, otherwise the training set is labelled zero-shot
with the config's CLIP and the file written (into ``OUTPUT_DIR`` when the dataset folder is not
writable). The accuracy against the generator's truth, where it exists, goes to the log and
``<OUTPUT_DIR>/agreid_labels_report.json``. The evaluator is the plugin's: the model's packed row
is one feature (``AGReID.output_layout``), ranked with ``TEST.METRIC``.
"""
from __future__ import annotations

import json
import logging
import os

from rganet_plugin.engine.hooks import unwrap
from rganet_plugin.engine.trainer import RGANetTrainer

from ..labels import (default_labels_path, format_report, label_items, label_report,
                      labelling_settings, read_labels, truth_of, write_labels)

logger = logging.getLogger(__name__)

__all__ = ["AGReIDTrainer", "pseudo_labels"]


def pseudo_labels(cfg, items, output_dir: str = ""):
    """The labels-file content for ``items`` under ``cfg`` (read, or made and written) and the
    path it is at."""
    groups = list(cfg.MODEL.AGREID.GROUPS)
    if cfg.MODEL.AGREID.LABELS.FILE:
        path = cfg.MODEL.AGREID.LABELS.FILE
        return read_labels(path, groups), path
    path = default_labels_path(cfg, items)
    if os.path.isfile(path):
        content = read_labels(path, groups)
        have = {rec["path"] for rec in content["images"]}
        if content["settings"] == labelling_settings(cfg) and all(it[0] in have for it in items):
            logger.info("AG-ReID pseudo-labels read from %s", path)
            return content, path
    content = label_items(cfg, items)
    truth = truth_of([it[0] for it in items])
    if truth is not None:
        content["report"] = label_report(content, truth)
        logger.info("AG-ReID pseudo-labels against the generator's truth:\n%s",
                    format_report(content["report"]))
    try:
        write_labels(content, path)
    except OSError as e:
        if not output_dir:
            raise
        fallback = os.path.join(output_dir, "agreid_labels.json")
        logger.warning("cannot write the labels next to the dataset (%s): writing %s", e, fallback)
        path = write_labels(content, fallback)
    logger.info("AG-ReID pseudo-labels written to %s", path)
    return content, path


class AGReIDTrainer(RGANetTrainer):
    def __init__(self, cfg):
        super().__init__(cfg)
        model = unwrap(self.model)
        if hasattr(model, "set_attribute_labels") and model.attribute_guided:
            content, path = pseudo_labels(cfg, self.train_items, cfg.OUTPUT_DIR)
            groups = list(cfg.MODEL.AGREID.GROUPS)
            model.set_attribute_labels({rec["path"]: [rec["labels"][g] for g in groups]
                                        for rec in content["images"]})
            if cfg.OUTPUT_DIR and "report" in content:
                os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
                with open(os.path.join(cfg.OUTPUT_DIR, "agreid_labels_report.json"), "w") as f:
                    json.dump({"labels": path, "report": content["report"]}, f, indent=1)
