"""The protocol flags of ``retbench evaluate`` (query/gallery, ground truth) and their validation.

Which protocol runs follows from the flags given (leave-one-out when none):

- query/gallery: ``DATASET_DIR --queries Q.txt --gallery G.txt``, or
  ``--embeddings Q.npy --labels Q.txt --gallery-embeddings G.npy --gallery-labels G.txt``;
- ground truth: ``DATASET_DIR --ground-truth gnd.pkl``, or
  ``--embeddings DB.npy --query-embeddings Q.npy --ground-truth gnd.pkl``.

Any other combination is refused with the form that works (exit 2, no traceback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retbench.errors import RetbenchError


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "protocol (default: leave-one-out, every image queries all the others)",
        "query/gallery: DATASET_DIR --queries Q.txt --gallery G.txt, or --embeddings Q.npy --labels Q.txt "
        "--gallery-embeddings G.npy --gallery-labels G.txt. Ground truth (Revisited Oxford/Paris): "
        "DATASET_DIR --ground-truth gnd_X.pkl (DATASET_DIR/images/<name>.jpg; queries cropped to their bbx), or "
        "--embeddings DB.npy --query-embeddings Q.npy --ground-truth gnd_X.pkl",
    )
    group.add_argument("--queries", type=Path, metavar="Q.txt",
                       help="query list (relative/path<TAB>label, paths relative to DATASET_DIR/images); needs --gallery")
    group.add_argument("--gallery", type=Path, metavar="G.txt",
                       help="gallery list, same format; no image may be in both lists")
    group.add_argument("--gallery-embeddings", type=Path, metavar="G.npy",
                       help="with --embeddings: the gallery's (N, D) matrix (row i = line i of --gallery-labels)")
    group.add_argument("--gallery-labels", type=Path, metavar="G.txt", help="list giving the labels of --gallery-embeddings")
    group.add_argument("--ground-truth", type=Path, metavar="GND.pkl",
                       help="per-query ok/junk ground truth (revisitop's gnd_roxford5k.pkl / gnd_rparis6k.pkl)")
    group.add_argument("--setups", nargs="+", choices=("easy", "medium", "hard"), default=None, metavar="SETUP",
                       help="with --ground-truth: easy, medium and/or hard (default: all three, one result each)")
    group.add_argument("--query-embeddings", type=Path, metavar="Q.npy",
                       help="with --ground-truth and --embeddings DB.npy: the queries' (Q, D) matrix (row q = qimlist[q])")


def check_protocol_flags(args: argparse.Namespace) -> None:
    """Reject flag combinations that name no protocol or two, with the form that works."""
    if (args.queries is None) != (args.gallery is None):
        raise RetbenchError("--queries and --gallery go together: DATASET_DIR --queries Q.txt --gallery G.txt "
                            "(both lists relative to DATASET_DIR/images)")  # fmt: skip
    if args.setups is not None and args.ground_truth is None:
        raise RetbenchError("--setups applies to --ground-truth GND.pkl only")
    if args.ground_truth is not None and (args.queries is not None or args.gallery_embeddings is not None
                                          or args.gallery_labels is not None):  # fmt: skip
        raise RetbenchError("--ground-truth defines the queries and the gallery itself: drop --queries/--gallery and "
                            "--gallery-embeddings/--gallery-labels")  # fmt: skip
    if args.embeddings is None:
        extra = [flag for flag, value in (("--gallery-embeddings", args.gallery_embeddings),
                                          ("--gallery-labels", args.gallery_labels),
                                          ("--query-embeddings", args.query_embeddings)) if value is not None]  # fmt: skip
        if extra:
            raise RetbenchError(f"{', '.join(extra)} evaluate(s) precomputed matrices and need(s) --embeddings: "
                                "--embeddings Q.npy --labels Q.txt --gallery-embeddings G.npy --gallery-labels G.txt, or "
                                "--embeddings DB.npy --query-embeddings Q.npy --ground-truth GND.pkl")  # fmt: skip
        return
    if args.datasets or args.encoder or args.queries is not None:
        raise RetbenchError("--embeddings evaluates precomputed matrices: drop DATASET_DIR, --encoder and --queries/--gallery")
    if args.ground_truth is not None:
        if args.query_embeddings is None:
            raise RetbenchError("--ground-truth with --embeddings DB.npy needs --query-embeddings Q.npy "
                                "(row q = qimlist[q], cropped to its bbx)")  # fmt: skip
        if args.labels is not None:
            raise RetbenchError("--ground-truth says what is relevant: drop --labels")
        return
    if args.query_embeddings is not None:
        raise RetbenchError("--query-embeddings goes with --ground-truth GND.pkl (for query/gallery labels use "
                            "--embeddings Q.npy --labels Q.txt --gallery-embeddings G.npy --gallery-labels G.txt)")  # fmt: skip
    if args.labels is None:
        raise RetbenchError("--embeddings needs --labels LIST.txt (row i of the matrix = line i of the list)")
    if (args.gallery_embeddings is None) != (args.gallery_labels is None):
        raise RetbenchError("--gallery-embeddings G.npy and --gallery-labels G.txt go together "
                            "(row i of the matrix = line i of the list)")  # fmt: skip
