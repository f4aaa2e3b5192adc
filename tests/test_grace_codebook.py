"""The GRACE codebook: add, grow, split, supersede, and removal that leaves the codebook the edit
never touched — in O(entries)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from editor.grace.codebook import Codebook, GraceEdit


def edit(eid, keys, value, target, eps=0.5):
    return GraceEdit(eid, torch.tensor(keys, dtype=torch.float32), torch.tensor(value, dtype=torch.float32), target, eps)


def book_of(*edits) -> Codebook:
    b = Codebook()
    for e in edits:
        b.add(e)
    return b


K = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
FIRST = edit("e1", K, [1.0, 1.0], " Hamburg")
SECOND = edit("e2", K, [2.0, 2.0], " Detmold")
NEAR = edit("e3", [[1.1, 0.1, 0.1], [0.1, 2.1, 0.1]], [3.0, 3.0], " Palermo")
SAME_ANSWER = edit("e4", [[1.8, 0.0, 0.0]], [4.0, 4.0], " Hamburg")


def test_a_fact_edited_twice_takes_the_later_answer_and_undo_restores_the_first():
    book = book_of(FIRST)
    assert book.add(SECOND) == {"added": 0, "grown": 0, "split": 0, "superseded": 2}
    assert book.answer == [" Detmold", " Detmold"] and book.owner == ["e2", "e2"]
    assert book.radii.tolist() == [0.5, 0.5]
    assert torch.equal(book.entry_values(), torch.tensor([[2.0, 2.0], [2.0, 2.0]]))
    book.remove("e2")
    assert book.same_as(book_of(FIRST))
    assert book.answer == [" Hamburg", " Hamburg"]
    assert torch.equal(book.entry_values(), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))


def test_removing_the_earlier_of_two_edits_of_a_fact_keeps_the_later():
    book = book_of(FIRST, SECOND)
    book.remove("e1")
    assert book.same_as(book_of(SECOND))


def test_a_split_is_undone_by_removing_either_side():
    book = book_of(FIRST, NEAR)
    assert len(book) == 4 and max(book.radii.tolist()) < 0.5   # both sides capped at half the distance
    book.remove("e3")
    assert book.same_as(book_of(FIRST))
    book = book_of(FIRST, NEAR)
    book.remove("e1")
    assert book.same_as(book_of(NEAR))   # the cap goes with the entry that caused it


def test_a_grown_entry_gives_back_the_keys_it_absorbed():
    book = book_of(FIRST, SAME_ANSWER)
    assert len(book) == 2 and book.radii.tolist()[0] > 0.5        # grown to cover e4's key
    book.remove("e1")
    assert book.same_as(book_of(SAME_ANSWER))                      # e4's key is its own entry again
    book = book_of(FIRST, SAME_ANSWER)
    book.remove("e4")
    assert book.same_as(book_of(FIRST))


def test_state_round_trip():
    book = book_of(FIRST, NEAR, SAME_ANSWER, SECOND)
    tensors, meta = book.state()
    again = Codebook.from_state(tensors, meta)
    assert again.same_as(book)
    again.remove("e3")
    book.remove("e3")
    assert again.same_as(book)


keys = st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(keys, st.sampled_from([" A", " B", " C"])), min_size=2, max_size=7), st.data())
def test_after_any_removal_every_other_edit_still_answers_its_keys(edits, data):
    """Whatever the order and overlaps: removing an edit leaves no trace of it, and every key of
    every remaining edit still lands in an entry that gives that edit's answer."""
    book = Codebook()
    made = []
    for i, (ks, target) in enumerate(edits):
        e = edit(f"e{i}", [[x * 0.3, y * 0.3] for x, y in ks], [float(i)], target, eps=0.4)
        book.add(e)
        made.append(e)
    assert no_overlap(book)
    gone = data.draw(st.sampled_from(made))
    book.remove(gone.edit_id)
    assert gone.edit_id not in book.owner and gone.edit_id not in book.edit_ids()
    assert no_overlap(book)
    latest: dict[tuple, str] = {}
    for e in made:   # a key edited again answers with the later edit
        if e is not gone:
            for k in e.keys:
                latest[tuple(k.tolist())] = e.target
    for k, target in latest.items():
        i = int(book.lookup(torch.tensor([k]))[0])
        assert i >= 0, f"key {k} of an edit answering {target!r} is in no entry"
        assert book.answer[i] == target


def no_overlap(book: Codebook) -> bool:
    """No two entries with different answers cover a common point."""
    if len(book) < 2:
        return True
    d = book.dist(book.keys, book.keys)
    r = book.radii[:, None] + book.radii[None, :]
    answers = book.answer
    differ = torch.tensor([[a != b for b in answers] for a in answers])
    return bool(((d >= r - 1e-6) | ~differ).all())
