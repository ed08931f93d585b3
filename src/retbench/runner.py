"""The pipeline: datasets x encoders -> embeddings -> evaluation -> a result folder.

The CLI is a thin layer over :func:`evaluate_datasets` and :func:`evaluate_embeddings_file`;
both take frozen option dataclasses (configuration flows one way: CLI -> options -> library).
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from retbench import provenance
from retbench.datasets import Dataset, load_dataset, load_labels
from retbench.errors import BadImagesError, RetbenchError
from retbench.report import files

logger = logging.getLogger(__name__)


class Progress(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], Progress]


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


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
        return files.to_jsonable(asdict(self))


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
    """

    ks: tuple[int, ...] = (1, 5, 10, 100)
    n_bootstrap: int = 1000
    seed: int = 0
    figures: bool = True
    device: str = "cpu"
    report: bool = True

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
    """Evaluate every encoder on every dataset and write the result folder.

    Everything is validated before any model runs: datasets (with ``file:line``
    errors) and encoder names. Results replace an earlier run's files in ``out_dir``.

    Returns:
        The results document (as written to ``out_dir/results.json``).
    """
    from retbench.embeddings import EmbeddingStore, bad_images_message, extract, resolve_device
    from retbench.encoders import build_encoder, get_entry
    from retbench.environment import default_cache_dir

    progress = progress or (lambda description, total: _Silent())
    datasets = _unique_names([load_dataset(d) for d in dataset_dirs])
    for spec in encoders:
        get_entry(spec)
    unknown = set(extract_options.weights) - set(encoders)
    if unknown:
        raise RetbenchError(f"--weights given for encoder(s) not evaluated: {', '.join(sorted(unknown))}")
    device = str(resolve_device(extract_options.device))
    store = EmbeddingStore(extract_options.cache_dir or default_cache_dir()) if extract_options.use_cache else None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files.clear_previous_results(out_dir)
    from retbench.report import report_data

    items_files = {d.name: report_data.save_items(out_dir, d) for d in datasets}
    runs: list[dict] = []
    curves: dict[str, list] = {d.name: [] for d in datasets}
    for spec in encoders:
        started = time.perf_counter()
        encoder = build_encoder(
            spec,
            weights=extract_options.weights.get(spec),
            random_init=extract_options.random_init,
            preprocess=extract_options.preprocess,
            seed=extract_options.seed,
            device=device,
        )
        build_s = time.perf_counter() - started
        for dataset in datasets:
            bar = progress(f"{spec} on {dataset.name}", len(dataset))
            try:
                extraction = extract(dataset, encoder, batch_size=extract_options.batch_size,
                                     num_workers=extract_options.num_workers, precision=extract_options.precision,
                                     runtime=extract_options.runtime, channels_last=extract_options.channels_last,
                                     decode=extract_options.decode, store=store, progress=bar.update)  # fmt: skip
            finally:
                bar.close()
            if extraction.bad and not extract_options.skip_bad:
                raise BadImagesError(bad_images_message(dataset, extraction), extraction.bad)
            rows = extraction.good_rows
            evaluated = dataset.subset(rows) if extraction.bad else dataset
            run, evaluation = _evaluate_run(evaluated, extraction.vectors[rows], spec, eval_options, out_dir)
            run["ap"] = _align_to_list(evaluation.ap, rows, len(dataset))
            run["skipped"] = [b.to_dict() for b in extraction.bad]
            run["report_data"] = _save_retrievals(out_dir, run, extraction.vectors[rows], rows, items_files[dataset.name])
            run["config"].update(
                encoder=encoder.describe(),
                extraction=extract_options.to_dict(),
                device=device,
                cache_key=extraction.cache_key,
                runtime=extraction.runtime,
            )
            run["timings"].update(
                encoder_build_s=build_s,
                extract_s=extraction.timings.get("total_s"),
                extract_images_per_s=extraction.timings.get("images_per_s"),
                embeddings_from_cache=extraction.from_cache,
            )
            runs.append(run)
            curves[evaluated.name].append((spec, evaluation.recall_levels, evaluation.pr_curve, evaluation.map))
            if eval_options.figures and len(evaluated) > 1:
                figure = out_dir / files.gallery_figure_name(evaluated.name, spec)
                from retbench.report.galleries import plot_retrieval_grid

                plot_retrieval_grid(figure, evaluated, extraction.vectors[rows], evaluation.ap, spec)
        del encoder
    document = _write_folder(out_dir, runs, curves, eval_options, invocation)
    _write_report(out_dir, document, eval_options, extract_options.cache_dir)
    return document


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
    """Evaluate embeddings computed elsewhere: row i of the ``.npy`` matrix = line i of the list.

    The list supplies labels only; its image files need not exist (retrieval grids are
    drawn only when they all do). Rows are L2-normalised (cosine similarity).

    Raises:
        RetbenchError: unreadable matrix, wrong shape, row count != list length,
            non-finite or all-zero rows (named by line).
    """
    embeddings_path, labels_path = Path(embeddings_path), Path(labels_path)
    try:
        matrix = np.load(embeddings_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RetbenchError(f"--embeddings {embeddings_path}: cannot read a .npy matrix ({exc})") from exc
    labels = load_labels(labels_path)
    if matrix.ndim != 2:
        raise RetbenchError(f"--embeddings {embeddings_path}: expected a 2-D (N, D) matrix, got shape {matrix.shape}")
    if matrix.shape[0] != len(labels):
        raise RetbenchError(
            f"--embeddings {embeddings_path} has {matrix.shape[0]} rows but --labels {labels_path} lists "
            f"{len(labels)} images; row i must be the image on line i"
        )
    vectors = matrix.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    broken = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if len(broken):
        raise RetbenchError(
            f"--embeddings {embeddings_path}: {len(broken)} row(s) are non-finite or all zero (rows "
            f"{', '.join(str(int(i)) for i in broken[:20])}{' ...' if len(broken) > 20 else ''}); such rows cannot be ranked"
        )
    vectors = (vectors / norms[:, None]).astype(np.float32)
    name = dataset_name or labels_path.resolve().parent.name
    encoder = encoder_name or embeddings_path.stem
    dataset = _dataset_if_images_exist(labels_path, name, labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files.clear_previous_results(out_dir)
    summary = Dataset(labels_path.parent, name, tuple(f"row-{i}" for i in range(len(labels))), tuple(labels))
    run, evaluation = _evaluate_run(summary, vectors, encoder, eval_options, out_dir)
    run["ap"] = evaluation.ap
    run["skipped"] = []
    run["config"].update(embeddings_file=str(embeddings_path), labels_file=str(labels_path))
    from retbench.report import report_data

    with_images = dataset is not None
    items_file = report_data.save_items(out_dir, dataset if with_images else summary, images_available=with_images)
    run["report_data"] = _save_retrievals(out_dir, run, vectors, np.arange(len(labels)), items_file)
    if eval_options.figures and dataset is not None:
        from retbench.report.galleries import plot_retrieval_grid

        plot_retrieval_grid(out_dir / files.gallery_figure_name(name, encoder), dataset, vectors, evaluation.ap, encoder)
    curves = {name: [(encoder, evaluation.recall_levels, evaluation.pr_curve, evaluation.map)]}
    document = _write_folder(out_dir, [run], curves, eval_options, invocation)
    _write_report(out_dir, document, eval_options, None)
    return document


def _dataset_if_images_exist(labels_path: Path, name: str, labels: list[str]) -> Dataset | None:
    try:
        dataset = load_dataset(labels_path.parent, name=name)
    except RetbenchError:
        return None
    return dataset if list(dataset.labels) == labels else None


def _evaluate_run(dataset: Dataset, vectors: np.ndarray, encoder: str, options: EvalOptions, out_dir: Path):
    from retbench.metrics import evaluate

    started = time.perf_counter()
    evaluation = evaluate(vectors, list(dataset.labels), ks=options.ks, n_bootstrap=options.n_bootstrap,
                          seed=options.seed, device=options.device)  # fmt: skip
    run = {
        "dataset": dataset.name,
        "encoder": encoder,
        "map": evaluation.map,
        "ap": None,
        "n_images": len(dataset),
        "n_queries": evaluation.n_queries,
        "n_queries_without_relevant": evaluation.n_queries_without_relevant,
        "metrics": evaluation.metrics,
        "per_class": evaluation.per_class,
        "pr_curve": {"recall": evaluation.recall_levels, "precision": evaluation.pr_curve},
        "config": {"dataset": dataset.summary(), "evaluation": {**evaluation.config, **options.to_dict()}},
        "timings": {"evaluate_s": time.perf_counter() - started},
    }
    return run, evaluation


def _save_retrievals(out_dir: Path, run: dict, vectors: np.ndarray, lines: np.ndarray, items_file: str) -> dict:
    """Save every query's top-k and worst-k (list lines) for the report; return ``run["report_data"]``."""
    from retbench.report import report_data

    started = time.perf_counter()
    retrievals = report_data.compute_retrievals(vectors, lines)
    path = report_data.save_retrievals(out_dir, run["dataset"], run["encoder"], retrievals)
    run["timings"]["retrievals_s"] = time.perf_counter() - started
    return {"items": items_file, "retrievals": path,
            "top_k": int(retrievals["top_index"].shape[1]), "worst_k": int(retrievals["worst_index"].shape[1])}  # fmt: skip


def _write_report(out_dir: Path, document: dict, options: EvalOptions, cache_dir: Path | None) -> None:
    if not options.report:
        return
    from retbench.report.html import write_report

    try:
        write_report(out_dir, document, cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - every result file is written by now: a report bug must not fail a long run
        logger.exception("report.html could not be rendered (the other result files are complete); "
                         "retry with `retbench report %s`", out_dir)  # fmt: skip


def _align_to_list(ap: np.ndarray, rows: np.ndarray, n_lines: int) -> list[float | None]:
    """Per-query AP placed on the list's lines: None for skipped images and for queries without relevant items."""
    aligned: list[float | None] = [None] * n_lines
    for row, value in zip(rows.tolist(), ap.tolist()):
        aligned[row] = None if value != value else value
    return aligned


def _write_folder(out_dir: Path, runs: list[dict], curves: dict, options: EvalOptions, invocation: str | None) -> dict:
    from retbench.report.tables import map_table_csv, map_table_markdown

    written = [files.RESULTS_JSON, files.TABLE_MD, files.TABLE_CSV] + (["report.html"] if options.report else [])
    if options.figures:
        from retbench.report.plots import plot_pr_curves

        for dataset, dataset_curves in curves.items():
            if dataset_curves:
                plot_pr_curves(out_dir / files.pr_figure_name(dataset), dataset, dataset_curves)
                written.append(files.pr_figure_name(dataset))
        written += sorted(p.name for p in out_dir.glob("retrievals_*.png"))
    document = {
        "retbench": provenance.versions()["retbench"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "invocation": invocation,
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "runs": runs,
        "comparisons": _comparisons(runs, options),
        "files": written,
    }
    files.write_json(out_dir / files.RESULTS_JSON, document)
    from retbench.embeddings.store import atomic_write_text

    atomic_write_text(out_dir / files.TABLE_MD, map_table_markdown(runs))
    atomic_write_text(out_dir / files.TABLE_CSV, map_table_csv(runs))
    return files.to_jsonable(document)


def _comparisons(runs: list[dict], options: EvalOptions) -> list[dict]:
    """Paired comparison of every pair of encoders evaluated on the same dataset."""
    from retbench.metrics import paired_comparison

    comparisons = []
    by_dataset: dict[str, list[dict]] = {}
    for run in runs:
        by_dataset.setdefault(run["dataset"], []).append(run)
    for dataset, dataset_runs in by_dataset.items():
        for i, a in enumerate(dataset_runs):
            for b in dataset_runs[i + 1 :]:
                ap_a = np.array([np.nan if v is None else v for v in a["ap"]], dtype=np.float64)
                ap_b = np.array([np.nan if v is None else v for v in b["ap"]], dtype=np.float64)
                result = paired_comparison(ap_a, ap_b, n_bootstrap=options.n_bootstrap or 1000, seed=options.seed)
                comparisons.append({"dataset": dataset, "encoder_a": a["encoder"], "encoder_b": b["encoder"], **result})
    return comparisons
