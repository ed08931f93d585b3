"""Search: exact blockwise top-k by dot product (cosine similarity of L2-normalised rows).

- :func:`topk`: the k best (or worst) database items per query, bounded memory, ties by
  ascending index.
- :func:`top_and_worst`: both ends in one pass over the scores (the report's top-10 / worst-5
  retrieval lists).
"""

from retbench.search.exact import top_and_worst, topk

__all__ = ["top_and_worst", "topk"]
