import pytest

from sketchshop import vocab


def test_sizes_and_mapping():
    assert len(vocab.FINE_CATEGORIES) == 11 and len(vocab.COLOURS) == 13
    assert {vocab.FINE_TO_COARSE[c] for c in vocab.FINE_CATEGORIES} == set(vocab.COARSE_CATEGORIES)
    assert vocab.coarse("Tee") == "top" and vocab.coarse("Jacket") == "outerwear"


@pytest.mark.parametrize("alias,canon", [
    ("outwear", "outerwear"), ("JACKET", "outerwear"), ("coat", "outerwear"), ("Trousers", "pants"),
    ("jeans", "pants"), ("tee", "t-shirt"), ("TShirt", "t-shirt"), ("sneakers", "shoes"),
    ("boots", "shoes"), ("  Dress ", "dress"), ("top", "top"),
])
def test_category_aliases(alias, canon):
    assert vocab.category(alias) == canon


@pytest.mark.parametrize("shop, ours", [
    ("Tshirts", "t-shirt"), ("Polo T-Shirt", "t-shirt"), ("Casual Shoes", "shoes"), ("Flip Flops", "shoes"),
    ("Track Pants", "pants"), ("Sweatshirts", "longsleeve"), ("Jackets", "outerwear"), ("Caps", "hat"),
    ("Handbags", "bag"), ("Women's Skirts", "skirt"), ("Maxi Dress", "dress"), ("Dress Shirts", "shirt"),
    ("long_sleeve", "longsleeve"), ("Tops", "top")])
def test_shop_category_names(shop, ours):
    assert vocab.category(shop) == ours


def test_coarse_only_when_allowed():
    with pytest.raises(vocab.VocabError):
        vocab.category("top", allow_coarse=False)


@pytest.mark.parametrize("bad", ["spaceship", "", "t-shirts-and-more", "Kurtas", "Socks", "Watches"])
def test_unknown_category_names_value(bad):
    with pytest.raises(vocab.VocabError, match="unknown category"):
        vocab.category(bad)


def test_colour_aliases_and_errors():
    assert vocab.colour("Grey") == "gray" and vocab.colour("navy blue") == "navy"
    with pytest.raises(vocab.VocabError, match="chartreuse-ish"):
        vocab.colour("chartreuse-ish")


@pytest.mark.parametrize("shop, ours", [
    ("Off White", "white"), ("off_white", "white"), ("Dark Green", "green"), ("Grey Melange", "gray"),
    ("Coffee Brown", "brown"), ("Turquoise Blue", "blue"), ("Sea Green", "green"), ("dark blue", "navy"),
    ("Light Blue", "blue"), ("Rose Gold", "pink"), ("NUDE", "beige")])
def test_shop_colour_names_with_qualifiers(shop, ours):
    assert vocab.colour(shop) == ours


@pytest.mark.parametrize("bad", ["Multi", "Metallic", "dark", "light dark", "", "t-shirt"])
def test_no_single_vocabulary_colour_is_an_error(bad):
    with pytest.raises(vocab.VocabError, match="unknown colour"):
        vocab.colour(bad)


def test_attributes_apply_to_known_categories():
    for a in vocab.ATTRIBUTES.values():
        assert set(a.applies_to) <= set(vocab.FINE_CATEGORIES)
    assert "sleeve" in vocab.attributes_for("t-shirt") and "sleeve" not in vocab.attributes_for("pants")
    assert vocab.attribute_value("pattern", "Stripe") == "stripe"
    with pytest.raises(vocab.VocabError):
        vocab.attribute_value("pattern", "paisley-ish")


def test_ciede2000_reference_pairs():
    # Sharma, Wu, Dalal (2005) test data, pairs 1, 7 and 17.
    assert vocab.ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert vocab.ciede2000((50, 0, 0), (50, -1, 2)) == pytest.approx(2.3669, abs=1e-4)
    assert vocab.ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


@pytest.mark.parametrize("rgb,name", [
    ((0, 0, 0), "black"), ((255, 255, 255), "white"), ((128, 128, 128), "gray"), ((220, 20, 20), "red"),
    ((255, 170, 200), "pink"), ((255, 140, 0), "orange"), ((255, 230, 0), "yellow"),
    ((30, 150, 50), "green"), ((30, 110, 230), "blue"), ((20, 30, 90), "navy"), ((130, 50, 170), "purple"),
    ((120, 75, 40), "brown"), ((220, 200, 165), "beige"),
])
def test_name_colour(rgb, name):
    assert vocab.name_colour(rgb) == name
    assert vocab.name_colour(vocab.COLOUR_RGB[name]) == name
