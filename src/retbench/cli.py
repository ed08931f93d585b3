"""The ``retbench`` command line: a thin layer over the library (progress bars live here)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Sequence

from retbench._version import __version__
from retbench.cli_protocols import add_protocol_arguments, check_protocol_flags
from retbench.errors import RetbenchError

DEMO_ENCODERS = ("efficientnet_lite0", "colorhist")


def demo_dataset_dir() -> Path:
    """The demo dataset that ships inside the package (a CC0 subset of clothing-dataset-small)."""
    return Path(__file__).parent / "demo_data" / "clothing-demo"


def _tqdm_progress(description: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="img", dynamic_ncols=True, leave=False, file=sys.stderr)


def _add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("embedding extraction")
    group.add_argument("--weights", action="append", default=[], metavar="[ENCODER=]FILE",
                       help="local weights file (upstream formats); with several encoders write ENCODER=FILE")
    group.add_argument("--random-init", action="store_true",
                       help="random weights of the real architecture (tests and speed runs only; recorded in results)")
    group.add_argument("--preprocess", choices=("default", "study"), default="default",
                       help="default: the upstream library's eval transform; study: resize straight to 224x224")
    group.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    group.add_argument("--workers", type=int, default=None,
                       help="image decoding workers: threads on the CPU, processes on CUDA (default: one per core, max 8)")
    group.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    group.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                       help="fp32 (default, exact), bf16 autocast, fp16 autocast (CUDA)")
    group.add_argument("--runtime", choices=("torch", "openvino"), default="torch",
                       help="torch (default) or openvino (CPU; pip install 'retbench[openvino]'; export cached in the cache dir)")
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                       help="channels_last memory format for the torch runtime (default: on for CNNs; same fp32 numbers)")
    group.add_argument("--decode", choices=("full", "reduced", "fast"), default="full",
                       help="full (default, exact); reduced: JPEGs >= 2x the resize target decoded at 1/2-1/8 "
                            "scale (faster, pixels change slightly); fast: reduced, and resized by torch instead of "
                            "PIL (a few pixels differ by a few levels; for GPUs, where decoding is the bottleneck)")
    group.add_argument("--cache-dir", type=Path, default=None,
                       help="embedding cache (default: $RETBENCH_CACHE_DIR or the user cache dir)")
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    group.add_argument("--skip-bad", action="store_true",
                       help="leave out images that cannot be decoded (listed in results) instead of failing")
    group.add_argument("--seed", type=int, default=0, help="seed for random init, bootstrap and tests (default 0)")


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("--k", type=int, nargs="+", default=[1, 5, 10, 100], metavar="K",
                       help="cut-offs for precision@K, recall@K, mAP@K, nDCG@K (default 1 5 10 100)")
    group.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                       help="bootstrap resamples for 95%% confidence intervals (0: none; default 1000)")
    group.add_argument("--eval-device", default="cpu", help="where scores are computed: cpu or cuda (default cpu)")
    group.add_argument("--no-figures", action="store_true", help="skip PR curves and retrieval grids")
    group.add_argument("--no-report", action="store_true",
                       help="skip report.html (its data is still saved: `retbench report DIR` renders it later)")
    group.add_argument("--ap-definition", choices=("sklearn", "trapezoid"), default="sklearn",
                       help="sklearn (default): sklearn.metrics.average_precision_score; trapezoid: revisitop's "
                            "compute_ap, to reproduce published Revisited Oxford/Paris mAPs (docs/metrics.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retbench", description="Evaluate visual encoders for image retrieval.")
    parser.add_argument("--version", action="version", version=f"retbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run offline on the bundled demo dataset with real pretrained weights")
    demo.add_argument("--out", type=Path, default=Path("retbench-demo"), help="result folder (default ./retbench-demo)")
    demo.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    demo.add_argument("--cache-dir", type=Path, default=None, help="embedding cache")

    listing = commands.add_parser("encoders", help="list known encoders (timm:PATTERN / open_clip:PATTERN list those libraries)")
    listing.add_argument("pattern", nargs="?", default="*", help="glob, e.g. '*dino*' or 'timm:*convnext*'")

    evaluate = commands.add_parser("evaluate", help="evaluate encoders on datasets, or embeddings computed elsewhere")
    evaluate.add_argument("datasets", nargs="*", type=Path, metavar="DATASET_DIR",
                          help="folders holding images/ and list_of_images.txt")
    evaluate.add_argument("--encoder", action="append", default=[], metavar="SPEC",
                          help="encoder spec (repeatable): resnet34, dinov2_vits14, clip_vitb32, timm:NAME, open_clip:ARCH/TAG")
    evaluate.add_argument("--out", type=Path, required=True, help="result folder (earlier results there are replaced)")
    evaluate.add_argument("--embeddings", type=Path,
                          help="a (N, D) .npy matrix computed elsewhere (row i = list line i; the queries with "
                               "--gallery-embeddings, the gallery with --ground-truth)")
    evaluate.add_argument("--labels", type=Path, help="list_of_images.txt giving the labels of --embeddings")
    evaluate.add_argument("--name", help="dataset name in results for --embeddings (default: the list's folder; "
                                         "with --ground-truth: the file name without gnd_)")
    add_protocol_arguments(evaluate)
    _add_extract_arguments(evaluate)
    _add_eval_arguments(evaluate)

    report = commands.add_parser("report", help="render DIR/report.html from a result folder (self-contained HTML)")
    report.add_argument("folder", type=Path, metavar="DIR", help="a result folder written by `evaluate` or `demo`")
    report.add_argument("--cache-dir", type=Path, default=None,
                        help="cache root; thumbnails go to CACHE_DIR/thumbnails (default: $RETBENCH_CACHE_DIR or the user cache dir)")

    embed = commands.add_parser("embed", help="extract (and cache) embeddings of one dataset into a .npy file")
    embed.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    embed.add_argument("--encoder", required=True, metavar="SPEC")
    embed.add_argument("--out", type=Path, required=True, help="output .npy: (N, D) float32, row i = list line i")
    _add_extract_arguments(embed)
    return parser


def _weights_map(values: Sequence[str], encoders: Sequence[str]) -> dict[str, Path]:
    mapping: dict[str, Path] = {}
    for value in values:
        spec, sep, file = value.partition("=")
        if sep and spec in encoders:
            mapping[spec] = Path(file)
        elif len(encoders) == 1:
            mapping[encoders[0]] = Path(value)
        else:
            raise RetbenchError(
                f"--weights {value}: with several encoders, name the encoder: --weights ENCODER=FILE "
                f"(encoders: {', '.join(encoders)})"
            )
    return mapping


def _extract_options(args: argparse.Namespace, encoders: Sequence[str]):
    from retbench.runner import ExtractOptions

    return ExtractOptions(
        weights=_weights_map(args.weights, encoders),
        random_init=args.random_init,
        preprocess=args.preprocess,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        precision=args.precision,
        runtime=args.runtime,
        channels_last=args.channels_last,
        decode=args.decode,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        skip_bad=args.skip_bad,
        seed=args.seed,
    )


def _print_summary(document: dict, out_dir: Path) -> None:
    print((out_dir / "table.md").read_text(encoding="utf-8"))
    for run in document["runs"]:
        if run.get("skipped"):
            print(f"note: {len(run['skipped'])} unreadable image(s) skipped in {run['dataset']} (see results.json)")
        if run.get("n_queries_without_relevant"):
            why = {"query/gallery": "their label is not in the gallery",
                   "ground truth": "an empty ok list"}.get(run["config"].get("protocol"), "single-image classes")  # fmt: skip
            print(f"note: {run['n_queries_without_relevant']} query(ies) of {run['dataset']} have no relevant item "
                  f"({why}): AP null, left out of the mAP")  # fmt: skip
        if run["config"].get("encoder", {}).get("weights", {}).get("kind") == "random-init":
            print(f"note: {run['encoder']} used RANDOM weights (--random-init): its numbers say nothing about the model")
    if (out_dir / "report.html").is_file():
        print(f"report: {out_dir / 'report.html'}")
    print(f"results written to {out_dir}/")


def _cmd_demo(args: argparse.Namespace, invocation: str) -> int:
    from retbench.runner import EvalOptions, ExtractOptions, evaluate_datasets

    dataset = demo_dataset_dir()
    print(f"retbench demo: {', '.join(DEMO_ENCODERS)} on the bundled demo dataset ({dataset})")
    options = ExtractOptions(device=args.device, cache_dir=args.cache_dir)
    document = evaluate_datasets([dataset], DEMO_ENCODERS, args.out, options, EvalOptions(),
                                 progress=_tqdm_progress, invocation=invocation)  # fmt: skip
    _print_summary(document, args.out)
    return 0


def _cmd_encoders(args: argparse.Namespace, invocation: str) -> int:
    from retbench.encoders import list_encoders

    entries = list_encoders(args.pattern)
    if not entries:
        print(f"no encoder matches {args.pattern!r}")
        return 1
    rows = [("name", "dim", "backend", "weights local", "weights source")]
    for e in entries:
        rows.append((e.name, str(e.dim or "?"), e.backend, "yes" if e.weights_available() else "no", e.weights_source))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    return 0


def _cmd_evaluate(args: argparse.Namespace, invocation: str) -> int:
    from retbench.runner import EvalOptions

    eval_options = EvalOptions(ks=tuple(args.k), n_bootstrap=args.bootstrap, seed=args.seed,
                               figures=not args.no_figures, device=args.eval_device,
                               report=not args.no_report, ap_definition=args.ap_definition)  # fmt: skip
    check_protocol_flags(args)
    _check_eval_device(args.eval_device)
    if args.embeddings is not None:
        document = _evaluate_embeddings(args, eval_options, invocation)
    else:
        document = _evaluate_datasets(args, eval_options, invocation)
    _print_summary(document, args.out)
    return 0


def _check_eval_device(device: str) -> None:
    """--eval-device is cpu, or cuda / cuda:N on a machine where torch sees a GPU."""
    if device == "cpu":
        return
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise RetbenchError(f"--eval-device must be cpu, cuda or cuda:N, got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise RetbenchError(f"--eval-device {device}: torch sees no CUDA GPU on this machine; use --eval-device cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise RetbenchError(f"--eval-device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def _evaluate_embeddings(args: argparse.Namespace, eval_options, invocation: str) -> dict:
    from retbench.protocol_runs import (
        SETUPS,
        evaluate_ground_truth_files,
        evaluate_query_gallery_files,
    )
    from retbench.runner import evaluate_embeddings_file

    if args.ground_truth is not None:
        return evaluate_ground_truth_files(args.embeddings, args.query_embeddings, args.ground_truth,
                                           args.setups or SETUPS, args.out, eval_options, dataset_name=args.name,
                                           invocation=invocation)  # fmt: skip
    if args.gallery_embeddings is not None:
        return evaluate_query_gallery_files(args.embeddings, args.labels, args.gallery_embeddings, args.gallery_labels,
                                            args.out, eval_options, dataset_name=args.name,
                                            invocation=invocation)  # fmt: skip
    return evaluate_embeddings_file(args.embeddings, args.labels, args.out, eval_options, dataset_name=args.name,
                                    invocation=invocation)  # fmt: skip


def _evaluate_datasets(args: argparse.Namespace, eval_options, invocation: str) -> dict:
    from retbench.protocol_runs import (
        SETUPS,
        evaluate_ground_truth_dataset,
        evaluate_query_gallery_dataset,
    )
    from retbench.runner import evaluate_datasets

    if not args.datasets:
        raise RetbenchError("give at least one DATASET_DIR (or --embeddings FILE.npy --labels LIST.txt)")
    if not args.encoder:
        raise RetbenchError("give at least one --encoder SPEC (`retbench encoders` lists them)")
    protocol = "--queries/--gallery" if args.queries is not None else "--ground-truth" if args.ground_truth else None
    if protocol and len(args.datasets) > 1:
        raise RetbenchError(f"{protocol} evaluates one dataset: give one DATASET_DIR (got {len(args.datasets)}: "
                            f"{', '.join(str(d) for d in args.datasets)}); run once per dataset with its own --out")  # fmt: skip
    extract_options = _extract_options(args, args.encoder)
    common = dict(progress=_tqdm_progress, invocation=invocation)
    if args.queries is not None:
        return evaluate_query_gallery_dataset(args.datasets[0], args.queries, args.gallery, args.encoder, args.out,
                                              extract_options, eval_options, **common)  # fmt: skip
    if args.ground_truth is not None:
        return evaluate_ground_truth_dataset(args.datasets[0], args.ground_truth, args.setups or SETUPS, args.encoder,
                                             args.out, extract_options, eval_options, **common)  # fmt: skip
    return evaluate_datasets(args.datasets, args.encoder, args.out, extract_options, eval_options, **common)


def _cmd_report(args: argparse.Namespace, invocation: str) -> int:
    import time

    from retbench.report.html import write_report

    started = time.perf_counter()
    path = write_report(args.folder, cache_dir=args.cache_dir)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, {time.perf_counter() - started:.1f} s): open it in any browser, offline")
    return 0


def _cmd_embed(args: argparse.Namespace, invocation: str) -> int:
    import json

    import numpy as np

    from retbench.atomic_files import atomic_write_bytes, atomic_write_text
    from retbench.datasets import load_dataset
    from retbench.run_output import Extractor

    dataset = load_dataset(args.dataset)
    extractor = Extractor([args.encoder], _extract_options(args, [args.encoder]), _tqdm_progress)
    encoder, _ = extractor.build(args.encoder)
    result, rows = extractor.extract(dataset, encoder, f"{args.encoder} on {dataset.name}")
    import io

    buffer = io.BytesIO()
    np.save(buffer, result.vectors[rows], allow_pickle=False)
    out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(".npy")
    atomic_write_bytes(out, buffer.getvalue())
    sidecar = {
        "invocation": invocation,
        "dataset": dataset.summary(),
        "encoder": encoder.describe(),
        "shape": [len(rows), encoder.dim],
        "rows": "row i = line i of the list" if not result.bad else "rows of the images not in 'skipped', in list order",
        "skipped": [b.to_dict() for b in result.bad],
        "cache_key": result.cache_key,
        "runtime": result.runtime,
        "timings": result.timings,
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1, default=str) + "\n")
    print(f"wrote {out} ({len(rows)} x {encoder.dim} float32, unit rows) and {out.with_suffix('.json')}")
    if result.bad:
        print(f"note: {len(result.bad)} unreadable image(s) skipped; they are listed in {out.with_suffix('.json')}")
    return 0


_COMMANDS = {"demo": _cmd_demo, "encoders": _cmd_encoders, "evaluate": _cmd_evaluate, "embed": _cmd_embed,
             "report": _cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    invocation = "retbench " + shlex.join(argv)
    try:
        return _COMMANDS[args.command](args, invocation)
    except RetbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (finished embedding chunks are cached; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
