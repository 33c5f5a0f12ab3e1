"""What FFM's fine-grained clusters correspond to, measured against the dataset's clothes ids.

FFM never sees clothes labels; where the training set has them (LTCC, PRCC, DeepChange and the
generated SyntheticLTCC do), this tells how far the per-identity clusters follow the outfits:

* ``num_classes``: fine-grained classes in all; ``clusters_per_id`` / ``outfits_per_id``: their
  mean number per identity and the true mean number of outfits;
* ``ari``: adjusted Rand index between clusters and clothes ids, computed **per identity** (the
  clusters never span two identities, so a global index would mostly score the identity split)
  and averaged over identities; an identity whose two labelings are both a single group scores 1;
* ``purity``: share of images whose cluster's majority clothes id is their own (1: no cluster
  mixes outfits; also 1 when every image is its own cluster);
* ``inverse_purity``: share of images whose outfit's majority cluster is their own (1: no outfit
  is split over several clusters).

Both purities at 1 and ``ari`` at 1 mean the clusters are exactly the outfits.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["ffm_report"]


def _majority_share(groups: Sequence, of: Sequence) -> int:
    """Sum over groups of the count of the most frequent ``of`` value inside the group."""
    members = defaultdict(Counter)
    for g, o in zip(groups, of):
        members[g][o] += 1
    return sum(c.most_common(1)[0][1] for c in members.values())


def ffm_report(labels: Sequence[int], pids: Sequence[int],
               clothes: Optional[Sequence[Optional[str]]] = None) -> Dict[str, float]:
    """Statistics of one FFM clustering: ``labels`` the fine-grained labels, ``pids`` the
    identities and ``clothes`` the clothes ids (None, or any None inside: only the counts)."""
    from sklearn.metrics import adjusted_rand_score

    labels, pids = np.asarray(labels), np.asarray(pids)
    if labels.shape != pids.shape:
        raise ValueError(f"{labels.shape[0]} labels but {pids.shape[0]} identities")
    ids = np.unique(pids)
    out = {"num_ids": float(len(ids)), "num_classes": float(len(np.unique(labels))),
           "clusters_per_id": float(np.mean([len(np.unique(labels[pids == p])) for p in ids]))}
    if clothes is None or any(c is None for c in clothes):
        return out
    clothes = np.asarray(clothes, dtype=object)
    if clothes.shape != labels.shape:
        raise ValueError(f"{labels.shape[0]} labels but {clothes.shape[0]} clothes ids")
    aris = []
    for p in ids:
        sel = pids == p
        c, lab = clothes[sel].tolist(), labels[sel].tolist()
        aris.append(1.0 if len(set(c)) == 1 and len(set(lab)) == 1 else adjusted_rand_score(c, lab))
    n = len(labels)
    out.update({
        "outfits_per_id": float(np.mean([len(set(clothes[pids == p].tolist())) for p in ids])),
        "ari": float(np.mean(aris)),
        "purity": _majority_share(labels.tolist(), clothes.tolist()) / n,
        "inverse_purity": _majority_share(clothes.tolist(), labels.tolist()) / n,
    })
    return out
