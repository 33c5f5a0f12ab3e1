"""Cloth-changing ReID evaluation: the standard and the clothes-changing protocol, and PRCC's
same-clothes / changed-clothes query split; CMC and mAP per protocol.

Protocols (which gallery images are "junk", i.e. removed from a query's ranking):

* ``standard``: same identity and same camera (Market-1501's rule, as fast-reid);
* ``cloth_changing`` (LTCC's "CC" setting, also used by CAL and FIRe²): same identity and
  (same camera **or same clothes**), so only true matches in other clothes count;
* ``same_clothes_only`` (CAL's "SC" setting, ``TEST.CLOTH_CHANGING.SAME_CLOTHES_ONLY``): same
  identity and (same camera **or other clothes**), so only true matches in the query's clothes count;

and query subsets (under the standard rule) for datasets whose query set mixes both cases, as
PRCC's does (camera B: same clothes as the gallery, camera C: other clothes):

* ``same_clothes``: queries whose clothes id appears among their identity's gallery images;
* ``changed_clothes``: the other queries.

PRCC's single-shot gallery (``TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS`` N > 0): N times, one
gallery image drawn per identity (a fixed random stream), every protocol evaluated on that gallery;
the means are reported as ``single_shot_<protocol>``.

Clothes ids come from the dataset items (:class:`~fire2.data.clothes.ClothesItem`);
a protocol that needs them is reported only when every query and gallery image has one.

The ranking itself is :func:`rganet_plugin.evaluation.ranking.compute_query_ranks` (same-pid,
same-camid junk): the clothes-changing rule is expressed through it by evaluating the queries in
groups of equal (clothes, camera) and, within a group, giving the gallery images in the query's
clothes the query's camera id, so "same identity and same camera id" reads "same identity and
(same camera or same clothes)". :func:`junk_mask` spells the rule out directly; the tests check
that both agree.
"""
from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.evaluation.evaluator import DatasetEvaluator
from fastreid.utils import comm

from rganet_plugin.evaluation.distance import global_distance
from rganet_plugin.evaluation.ranking import QueryRanks, compute_query_ranks, ranks_to_metrics, summarize

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOLS", "junk_mask", "same_clothes_queries", "compute_protocol_ranks",
           "chance_level", "evaluate_cloth_changing", "ClothChangingEvaluator"]

PROTOCOLS = ("standard", "cloth_changing", "same_clothes_only")


def _arr(x, name):
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def junk_mask(q_pids, q_camids, q_clothes, g_pids, g_camids, g_clothes,
              protocol: str = "cloth_changing") -> np.ndarray:
    """``(Q, G)`` bool: the gallery images each query ignores under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    same_pid = _arr(q_pids, "q_pids")[:, None] == _arr(g_pids, "g_pids")[None, :]
    junk = same_pid & (_arr(q_camids, "q_camids")[:, None] == _arr(g_camids, "g_camids")[None, :])
    if protocol != "standard":
        _need_clothes(q_clothes, g_clothes, protocol)
        same_clothes = (np.asarray(q_clothes, object)[:, None] == np.asarray(g_clothes, object)[None, :])
        junk |= same_pid & (same_clothes if protocol == "cloth_changing" else ~same_clothes)
    return junk


def _need_clothes(q_clothes, g_clothes, what):
    if q_clothes is None or g_clothes is None or any(c is None for c in q_clothes) \
            or any(c is None for c in g_clothes):
        raise ValueError(f"the {what} protocol needs a clothes id for every query and gallery "
                         "image (this dataset has none or only some)")


def same_clothes_queries(q_pids, q_clothes, g_pids, g_clothes) -> np.ndarray:
    """Bool per query: its clothes id appears among its identity's gallery images."""
    _need_clothes(q_clothes, g_clothes, "same-clothes split")
    present = set(zip(np.asarray(g_pids).tolist(), list(g_clothes)))
    return np.array([(p, c) in present for p, c in zip(np.asarray(q_pids).tolist(), q_clothes)],
                    dtype=bool)


def compute_protocol_ranks(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes=None,
                           g_clothes=None, protocol: str = "standard") -> QueryRanks:
    """Per-query ranks (first hit, AP, INP) under ``protocol``; see the module docstring."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    q_pids, g_pids = _arr(q_pids, "q_pids"), _arr(g_pids, "g_pids")
    q_camids, g_camids = _arr(q_camids, "q_camids"), _arr(g_camids, "g_camids")
    if protocol == "standard":
        return compute_query_ranks(distmat, q_pids, g_pids, q_camids, g_camids)
    _need_clothes(q_clothes, g_clothes, protocol)
    distmat = np.asarray(distmat)
    q_cl, g_cl = np.asarray(q_clothes, object), np.asarray(g_clothes, object)
    num_q = len(q_pids)
    out = QueryRanks(valid=np.zeros(num_q, bool), first_hit=np.full(num_q, -1, np.int64),
                     num_pos=np.zeros(num_q, np.int64), ap=np.full(num_q, np.nan),
                     inp=np.full(num_q, np.nan), num_gallery=distmat.shape[1])
    # queries of one identity, clothes and camera share a junk set: the gallery images of that
    # identity in those clothes (same_clothes_only: in other clothes) get the queries' camera id
    groups: Dict[tuple, list] = {}
    for i, key in enumerate(zip(q_pids.tolist(), q_cl.tolist(), q_camids.tolist())):
        groups.setdefault(key, []).append(i)
    for (pid, clothes, cam), rows in groups.items():
        rows = np.asarray(rows)
        g_cam = g_camids.copy()
        in_clothes = g_cl == clothes
        g_cam[(in_clothes if protocol == "cloth_changing" else ~in_clothes) & (g_pids == pid)] = cam
        r = compute_query_ranks(distmat[rows], q_pids[rows], g_pids, q_camids[rows], g_cam)
        for field in ("valid", "first_hit", "num_pos", "ap", "inp"):
            getattr(out, field)[rows] = getattr(r, field)
        out.num_tie_rows += r.num_tie_rows
    return out


def chance_level(junk: np.ndarray, same_pid: np.ndarray, queries: Optional[np.ndarray] = None
                 ) -> Dict[str, float]:
    """Expected Rank-1 and mAP (%) of a random ranking: per query with ``n`` true matches among
    ``N`` gallery images left once its ``junk`` is removed, R1 = n / N and
    AP = (H_N + (n - 1) / (N - 1) (N - H_N)) / N (H_N the harmonic number), averaged over the
    (``queries``-selected) queries that have a true match."""
    keep = ~junk
    n = (same_pid & keep).sum(1).astype(np.float64)
    big_n = keep.sum(1).astype(np.float64)
    valid = n > 0
    if queries is not None:
        valid &= queries
    if not valid.any():
        return {"chance Rank-1": float("nan"), "chance mAP": float("nan")}
    n, big_n = n[valid], big_n[valid]
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, junk.shape[1] + 1))])
    h = harmonic[big_n.astype(np.int64)]
    ratio = np.where(big_n > 1, (n - 1) / np.maximum(big_n - 1, 1), 1.0)
    ap = (h + ratio * (big_n - h)) / big_n
    return {"chance Rank-1": float(100 * np.mean(n / big_n)), "chance mAP": float(100 * np.mean(ap))}


def _metrics(ranks: QueryRanks, max_rank: int) -> Dict[str, float]:
    cmc, aps, inps = ranks_to_metrics(ranks, max_rank)
    res = summarize(cmc, aps, inps)
    res["num_queries"] = float(ranks.num_valid)
    return res


def _subset(ranks: QueryRanks, mask: np.ndarray) -> QueryRanks:
    return QueryRanks(valid=ranks.valid & mask, first_hit=ranks.first_hit, num_pos=ranks.num_pos,
                      ap=ranks.ap, inp=ranks.inp, num_gallery=ranks.num_gallery)


def single_shot(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes=None, g_clothes=None,
                max_rank: int = 50, repeats: int = 10, seed: int = 0, same_clothes_only: bool = False
                ) -> "OrderedDict[str, Dict[str, float]]":
    """PRCC's single-shot gallery: ``repeats`` times one gallery image per identity (drawn from
    ``default_rng(seed)``), :func:`evaluate_cloth_changing` on it; the mean of every metric per
    protocol, keys ``single_shot_<protocol>``."""
    if repeats < 1:
        raise ValueError(f"single-shot needs repeats >= 1, got {repeats}")
    g_pids = _arr(g_pids, "g_pids")
    rng = np.random.default_rng(seed)
    members = [np.nonzero(g_pids == p)[0] for p in np.unique(g_pids)]
    sums: "OrderedDict[str, Dict[str, list]]" = OrderedDict()
    for _ in range(repeats):
        idx = np.sort([int(rng.choice(m)) for m in members])
        cl = None if g_clothes is None else [g_clothes[i] for i in idx]
        res = evaluate_cloth_changing(np.asarray(distmat)[:, idx], q_pids, g_pids[idx], q_camids,
                                      _arr(g_camids, "g_camids")[idx], q_clothes, cl, max_rank,
                                      same_clothes_only=same_clothes_only)
        for proto, vals in res.items():
            for k, v in vals.items():
                sums.setdefault(proto, OrderedDict()).setdefault(k, []).append(v)
    return OrderedDict((f"single_shot_{proto}", OrderedDict((k, float(np.mean(v))) for k, v in vals.items()))
                       for proto, vals in sums.items())


def evaluate_cloth_changing(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes=None,
                            g_clothes=None, max_rank: int = 50, same_clothes_only: bool = False,
                            single_shot_repeats: int = 0) -> "OrderedDict[str, Dict[str, float]]":
    """Metrics per protocol: ``{"standard": {...}, "cloth_changing": {...}, "same_clothes": {...},
    "changed_clothes": {...}}`` with fast-reid's keys (Rank-1/3/5/10, mAP, mINP, metric, in %),
    ``num_queries`` (queries with a true match) and the chance level (``chance Rank-1``, ``chance
    mAP``: :func:`chance_level`). ``cloth_changing`` needs clothes ids; the two query subsets are
    reported when both are non-empty (PRCC); ``same_clothes_only`` adds that protocol (CAL's SC);
    ``single_shot_repeats`` > 0 adds :func:`single_shot`'s ``single_shot_<protocol>`` entries."""
    out = OrderedDict()
    std = compute_protocol_ranks(distmat, q_pids, g_pids, q_camids, g_camids)
    same_pid = np.asarray(q_pids)[:, None] == np.asarray(g_pids)[None, :]
    std_junk = junk_mask(q_pids, q_camids, None, g_pids, g_camids, None, "standard")
    out["standard"] = {**_metrics(std, max_rank), **chance_level(std_junk, same_pid)}
    known = (q_clothes is not None and g_clothes is not None
             and all(c is not None for c in q_clothes) and all(c is not None for c in g_clothes))
    if not known:
        return out
    cc = compute_protocol_ranks(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes, g_clothes,
                                "cloth_changing")
    if cc.num_valid:
        cc_junk = junk_mask(q_pids, q_camids, q_clothes, g_pids, g_camids, g_clothes)
        out["cloth_changing"] = {**_metrics(cc, max_rank), **chance_level(cc_junk, same_pid)}
    same = same_clothes_queries(q_pids, q_clothes, g_pids, g_clothes)
    if same.any() and (~same).any():
        out["same_clothes"] = {**_metrics(_subset(std, same), max_rank),
                               **chance_level(std_junk, same_pid, same)}
        out["changed_clothes"] = {**_metrics(_subset(std, ~same), max_rank),
                                  **chance_level(std_junk, same_pid, ~same)}
    if same_clothes_only:
        sc = compute_protocol_ranks(distmat, q_pids, g_pids, q_camids, g_camids, q_clothes,
                                    g_clothes, "same_clothes_only")
        if sc.num_valid:
            sc_junk = junk_mask(q_pids, q_camids, q_clothes, g_pids, g_camids, g_clothes,
                                "same_clothes_only")
            out["same_clothes_only"] = {**_metrics(sc, max_rank), **chance_level(sc_junk, same_pid)}
    return out


class ClothChangingEvaluator(DatasetEvaluator):
    """fast-reid evaluator reporting every protocol of :func:`evaluate_cloth_changing`.

    Args:
        cfg: reads ``TEST.METRIC`` (cosine / euclidean) and ``TEST.CLOTH_CHANGING.MAX_RANK`` if
            present (else 50).
        num_query: the first ``num_query`` images of the test loader are the queries.
        clothes: ``{img_path: clothes id}`` of the test images (None values: unknown).
    Results: flat keys ``"<protocol>/<metric>"`` (e.g. ``cloth_changing/Rank-1``) plus the
    standard protocol's under fast-reid's plain names (``Rank-1``, ``mAP``, ``metric``), so
    fast-reid's EvalHook and best-model tracking keep working.
    """

    def __init__(self, cfg, num_query: int, clothes: Dict[str, Optional[str]], output_dir=None):
        self.cfg = cfg
        self._num_query = num_query
        self._clothes = dict(clothes)
        self._output_dir = output_dir
        self.reset()

    def reset(self):
        self._features, self._pids, self._camids, self._paths = [], [], [], []

    def process(self, inputs, outputs):
        feats = outputs if torch.is_tensor(outputs) else outputs[0]
        self._features.append(feats.detach().float().cpu())
        self._pids.extend(inputs["targets"].tolist())
        self._camids.extend(inputs["camids"].tolist())
        self._paths.extend(inputs["img_paths"])

    def evaluate(self):
        if comm.get_world_size() > 1:
            comm.synchronize()
            gathered = comm.gather([self._features, self._pids, self._camids, self._paths])
            if not comm.is_main_process():
                return {}
            feats, pids, camids, paths = [], [], [], []
            for f, p, c, pa in gathered:
                feats += f
                pids += p
                camids += c
                paths += pa
        else:
            feats, pids, camids, paths = self._features, self._pids, self._camids, self._paths
        feats = torch.cat(feats, 0)
        nq = self._num_query
        if not 0 < nq < feats.shape[0]:
            raise ValueError(f"need query and gallery images, got {nq} queries of {feats.shape[0]}")
        metric = getattr(self.cfg.TEST, "METRIC", "cosine")
        if metric == "cosine":
            feats = F.normalize(feats, dim=1)
        dist = global_distance(feats[:nq], feats[nq:], metric=metric)
        clothes = [self._clothes.get(p) for p in paths]
        pids, camids = np.asarray(pids), np.asarray(camids)
        max_rank = 50
        node = getattr(self.cfg.TEST, "CLOTH_CHANGING", None)
        if node is not None and "MAX_RANK" in node:
            max_rank = node.MAX_RANK
        sc_only = bool(node is not None and node.get("SAME_CLOTHES_ONLY", False))
        repeats = int(node.get("SINGLE_SHOT_REPEATS", 0)) if node is not None else 0
        args = (dist, pids[:nq], pids[nq:], camids[:nq], camids[nq:], clothes[:nq], clothes[nq:])
        per = evaluate_cloth_changing(*args, max_rank=max_rank, same_clothes_only=sc_only)
        if repeats:
            per.update(single_shot(*args, max_rank=max_rank, repeats=repeats,
                                   same_clothes_only=sc_only))
        if "cloth_changing" not in per:
            unknown = sum(c is None for c in clothes)
            logger.warning(
                "no clothes-changing metrics: %s; only the standard protocol is reported. (A "
                "dataset whose items carry clothes ids, e.g. LTCC, PRCC, gives them.)",
                f"{unknown} of the {len(clothes)} test images have no clothes label" if unknown
                else "no query has a true match in other clothes")
        for proto, vals in per.items():
            logger.info("%s: Rank-1 %.2f (chance %.2f), mAP %.2f (chance %.2f), %d queries", proto,
                        vals["Rank-1"], vals["chance Rank-1"], vals["mAP"], vals["chance mAP"],
                        vals["num_queries"])
        results = OrderedDict()
        for key in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"):
            results[key] = per["standard"][key]
        for proto, vals in per.items():
            for key, v in vals.items():
                results[f"{proto}/{key}"] = v
        self._results = results
        return copy.deepcopy(results)
