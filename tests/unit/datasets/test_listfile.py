import os
from pathlib import Path

import pytest

from retbench.datasets import load_dataset, load_labels
from retbench.errors import DatasetError
from tests.conftest import make_dataset, make_image


def write_list(root: Path, text: str | bytes) -> Path:
    path = root / "list_of_images.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "ds"
    for i, label in enumerate(["a", "a", "b"]):
        make_image(root / "images" / f"{label}/{i}.png", (100, 100, 100), i)
    return root


def test_list_order_is_row_order(root):
    write_list(root, "b/2.png\tb\na/0.png\ta\na/1.png\ta\n")
    dataset = load_dataset(root)
    assert dataset.paths == ("b/2.png", "a/0.png", "a/1.png")
    assert dataset.labels == ("b", "a", "a")
    assert dataset.lines == (1, 2, 3)
    assert dataset.name == "ds"


def test_bom_crlf_blank_lines_and_spaces_around_label_are_tolerated(root):
    write_list(root, b"\xef\xbb\xbfa/0.png\ta\r\n\r\na/1.png\t a \r\nb/2.png\tb")
    dataset = load_dataset(root)
    assert dataset.labels == ("a", "a", "b")
    assert dataset.lines == (1, 3, 4)


def test_non_ascii_labels(root):
    write_list(root, "a/0.png\tchaussure é\na/1.png\t靴\n")
    assert load_dataset(root).labels == ("chaussure é", "靴")


def test_every_problem_is_reported_with_file_and_line(root):
    text = "a/0.png\ta\nmissing.png\ta\na/1.png\t\na/0.png\ta\n../x.png\ta\n/etc/passwd\ta\na/1.png b\n"
    write_list(root, text)
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    message = str(info.value)
    assert "7 problem(s)" not in message  # 6 problems: line 1 is fine
    assert "6 problem(s)" in message
    assert "list_of_images.txt:2: missing file 'missing.png'" in message
    assert "list_of_images.txt:3: empty label" in message
    assert "list_of_images.txt:4: duplicate path 'a/0.png' (first listed on line 1)" in message
    assert "list_of_images.txt:5: path '../x.png' contains '..'" in message
    assert "list_of_images.txt:6: absolute path '/etc/passwd'" in message
    assert "list_of_images.txt:7: expected 'relative/path<TAB>label', got 1 field(s) (the separator must be a TAB" in message


def test_symlink_out_of_the_dataset_is_refused(root, tmp_path):
    outside = tmp_path / "outside.png"
    make_image(outside, (1, 2, 3), 9)
    os.symlink(outside, root / "images" / "a" / "link.png")
    write_list(root, "a/link.png\ta\n")
    with pytest.raises(DatasetError, match=r"list_of_images.txt:1: path 'a/link.png' leads outside the images/ folder"):
        load_dataset(root)


def test_symlink_inside_the_dataset_is_fine(root):
    os.symlink(root / "images" / "a" / "0.png", root / "images" / "b" / "link.png")
    write_list(root, "b/link.png\tb\na/0.png\ta\n")
    assert len(load_dataset(root)) == 2


def test_wrong_field_count(root):
    write_list(root, "a/0.png\ta\textra\n")
    with pytest.raises(DatasetError, match=r":1: expected 'relative/path<TAB>label', got 3 field\(s\)"):
        load_dataset(root)


def test_not_utf8(root):
    write_list(root, b"a/0.png\ta\na/1.png\t\xff\xfe\n")
    with pytest.raises(DatasetError, match=r"list_of_images.txt:2: not valid UTF-8"):
        load_dataset(root)


def test_empty_list(root):
    write_list(root, "\n\n")
    with pytest.raises(DatasetError, match="no images listed"):
        load_dataset(root)


def test_missing_folder_and_missing_images_dir(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images/ folder"):
        load_dataset(tmp_path / "empty")


def test_list_file_path_is_accepted_for_the_folder(root):
    write_list(root, "a/0.png\ta\n")
    assert load_dataset(root / "list_of_images.txt").paths == ("a/0.png",)


def test_class_folders_without_list(tmp_path, caplog):
    root = make_dataset(tmp_path / "folders", per_class=2, list_file=False)
    (root / "images" / "red" / "notes.txt").write_text("not an image")
    dataset = load_dataset(root)
    assert dataset.labels == ("blue", "blue", "green", "green", "red", "red")
    assert dataset.paths[0] == "blue/000.png"
    assert "notes.txt" in caplog.text  # ignored files are reported, not dropped silently


def test_class_folders_symlink_out_refused(tmp_path):
    root = make_dataset(tmp_path / "folders", per_class=1, list_file=False)
    outside = tmp_path / "x.png"
    make_image(outside, (0, 0, 0), 1)
    os.symlink(outside, root / "images" / "red" / "evil.png")
    with pytest.raises(DatasetError, match="lead outside the images/ folder"):
        load_dataset(root)


def test_class_folders_without_images(tmp_path):
    (tmp_path / "d" / "images" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found in class folders"):
        load_dataset(tmp_path / "d")


def test_load_labels_does_not_need_images(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("x/1.jpg\tcat\nx/2.jpg\tdog\n", encoding="utf-8")
    assert load_labels(path) == ["cat", "dog"]


def test_manifest_hash_changes_when_an_image_changes(root):
    write_list(root, "a/0.png\ta\na/1.png\ta\n")
    dataset = load_dataset(root)
    before = dataset.manifest_hash()
    assert dataset.manifest_hash() == before
    make_image(root / "images" / "a" / "1.png", (0, 0, 0), 42, size=(90, 70))
    assert dataset.manifest_hash() != before


def test_subset_and_summary(root):
    write_list(root, "a/0.png\ta\na/1.png\ta\nb/2.png\tb\n")
    dataset = load_dataset(root)
    sub = dataset.subset([2, 0])
    assert sub.paths == ("b/2.png", "a/0.png") and sub.lines == (3, 1)
    assert dataset.summary()["singleton_classes"] == ["b"]
    assert dataset.where(1).endswith("list_of_images.txt:2")
