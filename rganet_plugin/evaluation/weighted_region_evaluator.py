"""fast-reid evaluator for RGANet: eq. (10) distances, Market-1501 ranking metrics.

Drop-in for fast-reid's ``ReidEvaluator`` (same ``process`` inputs, same result keys, same
multi-process gathering), reading the packed rows described in ``modeling/outputs.py``:

* ``TEST.RGANET.SEARCH = "dense"`` (default): the full query-gallery matrix of eq. (10)
  (``distance.weighted_region_distance``, chunked by ``TEST.RGANET.CHUNK_SIZE``, CUDA when
  ``MODEL.DEVICE`` is a CUDA device and one is available), ranked by ``ranking.py``.
* ``TEST.RGANET.SEARCH = "faiss"``: top-``TEST.RGANET.TOPK`` retrieval
  (``TEST.RGANET.FAISS_INDEX``) and metrics from the top-k lists (approximate mAP/mINP, see
  ``faiss_search.py``).
* ``TEST.RGANET.GLOBAL_ONLY``: the global feature only, with ``TEST.METRIC`` (what fast-reid's
  ``ReidEvaluator`` computes). A layout with ``N = 0`` (the baseline) is always global-only.
  Eq. (10) is defined with cosine distances, so ``TEST.METRIC`` is not used with regions.
* ``TEST.RERANK.ENABLED``: k-reciprocal re-ranking (``fastreid.evaluation.rerank.re_ranking``,
  numpy, CPU) of the *combined* distance: the q-g, q-q and g-g matrices are all eq. (10).
  Needs the dense search, and memory for a few (Q+G)^2 float32 matrices.
* ``TEST.AQE.ENABLED`` (fast-reid's query expansion) works on one feature vector per image, so it
  is only accepted with the global feature; ``TEST.ROC.ENABLED`` needs the dense search.

The evaluator keeps no result besides fast-reid's metrics: ``compute_distance(packed_q,
packed_g)`` gives the matrix it would rank, and the seconds spent in distance, re-ranking and
ranking are logged.
"""
from __future__ import annotations

import copy
import itertools
import logging
import time
from typing import Any, Optional

import numpy as np
import torch

from fastreid.evaluation.evaluator import DatasetEvaluator
from fastreid.utils import comm

from ..modeling.outputs import FeatureLayout
from .distance import as_features, global_distance, resolve_device, weighted_region_distance
from .ranking import compute_query_ranks, ranks_to_metrics, summarize

logger = logging.getLogger(__name__)

__all__ = ["WeightedRegionEvaluator"]


class WeightedRegionEvaluator(DatasetEvaluator):
    def __init__(self, cfg, num_query: int, layout: FeatureLayout,
                 output_dir: Optional[str] = None):
        if not isinstance(layout, FeatureLayout):
            raise TypeError(f"layout must be a FeatureLayout, got {type(layout).__name__}")
        self.cfg = cfg
        self._num_query = int(num_query)
        self.layout = layout
        self._output_dir = output_dir
        t = cfg.TEST.RGANET
        self.chunk_size = int(t.CHUNK_SIZE)
        self.search = str(t.SEARCH)
        self.faiss_index = str(t.FAISS_INDEX)
        self.topk = int(t.TOPK)
        self.global_only = bool(t.GLOBAL_ONLY) or layout.num_regions == 0
        self.metric = str(cfg.TEST.METRIC)
        self.rerank = bool(cfg.TEST.RERANK.ENABLED)
        self.aqe = bool(cfg.TEST.AQE.ENABLED)
        self.roc = bool(cfg.TEST.ROC.ENABLED)
        self.device = resolve_device(str(cfg.MODEL.DEVICE))
        self._check_config()

        self._predictions = []

    def _check_config(self) -> None:
        if self.search not in ("dense", "faiss"):
            raise ValueError(f"TEST.RGANET.SEARCH must be 'dense' or 'faiss', got {self.search!r}")
        if self.chunk_size < 1:
            raise ValueError(f"TEST.RGANET.CHUNK_SIZE must be >= 1, got {self.chunk_size}")
        if self.search == "faiss":
            if self.topk < 1:
                raise ValueError(f"TEST.RGANET.TOPK must be >= 1, got {self.topk}")
            for key, on in (("TEST.RERANK.ENABLED", self.rerank), ("TEST.ROC.ENABLED", self.roc)):
                if on:
                    raise ValueError(f"{key} needs the full distance matrix: it cannot be used "
                                     "with TEST.RGANET.SEARCH = 'faiss'")
        if self.aqe and not self.global_only:
            raise ValueError(
                "TEST.AQE.ENABLED (query expansion) works on one feature vector per image: set "
                "TEST.RGANET.GLOBAL_ONLY True to use it, or disable it for eq. (10)")
        if self.global_only:
            if self.metric not in ("cosine", "euclidean"):
                raise ValueError(
                    f"TEST.METRIC must be 'cosine' or 'euclidean', got {self.metric!r}")
            if self.search == "faiss" and self.metric != "cosine":
                raise ValueError("TEST.RGANET.SEARCH = 'faiss' ranks by cosine: set TEST.METRIC "
                                 "'cosine'")
        elif self.metric != "cosine":
            logger.warning("TEST.METRIC = %r is ignored: eq. (10) is defined with cosine "
                           "distances (set TEST.RGANET.GLOBAL_ONLY for other metrics)", self.metric)

    # ------------------------------------------------------------------ DatasetEvaluator API
    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs, outputs) -> None:
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            raise ValueError(
                f"WeightedRegionEvaluator expects the model's packed (B, D) feature tensor, got "
                f"{type(outputs).__name__} {tuple(getattr(outputs, 'shape', ()))}")
        if not self.layout.fits(outputs.shape[1]):
            raise ValueError(
                f"model outputs have {outputs.shape[1]} columns but the evaluator's layout "
                f"{self.layout} needs {self.layout.total_dim}: the model and the evaluator "
                "disagree on the feature layout")
        cpu = torch.device("cpu")
        self._predictions.append({
            "feats": outputs.detach().to(cpu, torch.float32),
            "pids": torch.as_tensor(inputs["targets"]).to(cpu).reshape(-1),
            "camids": torch.as_tensor(inputs["camids"]).to(cpu).reshape(-1),
        })

    def evaluate(self):
        if comm.get_world_size() > 1:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if not predictions:
            raise ValueError("WeightedRegionEvaluator.evaluate(): no features were processed "
                             "(empty test set?)")
        feats = torch.cat([p["feats"] for p in predictions], dim=0)
        pids = torch.cat([p["pids"] for p in predictions], dim=0).numpy()
        camids = torch.cat([p["camids"] for p in predictions], dim=0).numpy()
        if len(pids) != len(feats) or len(camids) != len(feats):
            raise ValueError(f"{len(feats)} feature rows but {len(pids)} pids and {len(camids)} "
                             "camids")
        nq = self._num_query
        if nq <= 0:
            raise ValueError(f"cannot evaluate: the query set is empty (num_query = {nq})")
        if nq >= len(feats):
            raise ValueError(
                f"cannot evaluate: the gallery set is empty ({len(feats)} images processed, "
                f"num_query = {nq})")
        return self.evaluate_features(feats[:nq], pids[:nq], camids[:nq],
                                      feats[nq:], pids[nq:], camids[nq:])

    # ------------------------------------------------------------------ helpers
    def _unpack(self, packed: Any, name: str):
        if isinstance(packed, np.ndarray):
            packed = torch.from_numpy(packed)
        if not isinstance(packed, torch.Tensor) or packed.dim() != 2:
            raise ValueError(f"{name}: expected a packed (B, {self.layout.total_dim}) tensor")
        f = self.layout.unpack(packed.float()).to_torch()
        return f.global_only() if self.global_only else f

    def compute_distance(self, packed_q: Any, packed_g: Any) -> np.ndarray:
        """The (Q, G) float32 distance matrix the evaluator ranks (re-ranked when enabled)."""
        return self._ranked_distance(self._unpack(packed_q, "query"),
                                     self._unpack(packed_g, "gallery"), {})

    def _ranked_distance(self, q, g, timings: dict) -> np.ndarray:
        t0 = time.perf_counter()
        dist = self._distance(q, g)
        timings["distance"] = time.perf_counter() - t0
        if self.rerank:
            from fastreid.evaluation.rerank import re_ranking

            t0 = time.perf_counter()
            r = self.cfg.TEST.RERANK
            n = len(q) + len(g)
            logger.info("k-reciprocal re-ranking of %d images (about %.1f GB of float32 "
                        "matrices)", n, 4 * n * n * 4 / 1e9)
            dist = re_ranking(dist, self._distance(q, q), self._distance(g, g), k1=int(r.K1),
                              k2=int(r.K2), lambda_value=float(r.LAMBDA)).astype(np.float32)
            timings["rerank"] = time.perf_counter() - t0
        return dist

    @torch.no_grad()
    def evaluate_features(self, q_feats, q_pids, q_camids, g_feats, g_pids, g_camids):
        """Evaluate packed query / gallery features directly (what ``evaluate`` calls)."""
        q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
        q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
        if len(q_feats) == 0:
            raise ValueError("cannot evaluate: the query set is empty")
        if len(g_feats) == 0:
            raise ValueError("cannot evaluate: the gallery set is empty")
        for name, f, p, c in (("query", q_feats, q_pids, q_camids),
                              ("gallery", g_feats, g_pids, g_camids)):
            if not len(f) == len(p) == len(c):
                raise ValueError(f"{name}: {len(f)} feature rows but {len(p)} pids and {len(c)} "
                                 "camids")
        timings = {}
        q, g = self._unpack(q_feats, "query"), self._unpack(g_feats, "gallery")
        if self.aqe:  # fast-reid's query expansion, on the global feature (checked in __init__)
            from fastreid.evaluation.query_expansion import aqe

            a = self.cfg.TEST.AQE
            qg, gg = aqe(q.global_feat, g.global_feat, a.QE_TIME, a.QE_K, a.ALPHA)
            q, g = as_features(qg.float(), "query"), as_features(gg.float(), "gallery")
        mode = "global feature" if self.global_only else f"eq. (10), N={self.layout.num_regions}"

        if self.search == "faiss":
            from .faiss_search import search_topk, topk_query_ranks  # (faiss only when asked for)

            t0 = time.perf_counter()
            topk = search_topk(q, g, k=self.topk, index_spec=self.faiss_index,
                               global_only=self.global_only)
            timings["search"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ranks = topk_query_ranks(topk.indices, q_pids, g_pids, q_camids, g_camids)
            timings["ranking"] = time.perf_counter() - t0
            dist = None
        else:
            dist = self._ranked_distance(q, g, timings)
            t0 = time.perf_counter()
            ranks = compute_query_ranks(dist, q_pids, g_pids, q_camids, g_camids)
            timings["ranking"] = time.perf_counter() - t0

        cmc, all_ap, all_inp = ranks_to_metrics(ranks)
        results = summarize(cmc, all_ap, all_inp)
        if self.roc:
            from sklearn import metrics as skm

            from fastreid.evaluation.roc import evaluate_roc

            scores, labels = evaluate_roc(dist, q_pids, g_pids, q_camids, g_camids)
            fprs, tprs, _ = skm.roc_curve(labels, scores)
            for fpr in (1e-4, 1e-3, 1e-2):
                results["TPR@FPR={:.0e}".format(fpr)] = float(tprs[np.argmin(np.abs(fprs - fpr))])
        logger.info(
            "WeightedRegionEvaluator (%s, %s search): %d queries x %d gallery; %s; "
            "%d queries without a true match skipped", mode, self.search, len(q_pids), len(g_pids),
            ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
            len(q_pids) - ranks.num_valid)
        self._results = results
        return copy.deepcopy(results)

    def _distance(self, q, g) -> np.ndarray:
        if self.global_only:
            return global_distance(q, g, metric=self.metric, chunk_size=self.chunk_size,
                                   device=self.device)
        return weighted_region_distance(q, g, chunk_size=self.chunk_size, device=self.device)
