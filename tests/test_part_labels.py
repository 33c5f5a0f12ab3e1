"""Part labels: canonical mask values -> the labels of any CLASS_NAMES list (the paper's N = 2..5),
checked on hand-made label maps, and the pseudo-mask dataset that applies the mapping."""
import os

import numpy as np
import pytest
from PIL import Image

from rganet_plugin.data.part_labels import (PAPER_CLASS_NAMES, LabelValueError,
                                            UnknownPartClassError, canonical_fold_table,
                                            apply_table, paper_class_names, to_class_labels)

# 0 bg, 1 head, 2 upper, 3 lower, 4 foot, 5 bags, 255 ignore
CANON = np.array([[0, 1, 2],
                  [3, 4, 5],
                  [255, 1, 4]], dtype=np.uint8)


def test_paper_class_lists_follow_section_IV_D():
    assert PAPER_CLASS_NAMES[2] == ("upper body", "lower body")
    assert paper_class_names(3) == ["head", "upper body", "lower body"]
    assert paper_class_names(4) == ["head", "upper body", "lower body", "foot"]
    assert paper_class_names(5)[-1] == "bags"
    with pytest.raises(ValueError, match="N = 6"):
        paper_class_names(6)


@pytest.mark.parametrize("n,expected", [
    # N = 2: head -> upper body (1), foot -> lower body (2), bags -> background
    (2, [[0, 1, 1], [2, 2, 0], [255, 1, 2]]),
    # N = 3: foot -> lower body (3), bags -> background
    (3, [[0, 1, 2], [3, 3, 0], [255, 1, 3]]),
    (4, [[0, 1, 2], [3, 4, 0], [255, 1, 4]]),
    (5, [[0, 1, 2], [3, 4, 5], [255, 1, 4]]),
])
def test_canonical_to_paper_classes(n, expected):
    assert to_class_labels(CANON, paper_class_names(n)).tolist() == expected


def test_any_order_and_missing_neighbours_fold_to_background():
    # labels follow the list's order; upper / lower body absent -> head stays, the rest is bg
    out = to_class_labels(CANON, ["foot", "head"])
    assert out.tolist() == [[0, 2, 0], [0, 1, 0], [255, 2, 1]]


def test_names_are_normalised_and_aliases_accepted():
    out = to_class_labels(CANON, [" Upper  Body", "lower body", "bag"])
    assert out.tolist() == [[0, 1, 1], [2, 2, 3], [255, 1, 2]]


def test_unknown_and_duplicate_class_names_are_refused():
    with pytest.raises(UnknownPartClassError, match="'torso'.*'upper body'"):
        to_class_labels(CANON, ["head", "torso"])
    with pytest.raises(UnknownPartClassError, match="more than once"):
        to_class_labels(CANON, ["head", "Head"])
    with pytest.raises(UnknownPartClassError, match="background"):
        to_class_labels(CANON, ["background", "head"])


def test_values_outside_the_label_set_are_named():
    with pytest.raises(LabelValueError, match="7, 9"):
        to_class_labels(np.array([[0, 7], [9, 1]]), paper_class_names(4), "x.png")
    with pytest.raises(LabelValueError, match="-1"):
        to_class_labels(np.array([[0, -1]]), paper_class_names(4))
    with pytest.raises(LabelValueError, match="2-D"):
        to_class_labels(np.zeros((2, 2, 3), np.uint8), paper_class_names(4))


def test_fold_table_keeps_canonical_values_and_is_read_the_same():
    folded = apply_table(CANON, canonical_fold_table(paper_class_names(2)))
    assert folded.tolist() == [[0, 2, 2], [3, 3, 0], [255, 2, 3]]
    # a mask folded for N = 2 reads as N = 2 exactly like the unfolded one
    for n in (2, 3, 4):
        folded = apply_table(CANON, canonical_fold_table(paper_class_names(n)))
        assert (to_class_labels(folded, paper_class_names(n))
                == to_class_labels(CANON, paper_class_names(n))).all()


def _tiny_train_set(tmp_path, masks):
    img_dir = tmp_path / "Occluded_Duke" / "bounding_box_train"
    mask_dir = tmp_path / "Occluded_Duke" / "masks" / "bounding_box_train"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    items = []
    for i, m in enumerate(masks):
        name = f"000{i + 1}_c1_f000000{i}"
        Image.fromarray(np.full((6, 6, 3), 100, np.uint8)).save(img_dir / f"{name}.jpg")
        Image.fromarray(m).save(mask_dir / f"{name}.png")
        items.append((str(img_dir / f"{name}.jpg"), f"d_{i + 1}", "d_1"))
    return items


def _mask_set(make_cfg, items, class_names):
    from fastreid.data.transforms import build_transforms

    from rganet_plugin.data.pseudo_masks import PseudoMaskDataset

    cfg = make_cfg()
    cfg.INPUT.SIZE_TRAIN = [3, 3]
    for k in ("FLIP", "PADDING", "REA"):
        cfg.INPUT[k].ENABLED = False
    return PseudoMaskDataset(items, build_transforms(cfg, is_train=True), (3, 3),
                             class_names=class_names)


def test_pseudo_mask_dataset_reads_canonical_masks_as_the_runs_classes(make_cfg, tmp_path):
    items = _tiny_train_set(tmp_path, [CANON])
    n2 = _mask_set(make_cfg, items, paper_class_names(2))
    assert n2[0]["masks"].tolist() == [[0, 1, 1], [2, 2, 0], [255, 1, 2]]
    n5 = _mask_set(make_cfg, items, paper_class_names(5))
    assert n5[0]["masks"].tolist() == CANON.tolist()


def test_pseudo_mask_dataset_errors(make_cfg, tmp_path):
    items = _tiny_train_set(tmp_path, [np.array([[0, 1, 2], [3, 8, 0], [0, 0, 0]], np.uint8)])
    with pytest.raises(UnknownPartClassError, match="torso"):
        _mask_set(make_cfg, items, ["torso"])
    ds = _mask_set(make_cfg, items, paper_class_names(4))
    with pytest.raises(LabelValueError, match=r"0001_c1_f0000000\.png: label values 8 "):
        ds[0]
    assert os.path.basename(ds.mask_paths[0]) == "0001_c1_f0000000.png"
