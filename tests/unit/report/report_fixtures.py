"""Result folders for report tests, built from given embeddings (no encoder runs).

Labels that must come out as text: a script tag, HTML metacharacters, accents and CJK.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retbench.datasets import Dataset, load_dataset
from retbench.report import files, report_data
from tests.conftest import make_dataset

XSS = "<script>alert(1)</script>"
AMP = 'a&b"c'
ACCENT = "chaussure é"
CJK = "靴"
# the first two share a colour, so a colour histogram confuses them (galleries show misses, encoders disagree)
HOSTILE_CLASSES = {XSS: (200, 40, 40), AMP: (190, 50, 45), ACCENT: (40, 60, 200), CJK: (200, 170, 40)}


def hostile_dataset(root: Path, per_class: int = 4) -> Dataset:
    """Generated images whose class folders and labels are the hostile labels (folders get safe names)."""
    make_dataset(root, per_class=per_class, classes={f"c{i}": c for i, c in enumerate(HOSTILE_CLASSES.values())})
    lines = (root / "list_of_images.txt").read_text(encoding="utf-8").splitlines()
    names = list(HOSTILE_CLASSES)
    relabelled = []
    for line in lines:
        path, label = line.split("\t")
        relabelled.append(f"{path}\t{names[int(label[1:])]}")
    (root / "list_of_images.txt").write_text("\n".join(relabelled) + "\n", encoding="utf-8")
    return load_dataset(root)


def unit_rows(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_rows(labels: list[str], noise: float = 0.6, seed: int = 0) -> np.ndarray:
    """Unit rows near one centre per label: retrieval mostly right, sometimes wrong."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    centres = rng.normal(size=(len(classes), 8))
    x = np.stack([centres[classes.index(label)] for label in labels]) + noise * rng.normal(size=(len(labels), 8))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_folder(folder: Path, dataset: Dataset, vectors_by_encoder: dict[str, np.ndarray], *, n_bootstrap: int = 20,
                 images_available: bool = True) -> dict:  # fmt: skip
    """results.json and the data/ sidecars as the runner writes them, for the given embeddings."""
    from retbench.metrics import evaluate, paired_comparison

    folder.mkdir(parents=True, exist_ok=True)
    items = report_data.save_items(folder, dataset, images_available=images_available)
    runs = []
    for encoder, vectors in vectors_by_encoder.items():
        evaluation = evaluate(vectors, list(dataset.labels), n_bootstrap=n_bootstrap)
        retrievals = report_data.compute_retrievals(vectors, np.arange(len(vectors)))
        path = report_data.save_retrievals(folder, dataset.name, encoder, retrievals)
        runs.append({
            "dataset": dataset.name, "encoder": encoder, "map": evaluation.map, "ap": evaluation.ap,
            "n_images": len(dataset), "n_queries": evaluation.n_queries,
            "n_queries_without_relevant": evaluation.n_queries_without_relevant, "metrics": evaluation.metrics,
            "per_class": evaluation.per_class,
            "pr_curve": {"recall": evaluation.recall_levels, "precision": evaluation.pr_curve},
            "config": {"dataset": dataset.summary(), "evaluation": evaluation.config,
                       "encoder": {"name": encoder, "backend": "test", "dim": vectors.shape[1],
                                   "weights": {"kind": "none", "source": encoder}}},
            "timings": {"evaluate_s": 0.01}, "skipped": [],
            "report_data": {"items": items, "retrievals": path},
        })  # fmt: skip
    comparisons = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            result = paired_comparison(
                np.asarray(a["ap"]), np.asarray(b["ap"]), n_bootstrap=n_bootstrap, n_permutations=200
            )
            comparisons.append(
                {"dataset": dataset.name, "encoder_a": a["encoder"], "encoder_b": b["encoder"], **result}
            )
    document = files.to_jsonable({
        "retbench": "test", "created": "2026-01-01T00:00:00+00:00", "invocation": f"retbench evaluate {XSS}",
        "versions": {"retbench": "test"}, "machine": {"platform": "test"}, "runs": runs, "comparisons": comparisons,
    })  # fmt: skip
    files.write_json(folder / files.RESULTS_JSON, document)
    return document
