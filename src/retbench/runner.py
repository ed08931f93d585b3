"""The pipeline: datasets x encoders -> embeddings -> evaluation -> a result folder.

The CLI is a thin layer over these functions; all take frozen option dataclasses
(configuration flows one way: CLI -> options -> library). Leave-one-out (the default protocol)
is here: :func:`evaluate_datasets` and :func:`evaluate_embeddings_file`. The query/gallery and
ground-truth protocols are in :mod:`retbench.protocol_runs`; what every flow shares (extraction,
run records, the result folder) in :mod:`retbench.run_output`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from retbench.datasets import Dataset, load_dataset, load_labels
from retbench.errors import RetbenchError
from retbench.jsonable import to_jsonable
from retbench.run_output import (
    Extractor,
    ProgressFactory,
    align_to_list,
    draw_grid,
    load_embeddings,
    prepare_out_dir,
    run_record,
    save_retrievals,
    write_folder,
)

logger = logging.getLogger(__name__)

AP_DEFINITIONS = ("sklearn", "trapezoid")


@dataclass(frozen=True)
class ExtractOptions:
    """How embeddings are made (mirrors ``retbench.embed``'s options).

    Attributes:
        weights: encoder spec -> local weights file.
        random_init: random weights for every encoder that has weights (explicit only).
        runtime, channels_last, decode: see :func:`retbench.embed` (``channels_last``
            None = on for CNNs; the resolved values are in each run's ``config.runtime``).
    """

    weights: dict[str, Path] = field(default_factory=dict)
    random_init: bool = False
    preprocess: str = "default"
    batch_size: int = 32
    num_workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    runtime: str = "torch"
    channels_last: bool | None = None
    decode: str = "full"
    cache_dir: Path | None = None
    use_cache: bool = True
    skip_bad: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))

    def cache_root(self) -> Path:
        """Where everything cached lives: ``cache_dir`` or the user cache dir (embeddings/, openvino/, crops/)."""
        from retbench.environment import default_cache_dir

        return Path(self.cache_dir or default_cache_dir())


@dataclass(frozen=True)
class EvalOptions:
    """How embeddings are scored and what is drawn.

    Attributes:
        ks: cut-offs of precision@k, recall@k, mAP@k and nDCG@k.
        n_bootstrap: resamples of the bootstrap confidence intervals (0: none).
        seed: seed of every random choice in evaluation (bootstrap, permutation tests).
        figures: draw PR curves and retrieval grids.
        device: where scores are computed (``cpu`` or ``cuda``).
        report: render ``report.html`` at the end (its data under ``data/`` is always saved, so
            ``retbench report DIR`` can render it later).
        ap_definition: ``"sklearn"`` (default; ``sklearn.metrics.average_precision_score``) or
            ``"trapezoid"`` (revisitop's ``compute_ap``, for published Revisited Oxford/Paris
            numbers); see docs/metrics.md. Used by every protocol.
    """

    ks: tuple[int, ...] = (1, 5, 10, 100)
    n_bootstrap: int = 1000
    seed: int = 0
    figures: bool = True
    device: str = "cpu"
    report: bool = True
    ap_definition: str = "sklearn"

    def __post_init__(self) -> None:
        if self.ap_definition not in AP_DEFINITIONS:
            raise RetbenchError(f"ap_definition must be one of {', '.join(AP_DEFINITIONS)}, got {self.ap_definition!r} "
                                "(--ap-definition sklearn|trapezoid)")  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


def _unique_names(datasets: list[Dataset]) -> list[Dataset]:
    """Datasets whose folder names repeat get ``-2``, ``-3`` ... so table columns stay distinct."""
    seen: dict[str, int] = {}
    renamed = []
    for d in datasets:
        seen[d.name] = seen.get(d.name, 0) + 1
        if seen[d.name] > 1:
            d = Dataset(d.root, f"{d.name}-{seen[d.name]}", d.paths, d.labels, d.lines, d.source)
        renamed.append(d)
    return renamed


def evaluate_datasets(
    dataset_dirs: Sequence[str | Path],
    encoders: Sequence[str],
    out_dir: str | Path,
    extract_options: ExtractOptions = ExtractOptions(),
    eval_options: EvalOptions = EvalOptions(),
    *,
    progress: ProgressFactory | None = None,
    invocation: str | None = None,
) -> dict:
    """Evaluate every encoder on every dataset, leave-one-out, and write the result folder.

    Everything is validated before any model runs: datasets (with ``file:line``
    errors) and encoder names. Results replace an earlier run's files in ``out_dir``.

    Returns:
        The results document (as written to ``out_dir/results.json``).
    """
    from retbench.report import report_data

    datasets = _unique_names([load_dataset(d) for d in dataset_dirs])
    extractor = Extractor(encoders, extract_options, progress)
    out_dir = prepare_out_dir(out_dir)
    items_files = {d.name: report_data.save_items(out_dir, d) for d in datasets}
    runs: list[dict] = []
    for spec in encoders:
        encoder, build_s = extractor.build(spec)
        extractions = extractor.extract_each(encoder, [(d, f"{spec} on {d.name}") for d in datasets])
        for dataset, (extraction, rows) in zip(datasets, extractions):
            evaluated = dataset.subset(rows) if extraction.bad else dataset
            vectors = extraction.vectors[rows]
            run = _leave_one_out_run(evaluated, vectors, spec, eval_options, {"list": str(dataset.source)})
            run["ap"] = align_to_list(run["ap"], rows, len(dataset))
            run["skipped"] = [b.to_dict() for b in extraction.bad]
            arrays = save_retrievals(out_dir, run, partial(report_data.compute_retrievals, vectors, rows,
                                                           labels=dataset.labels), items_files[dataset.name])  # fmt: skip
            extractor.describe(run, encoder, build_s, [extraction])
            runs.append(run)
            if len(evaluated) > 1:
                draw_grid(out_dir, run, arrays, dataset, dataset, eval_options, extract_options.cache_dir)
        del encoder
    return write_folder(out_dir, runs, eval_options, invocation, extract_options.cache_dir)


def evaluate_embeddings_file(
    embeddings_path: str | Path,
    labels_path: str | Path,
    out_dir: str | Path,
    eval_options: EvalOptions = EvalOptions(),
    *,
    dataset_name: str | None = None,
    encoder_name: str | None = None,
    invocation: str | None = None,
) -> dict:
    """Evaluate embeddings computed elsewhere, leave-one-out: row i of the ``.npy`` matrix = line i of the list.

    The list supplies labels only; its image files need not exist (retrieval grids are
    drawn only when they all do). Rows are L2-normalised (cosine similarity).

    Raises:
        RetbenchError: unreadable matrix, wrong shape, row count != list length,
            non-finite or all-zero rows (named by line).
    """
    from retbench.report import report_data

    embeddings_path, labels_path = Path(embeddings_path), Path(labels_path)
    labels = load_labels(labels_path)
    vectors = load_embeddings(embeddings_path, "--embeddings", len(labels),
                              f"--labels {labels_path} lists {len(labels)} images; row i must be the image on line i")  # fmt: skip
    name = dataset_name or labels_path.resolve().parent.name
    encoder = encoder_name or embeddings_path.stem
    dataset = _dataset_if_images_exist(labels_path, name, labels)
    out_dir = prepare_out_dir(out_dir)
    summary = Dataset(labels_path.parent, name, tuple(f"row-{i}" for i in range(len(labels))), tuple(labels))
    inputs = {"embeddings_file": str(embeddings_path), "labels_file": str(labels_path)}
    run = _leave_one_out_run(summary, vectors, encoder, eval_options, inputs)
    with_images = dataset is not None
    items_file = report_data.save_items(out_dir, dataset if with_images else summary, images_available=with_images)
    arrays = save_retrievals(out_dir, run, partial(report_data.compute_retrievals, vectors, np.arange(len(labels)),
                                                   labels=labels), items_file)  # fmt: skip
    draw_grid(out_dir, run, arrays, dataset, dataset, eval_options, None)
    return write_folder(out_dir, [run], eval_options, invocation, None)


def _dataset_if_images_exist(labels_path: Path, name: str, labels: list[str]) -> Dataset | None:
    try:
        dataset = load_dataset(labels_path.parent, name=name)
    except RetbenchError:
        return None
    return dataset if list(dataset.labels) == labels else None


def _leave_one_out_run(dataset: Dataset, vectors: np.ndarray, encoder: str, options: EvalOptions,
                       inputs: dict) -> dict:  # fmt: skip
    from retbench.metrics import evaluate

    started = time.perf_counter()
    evaluation = evaluate(vectors, list(dataset.labels), ks=options.ks, n_bootstrap=options.n_bootstrap,
                          seed=options.seed, device=options.device, ap_definition=options.ap_definition)  # fmt: skip
    return run_record(dataset.name, encoder, evaluation, n_images=len(dataset), summary=dataset.summary(),
                      protocol="leave-one-out", inputs=inputs, options=options,
                      evaluate_s=time.perf_counter() - started)  # fmt: skip
