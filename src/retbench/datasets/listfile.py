"""Parse ``list_of_images.txt``: one ``relative/path<TAB>label`` per line.

Validation collects every problem (with ``file:line``) and raises one
:class:`~retbench.errors.DatasetError` that lists them all, so a user fixes the file
in one pass. Tolerated: a UTF-8 BOM, CRLF line ends, blank lines, spaces around the label.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from retbench.errors import DatasetError

_MAX_LISTED = 25


def parse_list_file(list_file: Path, images_dir: Path | None) -> tuple[list[str], list[str], list[int]]:
    """Read and validate a list file.

    Args:
        list_file: path of ``list_of_images.txt``.
        images_dir: the folder the paths are relative to; when given, every path must
            name an existing file inside it (no ``..``, absolute path or symlink out).
            ``None`` checks the syntax only (labels for bring-your-own embeddings).

    Returns:
        ``(paths, labels, line_numbers)``, each of length N, in file order.

    Raises:
        DatasetError: listing every problem as ``file:line: what (fix)``.
    """
    try:
        raw = list_file.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read list file {list_file}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{list_file}:{line}: not valid UTF-8 (save the file as UTF-8)") from exc

    paths: list[str] = []
    labels: list[str] = []
    numbers: list[int] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    root = images_dir.resolve() if images_dir is not None else None

    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{list_file}:{number}"
        fields = line.split("\t")
        if len(fields) != 2:
            hint = " (the separator must be a TAB, found spaces)" if len(fields) == 1 and " " in line else ""
            problems.append(f"{where}: expected 'relative/path<TAB>label', got {len(fields)} field(s){hint}: {line!r}")
            continue
        rel, label = fields[0].strip(), fields[1].strip()
        if not rel:
            problems.append(f"{where}: empty image path")
            continue
        if not label:
            problems.append(f"{where}: empty label for {rel!r} (every image needs a class label)")
            continue
        rel = rel.replace("\\", "/")
        problem = _path_problem(rel, root)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if rel in first_seen:
            problems.append(f"{where}: duplicate path {rel!r} (first listed on line {first_seen[rel]})")
            continue
        first_seen[rel] = number
        paths.append(rel)
        labels.append(label)
        numbers.append(number)

    if problems:
        raise DatasetError(_summarise(list_file, problems))
    if not paths:
        raise DatasetError(f"{list_file}: no images listed (expected lines 'relative/path<TAB>label')")
    return paths, labels, numbers


def _path_problem(rel: str, root: Path | None) -> str | None:
    """Why ``rel`` is not an acceptable image path under ``root``, or None if it is."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        return f"absolute path {rel!r} (paths must be relative to the images/ folder)"
    if ".." in pure.parts:
        return f"path {rel!r} contains '..' (paths must stay inside the images/ folder)"
    if root is None:
        return None
    full = root / rel
    try:
        resolved = full.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        return f"missing file {rel!r} (looked for {full})"
    except OSError as exc:
        return f"cannot access {rel!r}: {exc.strerror or exc}"
    if not resolved.is_relative_to(root):
        return f"path {rel!r} leads outside the images/ folder (to {resolved}; symlinks must stay inside)"
    if not resolved.is_file():
        return f"{rel!r} is not a file"
    if not os.access(resolved, os.R_OK):
        return f"{rel!r} is not readable (check its permissions)"
    return None


def _summarise(list_file: Path, problems: list[str]) -> str:
    shown = problems[:_MAX_LISTED]
    more = len(problems) - len(shown)
    head = f"{list_file}: {len(problems)} problem(s) in the list file:"
    tail = f"\n  ... and {more} more" if more else ""
    return head + "\n  " + "\n  ".join(shown) + tail
