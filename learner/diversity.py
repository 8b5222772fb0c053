"""The queue's diversity rule (docs/active-loop.md, "Diversity"): items served close together
should not be near-duplicates. Pure numpy; torch-free."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def diversify(
    priority: npt.ArrayLike,
    groups: Sequence[npt.ArrayLike],
    *,
    cap: int = 3,
    margin: float = 0.15,
) -> Array:
    """Priorities (lowest first) re-ranked so that items served close together are not
    near-duplicates: walking the queue's order, an item that already has `cap` items of one of
    its groups (its dialogue, its embedding cluster) ahead of it gets `margin` added to its
    priority for each one over; it still goes first where its trust is lower than the others'
    by more than that.

    Args:
        priority: (N,) the queue's priority (trust).
        groups: one (N,) integer array per grouping (dialogue, cluster; -1: no group).
    """
    p = np.asarray(priority, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    excess = np.zeros(len(p))
    for grouping in groups:
        g = np.asarray(grouping)[order]
        ahead: dict[int, int] = {}
        over = np.zeros(len(p))
        for position, group in enumerate(g.tolist()):
            if group < 0:
                continue
            seen = ahead.get(group, 0)
            over[position] = max(0, seen - cap + 1)
            ahead[group] = seen + 1
        excess[order] = np.maximum(excess[order], over)
    return np.asarray(p + margin * excess)


def clusters(embeddings: Array, *, threshold: float = 0.98) -> npt.NDArray[np.int64]:
    """(N,) a cluster id per embedding (in the given order): an item joins the first earlier
    leader at cosine similarity ≥ `threshold`, else leads a new cluster. For the front of the
    queue (a few thousand items), not the whole pool.

    The student's embeddings gather by class once it is trained: at 0.9, 80 % of the 2,000
    least trusted act utterances of DailyDialog fell in clusters of more than 3 (the largest
    145), which is a label, not a near-duplicate; at 0.98, 4.6 % (the largest 12)."""
    e = np.asarray(embeddings, dtype=np.float32)
    out = np.full(len(e), -1, dtype=np.int64)
    if not len(e):
        return out
    similar = (e @ e.T) >= threshold
    later = np.arange(len(e))
    cluster = 0
    # Visiting in order: an item no earlier leader took leads, and takes the later items
    # similar to it that are still free (the same as each item joining its first leader).
    for i in range(len(e)):
        if out[i] >= 0:
            continue
        out[i] = cluster
        out[(later > i) & similar[i] & (out < 0)] = cluster
        cluster += 1
    return out
