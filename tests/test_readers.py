"""The three dataset readers, on made-up files and on the real data in ../shared/data."""
import json

import pytest
from PIL import Image

from sketchshop import datasets, vocab
from sketchshop.errors import UserError


def _img(path, size=(32, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def test_imagefolder_aliases(tmp_path):
    _img(tmp_path / "outwear" / "a.jpg")
    _img(tmp_path / "Jeans" / "b.png")
    (tmp_path / "Jeans" / "notes.txt").write_text("not an image")
    got = {(s.path.name, s.category) for s in datasets.read_imagefolder(tmp_path)}
    assert got == {("a.jpg", "outerwear"), ("b.png", "pants")}


def test_imagefolder_unknown_class_names_folder(tmp_path):
    _img(tmp_path / "spaceships" / "a.jpg")
    with pytest.raises(UserError, match="spaceships"):
        datasets.read_imagefolder(tmp_path)


def test_imagefolder_missing_or_empty(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        datasets.read_imagefolder(tmp_path / "nope")
    with pytest.raises(UserError, match="no images"):
        datasets.read_imagefolder(tmp_path)


def test_labels_csv(tmp_path):
    _img(tmp_path / "x" / "1.jpg")
    _img(tmp_path / "x" / "2.jpg")
    (tmp_path / "labels.csv").write_text(
        "file,category,colour,sleeve,pattern,shop\n"
        "x/1.jpg,Tee,Grey,short,stripe,acme\n"
        "x/2.jpg,top,,,,\n")
    a, b = datasets.read_labels_csv(tmp_path / "labels.csv")
    assert (a.category, a.colour, a.attributes, a.extra) == (
        "t-shirt", "gray", {"sleeve": "short", "pattern": "stripe"}, {"shop": "acme"})
    assert (b.category, b.colour, b.attributes) == ("top", None, {})


@pytest.mark.parametrize("body,culprit", [
    ("file,category\nx/1.jpg,spaceship\n", ":2: unknown category 'spaceship'"),
    ("file,category\nx/1.jpg,dress\nx/9.jpg,dress\n", ":3: image 'x/9.jpg' not found"),
    ("file,colour\nx/1.jpg,chartreuse-ish\n", ":2: unknown colour"),
    ("file,sleeve\nx/1.jpg,tentacles\n", ":2: unknown sleeve value"),
    ("name,category\nx/1.jpg,dress\n", ":1: no 'file' column"),
    ("file,category\n,dress\n", ":2: empty 'file'"),
    ("file,category\nx/1.jpg,dress,red,extra\n", ":2: 4 cells for the header's 2 columns"),
    ("file,category\n", "no rows under the header"),
    (b"file,category\nx/1.jpg,\xff\xfe\n", "not UTF-8 text"),
])
def test_labels_csv_errors_name_the_line(tmp_path, body, culprit):
    _img(tmp_path / "x" / "1.jpg")
    (tmp_path / "labels.csv").write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(UserError, match=culprit.replace("(", r"\(")):
        datasets.read_labels_csv(tmp_path / "labels.csv")


def test_labels_csv_says_when_a_file_is_listed_twice(tmp_path, caplog):
    _img(tmp_path / "x" / "1.jpg")
    (tmp_path / "labels.csv").write_text("file,category\nx/1.jpg,dress\nx/1.jpg,dress\n")
    assert len(datasets.read_labels_csv(tmp_path / "labels.csv")) == 2
    assert "labels.csv:3: x/1.jpg again (first on line 2)" in caplog.text


def test_coco(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 20}],
           "categories": [{"id": 3, "name": "Jacket"}, {"id": 4, "name": "t-shirt"}],
           "annotations": [{"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
                           {"id": 10, "image_id": 1, "category_id": 4, "bbox": [0, 0, 5, 5]}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    (im,) = datasets.read_coco(tmp_path / "c.json")
    assert im.labels == ["outerwear", "top"] and im.boxes[0] == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize("doc,culprit", [
    ("{not json", "invalid JSON"),
    ('{"images": []}', "not COCO"),
    ('{"images": [], "categories": [{"id": 1, "name": "robot"}]}', "category id 1"),
    ('{"images": [], "categories": [{"id": 1, "name": "hat"}], '
     '"annotations": [{"id": 5, "image_id": 7, "category_id": 1, "bbox": [0,0,1,1]}]}', "annotation #0"),
    ("[]", "not COCO"),
    *[('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "hat"}], '
       '"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": %s}]}' % box, r"annotation #0 \(id 5\): bbox")
      for box in ('["a", null, 3]', "[1, 2, 3]", "[1, 2, 3, 4, 5]", "[0, 0, -4, 5]", "[0, 0, 0, 5]", "[0, 0, 1e999, 5]")],
])
def test_coco_errors(tmp_path, doc, culprit):
    (tmp_path / "c.json").write_text(doc)
    with pytest.raises(UserError, match=culprit):
        datasets.read_coco(tmp_path / "c.json")


@pytest.mark.realdata
def test_real_clothing_small_loads(shared_data):
    train = datasets.read_imagefolder(shared_data / "clothing-small" / "train")
    val = datasets.read_imagefolder(shared_data / "clothing-small" / "validation")
    assert (len(train), len(val)) == (3068, 341)
    assert {s.category for s in train} == set(vocab.FINE_CATEGORIES) - {"bag"}


@pytest.mark.realdata
def test_real_ccp_coco_loads(shared_data):
    ims = datasets.read_coco(shared_data / "ccp-train" / "annotations_coco.json")
    assert len(ims) == 702 and sum(len(i.boxes) for i in ims) == 3371
    assert {label for i in ims for label in i.labels} == set(vocab.COARSE_CATEGORIES)
    assert all(i.path.is_file() for i in ims)
