"""Label names must work as folder names; typed lists parse the way people write them."""

from __future__ import annotations

import pytest

from index.errors import InvalidLabelError
from index.labels import parse_label_list, suggest_label_name, validate_label_name


@pytest.mark.parametrize("name", ["cat", "red sneaker", "T-shirt/top".replace("/", "-"), "Äpfel", "猫", "n°5", "a.b"])
def test_ordinary_names_are_accepted(name):
    assert validate_label_name(name) == name


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("cats/dogs", "'/'"),
        ("a\\b", "'\\\\'"),
        ("what?", "'?'"),
        (" cat", "starts or ends with a space"),
        ("..", "starts with a dot"),
        (".hidden", "starts with a dot"),
        ("cat.", "ends with a dot"),
        ("con", "reserved device name"),
        ("tab\there", "control"),
        ("x" * 101, "101 characters"),
    ],
)
def test_names_that_cannot_be_folders_are_refused_with_the_reason(name, problem):
    with pytest.raises(InvalidLabelError) as error:
        validate_label_name(name)
    assert problem in str(error.value)


def test_the_error_suggests_a_usable_name():
    assert suggest_label_name("cats/dogs") == "cats-dogs"
    assert suggest_label_name(" shoe. ") == "shoe"
    with pytest.raises(InvalidLabelError, match="Try 'T-shirt-top'"):
        validate_label_name("T-shirt/top")


@pytest.mark.parametrize(
    "text, names",
    [
        ("cat, dog, bird", ["cat", "dog", "bird"]),
        ("windmill; dam; monument", ["windmill", "dam", "monument"]),
        ("cat\ndog\n\n", ["cat", "dog"]),
        ("sneaker, ankle boot", ["sneaker", "ankle boot"]),
    ],
)
def test_label_lists_in_the_usual_shapes(text, names):
    assert [label.name for label in parse_label_list(text)] == names


def test_descriptions_and_duplicates():
    (label,) = parse_label_list("tabby = a striped domestic cat")
    assert (label.name, label.description) == ("tabby", "a striped domestic cat")
    with pytest.raises(InvalidLabelError, match="given twice"):
        parse_label_list("cat, dog, cat")
    with pytest.raises(InvalidLabelError, match="No labels found"):
        parse_label_list(" , ;")


def test_labels_that_differ_only_in_case_are_refused_they_would_share_a_folder(tmp_path):
    from index.project import Project

    with pytest.raises(InvalidLabelError, match="'Cat' and 'cat' differ only in case"):
        parse_label_list("Cat, dog, cat")
    with Project(tmp_path / "p") as project:
        project.store.set_labels(parse_label_list("cat, dog"))
        with pytest.raises(InvalidLabelError, match="differ only in case"):
            project.store.add_labels(parse_label_list("Dog"))
        assert project.store.add_labels(parse_label_list("dog, bird")).names == ["cat", "dog", "bird"]


def test_a_label_not_in_the_set_gets_the_near_one_named(tmp_path):
    import imagefiles
    from index.errors import LabelNotInSetError
    from index.project import Project
    from index.types import Action
    from tools.ingest import ingest

    (tmp_path / "a.jpg").write_bytes(imagefiles.jpeg(1))
    with Project(tmp_path / "p") as project:
        ingest(project, [str(tmp_path / "a.jpg")])
        project.store.set_labels(parse_label_list("triangle, square"))
        item = project.store.items()[0].id
        with pytest.raises(LabelNotInSetError, match="Did you mean 'triangle'"):
            project.store.decide(item, Action.CORRECT, "Triangle")
        with pytest.raises(LabelNotInSetError, match="Add it first: labelchat labels add 'zebra'"):
            project.store.decide(item, Action.CORRECT, "zebra")
        with pytest.raises(LabelNotInSetError, match="nothing to remove.$"):
            project.store.remove_labels(["hexagon"])
