"""convert-parsing: hand-made LIP / ATR / CIHP / Pascal-Person-Part label maps -> canonical part
masks in the layout stage 1 reads, and the errors for bad input."""
import os

import numpy as np
import pytest
from PIL import Image

from rganet_plugin.data.parser_labels import PARSER_LABELS, parser_max_classes
from rganet_plugin.data.part_labels import paper_class_names, to_class_labels
from rganet_plugin.data.pseudo_masks import read_label_map
from rganet_plugin.tools.__main__ import main as tools_main
from rganet_plugin.tools.convert_parsing import ParsingConversionError, convert_folder

# LIP: bg, hat, hair, face, upper-clothes | pants, left-leg, left-shoe, right-shoe, socks
LIP = np.array([[0, 1, 2, 13, 5],
                [9, 16, 18, 19, 8]], np.uint8)
LIP_CANON = [[0, 1, 1, 1, 2],
             [3, 3, 4, 4, 4]]


def _save(path, arr, mode="L"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".npy"):
        np.save(path, arr)
        return
    im = Image.fromarray(np.asarray(arr, np.uint8), mode="L")
    if mode == "P":  # SCHP saves palette PNGs: the label is the palette index
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, i)])
    im.save(path)


def _read(path):
    return read_label_map(path).tolist()


def test_label_sets_have_their_documented_sizes():
    assert {k: len(v) for k, v in PARSER_LABELS.items()} == {
        "lip": 20, "cihp": 20, "atr": 18, "pascal-person-part": 7}
    assert PARSER_LABELS["cihp"][10][0] == "Torso-skin" and PARSER_LABELS["lip"][10][0] == "Jumpsuits"
    assert PARSER_LABELS["atr"][16] == ("Bag", "bags")
    assert {k: parser_max_classes(k) for k in PARSER_LABELS} == {
        "lip": 4, "cihp": 4, "atr": 5, "pascal-person-part": 3}


def test_lip_maps_mirror_the_folders_and_fold_per_n(tmp_path):
    src, out = tmp_path / "schp", tmp_path / "masks"
    _save(str(src / "bounding_box_train" / "0005_c2_f0046985.png"), LIP, mode="P")
    _save(str(src / "query" / "0007_c1_f0000001.npy"), LIP.astype(np.int32))
    res = convert_folder(str(src), "lip", str(out))
    assert res["files"] == 2 and res["classes"] == 4
    assert _read(str(out / "bounding_box_train" / "0005_c2_f0046985.png")) == LIP_CANON
    assert _read(str(out / "query" / "0007_c1_f0000001.png")) == LIP_CANON
    assert res["fractions"]["foot"] == pytest.approx(0.3)
    # N = 2: head into upper body (2), foot into lower body (3); still canonical values
    convert_folder(str(src), "lip", str(tmp_path / "m2"), classes=2)
    m2 = read_label_map(str(tmp_path / "m2" / "query" / "0007_c1_f0000001.png"))
    assert m2.tolist() == [[0, 2, 2, 2, 2], [3, 3, 3, 3, 3]]
    assert to_class_labels(m2, paper_class_names(2)).tolist() == [[0, 1, 1, 1, 1], [2, 2, 2, 2, 2]]


def test_atr_bags_cihp_torso_and_pascal(tmp_path):
    # ATR: bg, sunglasses, belt, bag, scarf, right-arm
    _save(str(tmp_path / "atr" / "a.png"), [[0, 3, 8, 16, 17, 15]])
    convert_folder(str(tmp_path / "atr"), "atr", str(tmp_path / "o_atr"))
    assert _read(str(tmp_path / "o_atr" / "a.png")) == [[0, 1, 3, 5, 2, 2]]
    convert_folder(str(tmp_path / "atr"), "atr", str(tmp_path / "o_atr4"), classes=4)
    assert _read(str(tmp_path / "o_atr4" / "a.png")) == [[0, 1, 3, 0, 2, 2]]  # bag -> background
    # CIHP: torso-skin, glove, 255 stays ignore
    _save(str(tmp_path / "cihp" / "c.png"), [[10, 3, 255, 12]])
    convert_folder(str(tmp_path / "cihp"), "cihp", str(tmp_path / "o_cihp"))
    assert _read(str(tmp_path / "o_cihp" / "c.png")) == [[2, 2, 255, 3]]
    # Pascal-Person-Part: every label once
    _save(str(tmp_path / "pascal" / "p.png"), [[0, 1, 2, 3, 4, 5, 6]])
    convert_folder(str(tmp_path / "pascal"), "pascal-person-part", str(tmp_path / "o_p"))
    assert _read(str(tmp_path / "o_p" / "p.png")) == [[0, 1, 2, 2, 2, 3, 3]]
    with pytest.raises(ParsingConversionError, match="no foot or bag label.*--classes 3"):
        convert_folder(str(tmp_path / "pascal"), "pascal-person-part", str(tmp_path / "x"), 4)
    with pytest.raises(ParsingConversionError, match="LIP has no bag label"):
        convert_folder(str(tmp_path / "pascal"), "lip", str(tmp_path / "x"), 5)


def test_bad_input_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        convert_folder(str(tmp_path / "missing"), "lip", str(out))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ParsingConversionError, match="no label maps"):
        convert_folder(str(tmp_path / "empty"), "lip", str(out))
    rgb = tmp_path / "rgb"
    _save(str(rgb / "a.png"), LIP)
    rgb.joinpath("b.png").parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb / "b.png")
    with pytest.raises(ParsingConversionError, match=r"b\.png: not a label map \(image mode RGB\)"):
        convert_folder(str(rgb), "lip", str(out))
    assert not out.exists()  # a.png was fine, but nothing is written while b.png is bad
    bad = tmp_path / "bad"
    _save(str(bad / "a.png"), [[0, 19, 20, 7]])
    with pytest.raises(ValueError, match=r"a\.png: label values 20 are outside the lip label set"):
        convert_folder(str(bad), "lip", str(out))
    with pytest.raises(ValueError, match=r"label values 7, 19, 20 are outside the "
                                         r"pascal-person-part label set \(0\.\.6 and 255"):
        convert_folder(str(bad), "pascal-person-part", str(out))
    dup = tmp_path / "dup"
    _save(str(dup / "a.png"), LIP)
    _save(str(dup / "a.npy"), LIP.astype(np.int64))
    with pytest.raises(ParsingConversionError, match="would both become a.png"):
        convert_folder(str(dup), "lip", str(out))


def test_existing_masks_need_overwrite(tmp_path):
    _save(str(tmp_path / "src" / "a.png"), LIP)
    convert_folder(str(tmp_path / "src"), "lip", str(tmp_path / "out"))
    with pytest.raises(ParsingConversionError, match="--overwrite"):
        convert_folder(str(tmp_path / "src"), "lip", str(tmp_path / "out"), classes=2)
    convert_folder(str(tmp_path / "src"), "lip", str(tmp_path / "out"), classes=2, overwrite=True)
    assert _read(str(tmp_path / "out" / "a.png"))[0] == [0, 2, 2, 2, 2]


def test_cli(tmp_path, capsys):
    _save(str(tmp_path / "src" / "a.png"), LIP)
    rc = tools_main(["convert-parsing", "--src", str(tmp_path / "src"), "--format", "lip",
                     "--out", str(tmp_path / "out"), "--classes", "3"])
    assert rc == 0
    assert "1 masks written" in capsys.readouterr().out
    assert _read(str(tmp_path / "out" / "a.png")) == [[0, 1, 1, 1, 2], [3, 3, 3, 3, 3]]
    rc = tools_main(["convert-parsing", "--src", str(tmp_path / "nope"), "--format", "atr",
                     "--out", str(tmp_path / "out")])
    assert rc == 2 and "error: --src" in capsys.readouterr().err
