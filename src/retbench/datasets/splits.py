"""A dataset folder split into queries and a gallery by two list files.

Both lists have the format of ``list_of_images.txt`` (``relative/path<TAB>label`` per line, paths
relative to the dataset's ``images/``) and are validated like it, with ``file:line`` errors. An
image may not be in both lists: the query/gallery protocol ranks every gallery item for every
query without excluding anything, so a query found in the gallery would retrieve itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from retbench.datasets.dataset import IMAGES_DIR, Dataset
from retbench.datasets.listfile import _summarise, parse_list_file
from retbench.errors import DatasetError


def load_query_gallery(dataset_dir: str | Path, queries_file: str | Path, gallery_file: str | Path, *,
                       name: str | None = None) -> tuple[Dataset, Dataset]:  # fmt: skip
    """The queries and the gallery of one dataset folder.

    Args:
        dataset_dir: the folder holding ``images/`` (a ``list_of_images.txt`` there is not used).
        queries_file, gallery_file: list files; their paths are relative to ``dataset_dir/images``.
        name: dataset name in results (default: the folder name).

    Returns:
        ``(queries, gallery)``: two :class:`Dataset` rooted at ``dataset_dir``, items in list order,
        named ``name``.

    Raises:
        DatasetError: a missing folder, an invalid list (every problem as ``file:line``), or images
            listed in both files (each as ``queries:line`` and ``gallery:line``).
    """
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (expected a folder holding images/)")
    images_dir = root / IMAGES_DIR
    if not images_dir.is_dir():
        raise DatasetError(f"{root}: no images/ folder (--queries and --gallery list paths relative to DATASET/images)")
    name = name or root.resolve().name
    queries_file, gallery_file = Path(queries_file).expanduser(), Path(gallery_file).expanduser()
    parsed = {}
    for flag, list_file in (("--queries", queries_file), ("--gallery", gallery_file)):
        if not list_file.is_file():
            raise DatasetError(f"{flag} {list_file}: no such file (a list of 'relative/path<TAB>label' lines)")
        parsed[flag] = parse_list_file(list_file, images_dir)
    q_paths, q_labels, q_lines = parsed["--queries"]
    g_paths, g_labels, g_lines = parsed["--gallery"]
    check_disjoint(queries_file, q_paths, q_lines, gallery_file, g_paths, g_lines, images_dir)
    queries = Dataset(root, name, tuple(q_paths), tuple(q_labels), tuple(q_lines), queries_file)
    gallery = Dataset(root, name, tuple(g_paths), tuple(g_labels), tuple(g_lines), gallery_file)
    return queries, gallery


def check_disjoint(queries_file: Path, q_paths: Sequence[str], q_lines: Sequence[int], gallery_file: Path,
                   g_paths: Sequence[str], g_lines: Sequence[int], images_dir: Path | None = None) -> None:  # fmt: skip
    """Raise a :class:`DatasetError` naming every image listed in both files (``file:line`` of each).

    With ``images_dir``, paths are compared as resolved files (``a/../b.jpg`` and a symlink count as
    the file they lead to); without it (embeddings computed elsewhere), as written.
    """
    def key(rel: str):
        return (images_dir / rel).resolve() if images_dir is not None else rel

    in_gallery = {key(rel): line for rel, line in zip(g_paths, g_lines)}
    both = []
    for rel, line in zip(q_paths, q_lines):
        g_line = in_gallery.get(key(rel))
        if g_line is not None:
            both.append(f"{queries_file}:{line}: {rel!r} is also in the gallery ({gallery_file}:{g_line})")
    if both:
        raise DatasetError(
            _summarise(queries_file, both).replace("problem(s) in the list file", "image(s) in both lists", 1)
            + "\nA query must not be in the gallery (nothing is excluded from its ranking): remove it from one list, "
            "or use leave-one-out (no --queries/--gallery) to let every image query all the others."
        )
