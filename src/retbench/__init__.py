"""retbench: evaluate visual encoders for image retrieval.

The three stable entry points (see README, "Python API"):

- :func:`load_dataset` -- a labelled image collection, in list order.
- :func:`embed` -- L2-normalised float32 features, row i = item i.
- :func:`evaluate` -- leave-one-out AP per query, mAP and the metric suite.
"""

from retbench._version import __version__

__all__ = ["__version__", "load_dataset", "embed", "evaluate"]


def __getattr__(name: str):
    # Lazy: `import retbench` must stay cheap (no torch import for `retbench --help`).
    if name == "load_dataset":
        from retbench.datasets import load_dataset

        return load_dataset
    if name == "embed":
        from retbench.embeddings import embed

        return embed
    if name == "evaluate":
        from retbench.metrics import evaluate

        return evaluate
    raise AttributeError(f"module 'retbench' has no attribute {name!r}")
