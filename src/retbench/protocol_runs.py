"""The query/gallery and ground-truth protocols, end to end: inputs -> embeddings -> evaluation -> a result folder.

- Query/gallery: two lists of one dataset folder (:func:`evaluate_query_gallery_dataset`) or two
  embedding matrices with their label lists (:func:`evaluate_query_gallery_files`); every query
  ranks every gallery item, relevant = same label (queries are not in the gallery).
- Ground truth (Revisited Oxford/Paris ``gnd_*.pkl``): per-query ``ok`` / ``junk`` lists, one run
  per setup (easy, medium, hard), named ``<dataset> (<setup>)``; from a folder of
  ``<name>.jpg`` images with the queries cropped to their boxes
  (:func:`evaluate_ground_truth_dataset`) or from embedding matrices
  (:func:`evaluate_ground_truth_files`).

``run["ap"][i]`` is the AP of the query on line i of the query list (``qimlist[i]``), null for a
query without relevant items or an unreadable image; ``n_images`` is the number of ranked gallery
items, ``n_queries`` the number of evaluated queries.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from retbench.datasets import Dataset, load_query_gallery, revisited_datasets
from retbench.datasets.listfile import parse_list_file
from retbench.datasets.splits import check_disjoint
from retbench.errors import RetbenchError
from retbench.metrics.revisited import SETUP_RULES, SETUPS
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
from retbench.runner import EvalOptions, ExtractOptions


def evaluate_query_gallery_dataset(dataset_dir: str | Path, queries_file: str | Path, gallery_file: str | Path,
                                   encoders: Sequence[str], out_dir: str | Path,
                                   extract_options: ExtractOptions = ExtractOptions(),
                                   eval_options: EvalOptions = EvalOptions(), *, progress: ProgressFactory | None = None,
                                   invocation: str | None = None) -> dict:  # fmt: skip
    """Every encoder on the queries / gallery of ``dataset_dir`` (lists as :func:`retbench.datasets.load_query_gallery`).

    Both lists are extracted through the embedding cache. Returns the results document.
    """
    from retbench.report import report_data

    queries, gallery = load_query_gallery(dataset_dir, queries_file, gallery_file)
    extractor = Extractor(encoders, extract_options, progress)
    out_dir = prepare_out_dir(out_dir)
    name = queries.name
    items = _save_split_items(out_dir, name, queries, gallery, True)
    inputs = {"dataset_dir": str(dataset_dir), "queries_file": str(queries_file), "gallery_file": str(gallery_file)}
    runs = []
    for spec in encoders:
        encoder, build_s = extractor.build(spec)
        (q_ext, q_rows), (g_ext, g_rows) = extractor.extract_each(
            encoder, [(queries, f"{spec} on {name} queries"), (gallery, f"{spec} on {name} gallery")])
        q_vectors, g_vectors = q_ext.vectors[_some(q_rows, "--queries")], g_ext.vectors[_some(g_rows, "--gallery")]
        run = _query_gallery_run(name, spec, queries.subset(q_rows), gallery.subset(g_rows), q_vectors, g_vectors,
                                 eval_options, inputs, _split_summary(name, queries, gallery))  # fmt: skip
        run["ap"] = align_to_list(run["ap"], q_rows, len(queries))
        run["skipped"] = _skipped(q_ext, g_ext)
        arrays = save_retrievals(out_dir, run, partial(report_data.compute_gallery_retrievals, q_vectors, q_rows, g_vectors,
                                                       g_rows, query_labels=queries.labels,
                                                       gallery_labels=gallery.labels), *items)  # fmt: skip
        extractor.describe(run, encoder, build_s, [q_ext, g_ext])
        runs.append(run)
        draw_grid(out_dir, run, arrays, queries, gallery, eval_options, extract_options.cache_dir)
        del encoder
    return write_folder(out_dir, runs, eval_options, invocation, extract_options.cache_dir)


def evaluate_query_gallery_files(query_embeddings: str | Path, query_labels: str | Path,
                                 gallery_embeddings: str | Path, gallery_labels: str | Path, out_dir: str | Path,
                                 eval_options: EvalOptions = EvalOptions(), *, dataset_name: str | None = None,
                                 encoder_name: str | None = None, invocation: str | None = None) -> dict:  # fmt: skip
    """Query/gallery evaluation of embeddings computed elsewhere (row i of each matrix = line i of its list).

    The lists supply labels; when a list's paths exist under ``images/`` beside it, the report and
    the grids show the images. A path listed in both lists is an error (queries are not in the gallery).
    """
    from retbench.report import report_data

    query_labels, gallery_labels = Path(query_labels), Path(gallery_labels)
    lists = {}
    for flag, path in (("--labels", query_labels), ("--gallery-labels", gallery_labels)):
        lists[flag] = parse_list_file(path, images_dir=None)
    (q_paths, q_labels, q_lines), (g_paths, g_labels, g_lines) = lists["--labels"], lists["--gallery-labels"]
    check_disjoint(query_labels, q_paths, q_lines, gallery_labels, g_paths, g_lines)
    q_vectors = load_embeddings(Path(query_embeddings), "--embeddings", len(q_labels),
                                f"--labels {query_labels} lists {len(q_labels)} images; row i must be the image on line i")  # fmt: skip
    g_vectors = load_embeddings(Path(gallery_embeddings), "--gallery-embeddings", len(g_labels),
                                f"--gallery-labels {gallery_labels} lists {len(g_labels)} images; "
                                "row i must be the image on line i")  # fmt: skip
    if q_vectors.shape[1] != g_vectors.shape[1]:
        raise RetbenchError(f"--embeddings {query_embeddings} has dimension {q_vectors.shape[1]} but --gallery-embeddings "
                            f"{gallery_embeddings} has {g_vectors.shape[1]}: both must come from the same encoder")  # fmt: skip
    name = dataset_name or query_labels.resolve().parent.name
    encoder = encoder_name or Path(query_embeddings).stem
    queries = _list_dataset(query_labels, name, q_paths, q_labels, q_lines)
    gallery = _list_dataset(gallery_labels, name, g_paths, g_labels, g_lines)
    with_images = _has_images(queries) and _has_images(gallery)
    out_dir = prepare_out_dir(out_dir)
    items = _save_split_items(out_dir, name, queries, gallery, with_images)
    inputs = {"embeddings_file": str(query_embeddings), "labels_file": str(query_labels),
              "gallery_embeddings_file": str(gallery_embeddings), "gallery_labels_file": str(gallery_labels)}  # fmt: skip
    run = _query_gallery_run(name, encoder, queries, gallery, q_vectors, g_vectors, eval_options, inputs,
                             _split_summary(name, queries, gallery))  # fmt: skip
    run["ap"] = align_to_list(run["ap"], np.arange(len(q_labels)), len(q_labels))
    arrays = save_retrievals(out_dir, run, partial(report_data.compute_gallery_retrievals, q_vectors,
                                                   np.arange(len(q_labels)), g_vectors, np.arange(len(g_labels)),
                                                   query_labels=q_labels, gallery_labels=g_labels), *items)  # fmt: skip
    if with_images:
        draw_grid(out_dir, run, arrays, queries, gallery, eval_options, None)
    return write_folder(out_dir, [run], eval_options, invocation, None)


def evaluate_ground_truth_dataset(dataset_dir: str | Path, ground_truth: str | Path, setups: Sequence[str],
                                  encoders: Sequence[str], out_dir: str | Path,
                                  extract_options: ExtractOptions = ExtractOptions(),
                                  eval_options: EvalOptions = EvalOptions(), *, progress: ProgressFactory | None = None,
                                  invocation: str | None = None) -> dict:  # fmt: skip
    """Every encoder on a Revisited Oxford/Paris style folder: ``dataset_dir/images/<name>.jpg``.

    Gallery = ``imlist``; queries = ``qimlist``, each cropped to its ``bbx`` as revisitop does (see
    :mod:`retbench.datasets.revisited`; crops are kept under ``<cache dir>/crops``). One run per
    setup. A gallery image skipped as unreadable (``skip_bad``) is removed from every ok/junk list.
    """
    gnd = _load_ground_truth(ground_truth)
    setups = _check_setups(setups)
    crops_root = extract_options.cache_root() / "crops"
    queries, gallery = revisited_datasets(dataset_dir, gnd.imlist, gnd.qimlist, gnd.bbx, crops_root,
                                          source=str(ground_truth))  # fmt: skip
    extractor = Extractor(encoders, extract_options, progress)
    out_dir = prepare_out_dir(out_dir)
    name = queries.name
    items = _save_split_items(out_dir, name, queries, gallery, True)
    runs = []
    for spec in encoders:
        encoder, build_s = extractor.build(spec)
        (q_ext, q_rows), (g_ext, g_rows) = extractor.extract_each(
            encoder, [(queries, f"{spec} on {name} queries (cropped)"), (gallery, f"{spec} on {name} gallery")])
        q_vectors, g_vectors = q_ext.vectors[_some(q_rows, "qimlist")], g_ext.vectors[_some(g_rows, "imlist")]
        inputs = {"dataset_dir": str(dataset_dir), "ground_truth": str(ground_truth), "query_crops": str(crops_root)}
        for run, arrays in _ground_truth_runs(out_dir, name, spec, gnd, setups, q_vectors, q_rows, g_vectors, g_rows,
                                              eval_options, inputs, items, root=str(dataset_dir)):  # fmt: skip
            run["skipped"] = _skipped(q_ext, g_ext)
            extractor.describe(run, encoder, build_s, [q_ext, g_ext])
            runs.append(run)
            draw_grid(out_dir, run, arrays, queries, gallery, eval_options, extract_options.cache_dir)
        del encoder
    return write_folder(out_dir, runs, eval_options, invocation, extract_options.cache_dir)


def evaluate_ground_truth_files(gallery_embeddings: str | Path, query_embeddings: str | Path,
                                ground_truth: str | Path, setups: Sequence[str] = SETUPS, out_dir: str | Path = ".",
                                eval_options: EvalOptions = EvalOptions(), *, dataset_name: str | None = None,
                                encoder_name: str | None = None, invocation: str | None = None) -> dict:  # fmt: skip
    """Ground-truth evaluation of embeddings computed elsewhere.

    Args:
        gallery_embeddings: (N, D) ``.npy``, row i = ``imlist[i]`` of the ground truth.
        query_embeddings: (Q, D) ``.npy``, row q = ``qimlist[q]`` (cropped to its box, as revisitop requires).
        ground_truth: a ``gnd_*.pkl`` file (:func:`retbench.metrics.load_revisited_ground_truth`).
        setups: which of easy, medium, hard; one run each, named ``<dataset> (<setup>)``.
        dataset_name: default: the file name without ``gnd_`` (``gnd_roxford5k.pkl`` -> ``roxford5k``).
    """
    gnd = _load_ground_truth(ground_truth)
    setups = _check_setups(setups)
    g_vectors = load_embeddings(Path(gallery_embeddings), "--embeddings", len(gnd.imlist),
                                f"the ground truth {ground_truth} lists {len(gnd.imlist)} gallery images (imlist); "
                                "row i must be imlist[i]")  # fmt: skip
    q_vectors = load_embeddings(Path(query_embeddings), "--query-embeddings", len(gnd.qimlist),
                                f"the ground truth {ground_truth} lists {len(gnd.qimlist)} queries (qimlist); "
                                "row q must be qimlist[q]")  # fmt: skip
    if q_vectors.shape[1] != g_vectors.shape[1]:
        raise RetbenchError(f"--query-embeddings {query_embeddings} has dimension {q_vectors.shape[1]} but --embeddings "
                            f"{gallery_embeddings} has {g_vectors.shape[1]}: both must come from the same encoder")  # fmt: skip
    stem = Path(ground_truth).stem
    name = dataset_name or (stem[4:] if stem.startswith("gnd_") and len(stem) > 4 else stem)
    encoder = encoder_name or Path(gallery_embeddings).stem
    root = Path(ground_truth).parent
    queries = Dataset(root, name, tuple(gnd.qimlist), tuple(gnd.qimlist))
    gallery = Dataset(root, name, tuple(gnd.imlist), tuple(gnd.imlist))
    out_dir = prepare_out_dir(out_dir)
    items = _save_split_items(out_dir, name, queries, gallery, False)
    inputs = {"embeddings_file": str(gallery_embeddings), "query_embeddings_file": str(query_embeddings),
              "ground_truth": str(ground_truth)}  # fmt: skip
    runs = [run for run, _ in _ground_truth_runs(out_dir, name, encoder, gnd, setups, q_vectors,
                                                 np.arange(len(gnd.qimlist)), g_vectors, np.arange(len(gnd.imlist)),
                                                 eval_options, inputs, items, root=str(root))]  # fmt: skip
    return write_folder(out_dir, runs, eval_options, invocation, None)


def _query_gallery_run(name: str, encoder: str, queries: Dataset, gallery: Dataset, q_vectors: np.ndarray,
                       g_vectors: np.ndarray, options: EvalOptions, inputs: dict, summary: dict) -> dict:  # fmt: skip
    from retbench.metrics import evaluate_query_gallery

    started = time.perf_counter()
    evaluation = evaluate_query_gallery(q_vectors, list(queries.labels), g_vectors, list(gallery.labels),
                                        ks=options.ks, n_bootstrap=options.n_bootstrap, seed=options.seed,
                                        device=options.device, ap_definition=options.ap_definition)  # fmt: skip
    return run_record(name, encoder, evaluation, n_images=len(gallery), summary=summary, protocol="query/gallery",
                      inputs=inputs, options=options, evaluate_s=time.perf_counter() - started)  # fmt: skip


def _ground_truth_runs(out_dir: Path, name: str, encoder: str, gnd, setups: Sequence[str], q_vectors: np.ndarray,
                       q_rows: np.ndarray, g_vectors: np.ndarray, g_rows: np.ndarray, options: EvalOptions,
                       inputs: dict, items: tuple[str, str], *, root: str) -> list[tuple[dict, dict]]:  # fmt: skip
    """Every setup of one encoder: ok/junk remapped to the evaluated rows, evaluated, retrievals saved.

    The setups share one pass of query x gallery scores for the metrics and one search for the
    retrievals, so ``timings.evaluate_s`` and ``timings.retrievals_s`` of each run are the time for
    all of ``timings.shared_by``. Returns one ``(run, retrieval arrays)`` per setup, in order.
    """
    from retbench.metrics import evaluate_ground_truth_setups, revisited_setup
    from retbench.report import report_data

    position = np.full(len(gnd.imlist), -1, dtype=np.int64)
    position[g_rows] = np.arange(len(g_rows))

    def remap(lists: list[np.ndarray]) -> list[np.ndarray]:
        return [position[lists[q]][position[lists[q]] >= 0] for q in q_rows.tolist()]

    lists = {setup: tuple(remap(part) for part in revisited_setup(gnd, setup)) for setup in setups}
    started = time.perf_counter()
    evaluations = evaluate_ground_truth_setups(q_vectors, g_vectors, lists, ks=options.ks,
                                               n_bootstrap=options.n_bootstrap, seed=options.seed,
                                               device=options.device, ap_definition=options.ap_definition)  # fmt: skip
    evaluate_s = time.perf_counter() - started
    started = time.perf_counter()
    retrievals = report_data.compute_ground_truth_retrievals(q_vectors, q_rows, g_vectors, g_rows, lists)
    retrievals_s = time.perf_counter() - started
    out = []
    for setup in setups:
        summary = {"name": f"{name} ({setup})", "root": root, "n_images": len(gnd.imlist),
                   "n_queries": len(gnd.qimlist), "ground_truth": inputs["ground_truth"], "setup": setup,
                   "setup_rule": SETUP_RULES[setup]}  # fmt: skip
        run = run_record(f"{name} ({setup})", encoder, evaluations[setup], n_images=len(g_rows), summary=summary,
                         protocol="ground truth", inputs={**inputs, "setup": setup}, options=options,
                         evaluate_s=evaluate_s)  # fmt: skip
        run["ap"] = align_to_list(run["ap"], q_rows, len(gnd.qimlist))
        arrays = save_retrievals(out_dir, run, lambda setup=setup: retrievals[setup], *items)  # times the write
        run["timings"].update(retrievals_s=retrievals_s + run["timings"]["retrievals_s"], shared_by=list(setups))
        out.append((run, arrays))
    return out


def _split_summary(name: str, queries: Dataset, gallery: Dataset) -> dict:
    """The gallery's summary (what is ranked) plus the queries' counts and both list files."""
    q = queries.summary()
    return {**gallery.summary(), "name": name, "n_queries": len(queries), "query_class_counts": q["class_counts"],
            "queries_file": str(queries.source), "gallery_file": str(gallery.source)}  # fmt: skip


def _save_split_items(out_dir: Path, name: str, queries: Dataset, gallery: Dataset, with_images: bool) -> tuple[str, str]:
    from retbench.report import report_data

    return (report_data.save_items(out_dir, queries, images_available=with_images, name=f"{name} queries"),
            report_data.save_items(out_dir, gallery, images_available=with_images, name=f"{name} gallery"))  # fmt: skip


def _list_dataset(list_file: Path, name: str, paths: list[str], labels: list[str], lines: list[int]) -> Dataset:
    """A list of embeddings computed elsewhere as a Dataset rooted beside it (images may not exist)."""
    return Dataset(list_file.parent, name, tuple(paths), tuple(labels), tuple(lines), list_file)


def _has_images(dataset: Dataset) -> bool:
    try:
        parse_list_file(dataset.source, dataset.images_dir)
    except RetbenchError:
        return False
    return True


def _skipped(query_extraction, gallery_extraction) -> list[dict]:
    """results.json ``skipped``: the unreadable images of both lists, each tagged with its list."""
    return ([{**b.to_dict(), "list": "queries"} for b in query_extraction.bad]
            + [{**b.to_dict(), "list": "gallery"} for b in gallery_extraction.bad])  # fmt: skip


def _some(rows: np.ndarray, what: str) -> np.ndarray:
    if len(rows) == 0:
        raise RetbenchError(f"no image of {what} could be read (all were skipped as unreadable): nothing to evaluate")
    return rows


def _load_ground_truth(path: str | Path):
    from retbench.metrics import load_revisited_ground_truth

    try:
        return load_revisited_ground_truth(path)
    except (OSError, ValueError) as exc:
        raise RetbenchError(f"--ground-truth: {exc}") from exc


def _check_setups(setups: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(setups))
    unknown = [s for s in chosen if s not in SETUPS]
    if unknown or not chosen:
        raise RetbenchError(f"--setups must name one or more of {', '.join(SETUPS)}, got {', '.join(setups) or 'none'}")
    return chosen
