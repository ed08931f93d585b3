"""Search: exact blockwise top-k by dot product (cosine similarity of L2-normalised rows).

- :func:`topk`: the k best (or worst) database items per query, bounded memory, ties by
  ascending index. Used for retrieval galleries (top-5 / worst-5).
"""

from retbench.search.exact import topk

__all__ = ["topk"]
