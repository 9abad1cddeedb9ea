"""`data.group_by`: every image of a group (a person, a video) on one side of the split (issue 23:
the face-keypoints split by frame put the same faces in training and validation)."""

from __future__ import annotations

import pytest

from edgecv.config import load_recipe
from edgecv.data.groups import group_of, split_by_group
from edgecv.data.index import build_index
from edgecv.errors import ConfigError, DataError
from synthetic import make_image_folder, write_recipe

PERSON = r"^(.+)_\d+\.jpg$"


def test_a_group_lands_on_one_side_and_the_fraction_is_kept():
    names = [f"{person}_{clip}{frame}.jpg" for person in ("Ann_Lee", "Bo", "Cy_D", "Dee", "Eve", "Fay", "Gus", "Hal")
             for clip in range(3) for frame in range(3)]
    train, val = split_by_group(names, lambda n: group_of(n, ".", PERSON), 0.25, seed=0)
    people = lambda ns: {n.rsplit("_", 1)[0] for n in ns}  # noqa: E731
    assert not people(train) & people(val) and len(people(val)) == 2 and len(train) + len(val) == len(names)
    assert (train, val) == split_by_group(names, lambda n: group_of(n, ".", PERSON), 0.25, seed=0)  # seeded
    assert val != split_by_group(names, lambda n: group_of(n, ".", PERSON), 0.25, seed=1)[1]


def test_named_group_and_no_match():
    assert group_of("x/Ann_12.jpg", "x", r"(?P<clip>\d)(?P<group>\d)") == "2"
    with pytest.raises(DataError, match="does not match the image notes.txt"):
        group_of("notes.txt", ".", PERSON)
    with pytest.raises(DataError, match="at least 2 groups"):
        split_by_group(["a_1.jpg", "a_2.jpg"], lambda n: group_of(n, ".", PERSON), 0.5, 0)


def test_classification_split_by_group(tmp_path):
    data = make_image_folder(tmp_path / "images", classes=3, per_class=12)
    # file 007.png of every class is one group ("the same scene in three classes"): never split apart
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data, data__group_by=r"(\d+)\.png$"))
    index = build_index(recipe.data, recipe.resolve)
    stem = lambda s: s.path.rsplit("/", 1)[1]  # noqa: E731
    assert not {stem(s) for s in index.train} & {stem(s) for s in index.val}
    assert len(index.val) == 9 and len(index.train) == 27


@pytest.mark.parametrize("value,why", [("(unclosed", "not a regular expression"),
                                       ("(a)(b)", "2 capture groups")])
def test_a_bad_pattern_is_a_config_error(tmp_path, value, why):
    data = make_image_folder(tmp_path / "images", classes=2, per_class=4)
    with pytest.raises(ConfigError, match=why):
        load_recipe(write_recipe(tmp_path / "r.yaml", data, data__group_by=value))
