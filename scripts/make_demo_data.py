"""Build the demo dataset that ships inside the package (reproducible; run once, output committed).

A class-balanced subset of clothing-dataset-small (CC0-1.0, github alexeygrigorev/
clothing-dataset-small @ 11961516), taken from ../shared/data/clothing10: for each of the
10 classes, PER_CLASS images drawn with a fixed seed from the sorted file list, shrunk so
the shorter side is at most MAX_SIDE pixels (JPEG quality 90) to keep the package small.

    python scripts/make_demo_data.py ../shared/data/clothing10 src/retbench/demo_data/clothing-demo
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image

PER_CLASS = 30
MAX_SIDE = 256
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()

    entries: dict[str, list[str]] = {}
    for line in (args.source / "list_of_images.txt").read_text(encoding="utf-8").splitlines():
        path, label = line.split("\t")
        entries.setdefault(label, []).append(path)
    if args.target.exists():
        shutil.rmtree(args.target)
    rng = random.Random(SEED)
    lines = []
    for label in sorted(entries):
        chosen = sorted(rng.sample(sorted(entries[label]), PER_CLASS))
        for rel in chosen:
            with Image.open(args.source / "images" / rel) as image:
                image = image.convert("RGB")
                scale = MAX_SIDE / min(image.size)
                if scale < 1:
                    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
                out = args.target / "images" / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                image.save(out, quality=90)
            lines.append(f"{rel}\t{label}")
    (args.target / "list_of_images.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(args.source / "LICENSE", args.target / "LICENSE")
    (args.target / "SOURCE.md").write_text(
        "# clothing-demo\n\n"
        f"{len(lines)} images, {PER_CLASS} per class for {len(entries)} classes: a class-balanced subset of "
        "clothing-dataset-small by Alexey Grigorev (https://github.com/alexeygrigorev/clothing-dataset-small, "
        "commit 11961516; train/validation/test merged, file names prefixed with their split), "
        "released under CC0-1.0 (see LICENSE).\n\n"
        f"Chosen with seed {SEED} from the sorted file list of each class and shrunk so that the shorter side is "
        f"at most {MAX_SIDE} px (JPEG quality 90). Rebuild with `python scripts/make_demo_data.py "
        "../shared/data/clothing10 src/retbench/demo_data/clothing-demo`.\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
