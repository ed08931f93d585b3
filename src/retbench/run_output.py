"""The parts every evaluation flow shares: extraction with bad-image handling, reading embeddings
computed elsewhere, one run's record, the retrieval sidecars, and the result folder.

A *run* is one (dataset, encoder) cell of the results: a dict as written to results.json (see
DESIGN.md). Its ``config["protocol"]`` names how it was evaluated (``leave-one-out``,
``query/gallery``, ``ground truth``); ``config["protocol_inputs"]`` says from which files.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from retbench import provenance
from retbench.datasets import Dataset
from retbench.errors import BadImagesError, RetbenchError
from retbench.report import files

logger = logging.getLogger(__name__)


class Progress(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], Progress]


class Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def silent_progress(description: str, total: int) -> Progress:
    return Silent()


class Extractor:
    """Builds encoders and extracts datasets with the cache, failing on (or skipping) bad images."""

    def __init__(self, encoders, extract_options, progress: ProgressFactory | None) -> None:
        from retbench.embeddings import EmbeddingStore, resolve_device
        from retbench.encoders import get_entry

        for spec in encoders:
            get_entry(spec)
        unknown = set(extract_options.weights) - set(encoders)
        if unknown:
            raise RetbenchError(f"--weights given for encoder(s) not evaluated: {', '.join(sorted(unknown))}")
        self.options = extract_options
        self.progress = progress or silent_progress
        self.device = str(resolve_device(extract_options.device))
        cache_root = extract_options.cache_root()
        self.store = EmbeddingStore(cache_root) if extract_options.use_cache else None
        self.export_dir = cache_root / "openvino"  # exported OpenVINO models, also with --no-cache

    def build(self, spec: str):
        """``(encoder, build seconds)``."""
        from retbench.encoders import build_encoder

        started = time.perf_counter()
        encoder = build_encoder(spec, weights=self.options.weights.get(spec), random_init=self.options.random_init,
                                preprocess=self.options.preprocess, seed=self.options.seed,
                                device=self.device)  # fmt: skip
        return encoder, time.perf_counter() - started

    def extract(self, dataset: Dataset, encoder, description: str):
        """``(extraction, good rows)``; raises :class:`BadImagesError` on bad images unless ``skip_bad``."""
        return self.extract_each(encoder, [(dataset, description)])[0]

    def extract_each(self, encoder, parts: list[tuple[Dataset, str]]) -> list[tuple]:
        """:meth:`extract` of every ``(dataset, description)`` in turn; bad images of all of them are
        named in one :class:`BadImagesError`, raised after every part was read (unless ``skip_bad``)."""
        from retbench.embeddings import bad_images_message, extract

        o = self.options
        results, messages, bad = [], [], []
        for dataset, description in parts:
            bar = self.progress(description, len(dataset))
            try:
                extraction = extract(dataset, encoder, batch_size=o.batch_size, num_workers=o.num_workers,
                                     precision=o.precision, runtime=o.runtime, channels_last=o.channels_last,
                                     decode=o.decode, store=self.store, export_dir=self.export_dir,
                                     progress=bar.update)  # fmt: skip
            finally:
                bar.close()
            if extraction.bad and not o.skip_bad:
                messages.append(bad_images_message(dataset, extraction))
                bad.extend(extraction.bad)
            results.append((extraction, extraction.good_rows))
        if messages:
            raise BadImagesError("\n".join(messages), bad)
        return results

    def describe(self, run: dict, encoder, build_s: float, extractions: list) -> None:
        """Add the encoder, extraction settings and timings of ``extractions`` to ``run``."""
        run["config"].update(encoder=encoder.describe(), extraction=self.options.to_dict(), device=self.device,
                             cache_key=extractions[0].cache_key if len(extractions) == 1 else
                             [e.cache_key for e in extractions],
                             runtime=extractions[0].runtime)  # fmt: skip
        computed = [e for e in extractions if not e.from_cache]
        rates = [e.timings.get("images_per_s") for e in computed if e.timings.get("images_per_s")]
        run["timings"].update(
            encoder_build_s=build_s,
            extract_s=sum(e.timings.get("total_s") or 0.0 for e in extractions),
            extract_images_per_s=min(rates) if rates else None,
            embeddings_from_cache=not computed,
        )


def load_embeddings(path: Path, flag: str, n_rows: int, rows_from: str) -> np.ndarray:
    """A ``.npy`` matrix computed elsewhere as (n_rows, D) float32 unit rows (cosine similarity).

    Raises:
        RetbenchError: unreadable, not 2-D, ``n_rows`` mismatch (``rows_from`` says what the rows
            must match), non-finite or all-zero rows (named).
    """
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RetbenchError(f"{flag} {path}: cannot read a .npy matrix ({exc})") from exc
    if matrix.ndim != 2:
        raise RetbenchError(f"{flag} {path}: expected a 2-D (N, D) matrix, got shape {matrix.shape}")
    if matrix.shape[0] != n_rows:
        raise RetbenchError(f"{flag} {path} has {matrix.shape[0]} rows but {rows_from}")
    vectors = matrix.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    broken = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if len(broken):
        raise RetbenchError(
            f"{flag} {path}: {len(broken)} row(s) are non-finite or all zero (rows "
            f"{', '.join(str(int(i)) for i in broken[:20])}{' ...' if len(broken) > 20 else ''}); such rows cannot be ranked"
        )
    return (vectors / norms[:, None]).astype(np.float32)


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and delete the files an earlier run wrote there (results replace, never append)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files.clear_previous_results(out_dir)
    return out_dir


def run_record(name: str, encoder: str, evaluation, *, n_images: int, summary: dict, protocol: str,
               inputs: dict, options, evaluate_s: float) -> dict:  # fmt: skip
    """One run of results.json (``ap`` as evaluated; callers align it to list lines)."""
    return {
        "dataset": name,
        "encoder": encoder,
        "map": evaluation.map,
        "ap": evaluation.ap,
        "n_images": n_images,
        "n_queries": evaluation.n_queries,
        "n_queries_without_relevant": evaluation.n_queries_without_relevant,
        "metrics": evaluation.metrics,
        "per_class": evaluation.per_class,
        "pr_curve": {"recall": evaluation.recall_levels, "precision": evaluation.pr_curve},
        "config": {"protocol": protocol, "protocol_inputs": inputs, "dataset": summary,
                   "evaluation": {**options.to_dict(), **evaluation.config}},  # fmt: skip
        "timings": {"evaluate_s": evaluate_s},
        "skipped": [],
    }


def align_to_list(ap: np.ndarray, rows: np.ndarray, n_lines: int) -> list[float | None]:
    """Per-query AP placed on the list's lines: None for skipped images and for queries without relevant items."""
    aligned: list[float | None] = [None] * n_lines
    for row, value in zip(np.asarray(rows).tolist(), np.asarray(ap).tolist()):
        aligned[row] = None if value != value else value
    return aligned


def save_retrievals(out_dir: Path, run: dict, retrievals: Callable[[], dict], items_file: str,
                    gallery_items_file: str | None = None) -> dict:  # fmt: skip
    """Compute (timed) and save a run's retrievals, set ``run["report_data"]``; return the arrays."""
    from retbench.report import report_data

    started = time.perf_counter()
    arrays = retrievals()
    path = report_data.save_retrievals(out_dir, run["dataset"], run["encoder"], arrays)
    run["timings"]["retrievals_s"] = time.perf_counter() - started
    refs = {"items": items_file}
    if gallery_items_file is not None:
        refs["gallery_items"] = gallery_items_file
    refs.update(retrievals=path, top_k=int(arrays["top_index"].shape[1]), worst_k=int(arrays["worst_index"].shape[1]))
    run["report_data"] = refs
    return arrays


def draw_grid(out_dir: Path, run: dict, arrays: dict, queries: Dataset | None, gallery: Dataset | None,
              options, cache_dir: Path | None) -> None:  # fmt: skip
    """The retrieval grid PNG of a run (``arrays``: its retrievals), when figures are on and both
    lists have their images (None: they do not). Thumbnails come from the report's thumbnail cache
    under ``cache_dir`` (None: the default cache), so the grid and report.html decode each image once."""
    if not options.figures or queries is None or gallery is None:
        return
    if arrays["top_index"].shape[1] < 1 or arrays["worst_index"].shape[1] < 1 or not len(arrays["query"]):
        return
    from retbench.report.galleries import plot_retrieval_grid
    from retbench.report.html import thumbnail_cache
    from retbench.report.selection import ap_array

    figure = out_dir / files.gallery_figure_name(run["dataset"], run["encoder"])
    plot_retrieval_grid(figure, f"{run['dataset']} / {run['encoder']}", queries, gallery, ap_array(run["ap"]), arrays,
                        thumbnails=thumbnail_cache(cache_dir))  # fmt: skip


def _render_report(out_dir: Path, document: dict, cache_dir: Path | None) -> None:
    """report.html; a rendering failure is logged, never fatal (the other files are complete)."""
    from retbench.report.html import write_report as render

    try:
        render(out_dir, document, cache_dir=cache_dir)
    except Exception:
        logger.exception("report.html could not be rendered (the other result files are complete); "
                         "retry with `retbench report %s`", out_dir)  # fmt: skip


def write_folder(out_dir: Path, runs: list[dict], options, invocation: str | None, cache_dir: Path | None) -> dict:
    """results.json, table.md, table.csv, the PR figures and (unless ``options.report`` is off)
    report.html, its thumbnails cached under ``cache_dir`` (None: the default cache); return the
    results document."""
    from retbench.atomic_files import atomic_write_text
    from retbench.report.tables import map_table_csv, map_table_markdown

    written = [files.RESULTS_JSON, files.TABLE_MD, files.TABLE_CSV] + (["report.html"] if options.report else [])
    if options.figures:
        from retbench.report.plots import plot_pr_curves

        curves: dict[str, list] = {}
        for run in runs:
            pr = run["pr_curve"]
            curves.setdefault(run["dataset"], []).append((run["encoder"], pr["recall"], pr["precision"], run["map"]))
        for dataset, dataset_curves in curves.items():
            plot_pr_curves(out_dir / files.pr_figure_name(dataset), dataset, dataset_curves)
            written.append(files.pr_figure_name(dataset))
        written += sorted(p.name for p in out_dir.glob("retrievals_*.png"))
    comparison_list = comparisons(runs, options)
    document = {
        "retbench": provenance.versions()["retbench"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "invocation": invocation,
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "runs": runs,
        "comparisons": comparison_list,
        "files": written,
    }
    document = files.write_json(out_dir / files.RESULTS_JSON, document)
    atomic_write_text(out_dir / files.TABLE_MD, map_table_markdown(runs, comparison_list))
    atomic_write_text(out_dir / files.TABLE_CSV, map_table_csv(runs))
    if options.report:
        _render_report(out_dir, document, cache_dir)
    return document


def comparisons(runs: list[dict], options) -> list[dict]:
    """Paired comparison of every pair of encoders evaluated on the same dataset (the same queries)."""
    from retbench.metrics import paired_comparison
    from retbench.report.selection import ap_array

    out = []
    by_dataset: dict[str, list[dict]] = {}
    for run in runs:
        by_dataset.setdefault(run["dataset"], []).append(run)
    for dataset, dataset_runs in by_dataset.items():
        for i, a in enumerate(dataset_runs):
            for b in dataset_runs[i + 1 :]:
                result = paired_comparison(ap_array(a["ap"]), ap_array(b["ap"]), n_bootstrap=options.n_bootstrap or 1000, seed=options.seed)
                out.append({"dataset": dataset, "encoder_a": a["encoder"], "encoder_b": b["encoder"], **result})
    return out
