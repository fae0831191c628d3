"""Counts in words: one helper, so no message says '1 images' (issue 20)."""

from tools.wording import counted, plural


def test_counts_take_the_singular_for_one_and_the_plural_otherwise():
    assert counted(1, "image") == "1 image" and counted(0, "image") == "0 images" and counted(2, "image") == "2 images"
    assert counted(1, "match") == "1 match" and counted(3, "match") == "3 matches"
    assert counted(2, "category") == "2 categories" and counted(2, "day") == "2 days"
    assert counted(1, "new image") == "1 new image" and counted(5, "confirmed image") == "5 confirmed images"
    assert plural(1, "looks", "look") == "looks" and plural(4, "looks", "look") == "look"
    assert plural(2, "is") == "are" and plural(1, "is") == "is"


def test_the_chat_asks_to_accept_1_image_not_1_images():
    from agent.tools import confirmation_question

    class Reviewer:
        def candidates(self, min_prob, label):
            return [(7, "fish", 0.95)]

    class Context:
        def reviewer(self):
            return Reviewer()

    question = confirmation_question(Context(), "accept_above", {"min_prob": 0.9, "label": "fish"})
    assert question.startswith("This will accept 1 image suggested as fish")
