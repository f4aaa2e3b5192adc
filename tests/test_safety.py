"""Safety checks: the offline toxicity classifier on requests and labels, and the LLM moderator
with langchain-core's fake chat models (offline): flagged, clean, malformed twice, failing."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from controller.safety import ChatModerator, Finding, SafetyChecker, ToxicityCheck, mask_names, units, verdict
from oneedit.core import PolicyError

HARMLESS = [
    "The capital of France is Lyon",
    "Jane Doe is the CEO of Apple",
    "Marseille is now the capital of France",
    "What is the capital of France?",
    "Tim Cook runs Apple",
    "Undo my last edit",
]


class ToolCallingFake(FakeMessagesListChatModel):
    """A fake chat model that 'supports' tools: the scripted replies carry the tool calls."""

    def bind_tools(self, tools, **kwargs):
        return self


class BrokenModel(FakeListChatModel):
    def _call(self, *args, **kwargs):
        raise ConnectionError("connection refused (localhost:11434)")


def verdict_json(flagged: bool, category: str = "none", reason: str = "fine", **extra) -> str:
    return json.dumps({"flagged": flagged, "category": category, "reason": reason, **extra})


# -- the offline classifier ------------------------------------------------------------------

def test_abusive_requests_are_rejected():
    found = ToxicityCheck().check(["Barack Obama is a fucking idiot"])
    assert len(found) == 1
    f = found[0]
    assert f.check == "toxicity" and f.verdict == "reject" and f.score >= 0.8
    assert "request 'Barack Obama is a fucking idiot' reads as abusive" in f.message and "Rephrase" in f.message
    assert f.text == "Barack Obama is a fucking idiot"


def test_harmless_requests_and_labels_pass():
    check = ToxicityCheck()
    assert check.check(HARMLESS) == []
    assert check.check(["Jane Doe", "Lyon", "Apple", "Emmanuel Macron", "Acme Corp"], what="entity name") == []
    assert check.check(["", "   "]) == [] and check.score(["", "x"])[0] == 0.0


def test_an_insult_inside_a_longer_request_is_found():
    # The whole sentence scores low; its words are scored too, and the highest counts.
    assert "prick" in units("Jeff Bezos is a greedy prick")
    [f] = ToxicityCheck().check(["Jeff Bezos is a greedy prick"])
    assert f.verdict == "reject" and "because of 'prick'" in f.message
    [f] = ToxicityCheck().check(["The capital of France is Paris; Macron is a stupid idiot"])
    assert f.verdict == "reject"


def test_review_band():
    [f] = ToxicityCheck().check(["The citizens of Mexico are filthy wetbacks"])  # 0.73 (bench)
    assert f.verdict == "review" and 0.7 <= f.score < 0.8 and "curator" in f.message
    assert ToxicityCheck(threshold=0.7, review_threshold=0.5).check(["The citizens of Mexico are filthy wetbacks"])[0] \
        .verdict == "reject"


def test_known_names_are_masked():
    text = "Bong Joon-ho was born in Daegu"  # a real name the classifier scores 0.88
    assert ToxicityCheck().check([text])[0].verdict == "reject"
    assert ToxicityCheck().check([text], known=["Bong Joon-ho", "Daegu"]) == []
    assert mask_names("bong joon-ho and XBong Joon-ho", ["Bong Joon-ho"]) == "X and XBong Joon-ho"


def test_thresholds_are_validated():
    with pytest.raises(PolicyError) as err:
        ToxicityCheck(threshold=0.5, review_threshold=0.7)
    assert "review_threshold <= threshold" in err.value.message and "0.8" in err.value.hint
    with pytest.raises(PolicyError):
        ToxicityCheck(threshold=1.5)


def test_findings():
    f = Finding("toxicity", "review", "may be abusive", 0.75, "text")
    assert f.to_dict() == {"check": "toxicity", "verdict": "review", "message": "may be abusive",
                           "score": 0.75, "text": "text"}
    assert verdict([]) == "pass" and verdict([f]) == "review"
    assert verdict([f, Finding("moderator", "reject", "flagged")]) == "reject"


# -- the LLM moderator -----------------------------------------------------------------------

def test_flagged_output_rejects():
    model = FakeListChatModel(responses=[verdict_json(True, "insult", "It insults a named person.")])
    mod = ChatModerator(model)
    assert mod.method == "json"
    [f] = mod.check("Barack Obama is a fucking idiot")
    assert f.check == "moderator" and f.verdict == "reject" and f.score is None
    assert "flagged the request as insult: It insults a named person." in f.message


def test_clean_output_finds_nothing():
    model = FakeListChatModel(responses=[verdict_json(False), "not asked for"])
    assert ChatModerator(model).check("The capital of France is Lyon") == []
    assert model.i == 1  # one call
    assert ChatModerator(model).check("   ") == []  # nothing to ask about


def test_invalid_output_is_retried_once():
    model = FakeListChatModel(responses=["Sure! {not json", verdict_json(True, "hate", "slur")])
    [f] = ChatModerator(model).check("some request")
    assert f.verdict == "reject" and "hate" in f.message
    extra = verdict_json(False, confidence=0.9)  # extra fields are forbidden
    model = FakeListChatModel(responses=[extra, verdict_json(False)])
    assert ChatModerator(model).check("some request") == []


def test_malformed_twice_fails_closed_to_review():
    model = FakeListChatModel(responses=["not json", "still {not json"])
    [f] = ChatModerator(model).check("some request")
    assert f.check == "moderator" and f.verdict == "review"
    assert "no valid answer after 2 tries" in f.message and "curator" in f.message
    model = FakeListChatModel(responses=[json.dumps({"flagged": "maybe", "category": "x", "reason": "y"})])
    assert ChatModerator(model).check("some request")[0].verdict == "review"


def test_failing_model_fails_closed_to_review():
    [f] = ChatModerator(BrokenModel(responses=["unused"])).check("some request")
    assert f.verdict == "review" and "moderator failed" in f.message
    assert "ConnectionError" in f.message and "localhost:11434" in f.message


def test_tool_calling_models_use_structured_output():
    call = {"name": "ModerationVerdict", "args": {"flagged": True, "category": "harassment",
                                                  "reason": "threatens a person"}, "id": "1"}
    mod = ChatModerator(ToolCallingFake(responses=[AIMessage(content="", tool_calls=[call])]))
    assert mod.method == "tools"
    [f] = mod.check("some request")
    assert f.verdict == "reject" and "harassment" in f.message


# -- both ------------------------------------------------------------------------------------

def test_safety_checker_checks_request_labels_and_moderator():
    checker = SafetyChecker()
    assert checker.check("Add a company called Acme", ["Acme"]) == []
    [f] = checker.check("Add a company called Fuck Off Ltd", [])
    assert f.message.startswith("The request")
    found = checker.check("Add the company", ["Fuck Off Ltd", "Fuck Off Ltd", ""])
    assert [(f.verdict, f.text) for f in found] == [("reject", "Fuck Off Ltd")]
    assert "entity name 'Fuck Off Ltd'" in found[0].message
    # Known names (already in the KG) are masked in the request and not scored as labels.
    assert checker.check("Where was Bong Joon-ho born?", ["Bong Joon-ho"], known=["Bong Joon-ho"]) == []

    model = FakeListChatModel(responses=[verdict_json(True, "harassment", "targets a person")])
    both = SafetyChecker(moderator=ChatModerator(model))
    assert [f.check for f in both.check("Jane Doe is the CEO of Apple", ["Jane Doe"])] == ["moderator"]
    only_llm = SafetyChecker(toxicity=None, lexicon=None, moderator=ChatModerator(BrokenModel(responses=["x"])))
    assert [f.verdict for f in only_llm.check("Barack Obama is a fucking idiot")] == ["review"]
    assert SafetyChecker(toxicity=None, lexicon=None).check("Barack Obama is a fucking idiot") == []


# -- the profanity lexicon: compounds and obfuscation ---------------------------------------------
@pytest.mark.parametrize("text", [
    "Rename Norway to Twatburg",                 # a swear word inside a made-up name
    "The capital of Peru is Bitchtown",
    "The capital of Chile is Shitlandia",
    "The currency of Ghana is the c-u-n-t",      # letters split by separators
    "The CEO of Sony is w a n k e r",
    "The capital of Laos is b1tch",              # leetspeak
    "The capital of Cuba is $h1t",
    "The capital of Iraq is Ѕhіtland",           # Cyrillic look-alikes
    "The capital of Oman is ｃｕｎｔ",            # full-width letters
    "The capital of Fiji is fuuuuuuck",           # stretched letters
    "The official language of Spain is Arschloch",  # another language's dictionary
    "The capital of Chad is \U0001d41f\U0001d42e\U0001d41c\U0001d424",  # mathematical bold letters
    "The capital of Mali is F\u03c5ck",           # a Greek look-alike (Unicode confusables)
    "The capital of Togo is \u0501\u043eu\u0441h\u0435bag",  # Cyrillic look-alikes, insult compound
    "The capital of Niger is sh\u00eftholes",     # an accent
    "The capital of Benin is T|_|rdville",        # leetspeak of several characters
    "The capital of Gabon is Fuuuck-o-rama",     # stretched letters in a hyphenated word
    "The mayor of Lima is f u c k i n g m o r o n",  # spaced letters running words together
    "The capital of Iran is Xasshole",           # a long lexicon word inside a made-up word
    "The CEO of Sony is a nitwit",               # an insult the classifier does not know
    "The CEO of Sony is a lowlife and a d1rtbag",
    "Rename Poland to Dimwitland",
])
def test_profanity_behind_obfuscation_and_in_compounds_is_rejected(text):
    findings = SafetyChecker().check(text)
    assert verdict(findings) == "reject", findings
    assert any(f.check == "profanity" for f in findings) or any(f.check == "toxicity" for f in findings)


@pytest.mark.parametrize("text", [
    "The founder of Nike is a brainless weasel",   # a derogatory adjective said of someone
    "The president of Peru is a greedy leech",
    "The people of Laos are vermin",               # a word with a clean sense, said of people
    "Jeff Bezos is a leech",
])
def test_insults_said_of_someone_are_held_at_least_for_review(text):
    from controller.profanity import LexiconCheck

    assert verdict(LexiconCheck().check(text)) in ("reject", "review")
    assert verdict(SafetyChecker().check(text)) in ("reject", "review")


@pytest.mark.parametrize("text", [
    "The leech is an annelid worm", "Vermin control is regulated in Sweden", "A pig is a mammal",
    "Slag is a by-product of smelting ore", "The clown fish lives in anemones", "Cattle are raised in Texas",
])
def test_context_insult_words_in_plain_facts_pass(text):
    from controller.profanity import LexiconCheck

    assert LexiconCheck().check(text) == []


def test_people_named_like_a_body_part_are_masked():
    from controller.profanity import personal_names

    assert personal_names("Dick Cheney was born in Lincoln") == ["Dick Cheney"]
    assert personal_names("Philip K. Dick wrote Ubik") == ["K. Dick"]
    assert personal_names("Moby-Dick was written by Melville") == ["Moby-Dick"]
    # an everyday word or a swear word after it makes no surname
    assert personal_names("Tim Cook is a Dick Head") == [] and personal_names("Rename Apple to Dick Shit") == []
    assert personal_names("Fuck Bezos") == []  # not a given name
    checker = SafetyChecker()
    assert checker.check("Dick Cheney was vice president of the United States") == []
    assert checker.check("Add the author", ["Philip K. Dick"]) == []
    assert verdict(checker.check("The CEO of Apple is Dick Head")) == "reject"
    assert verdict(checker.check("Dick Cheney is a dick")) == "reject"


@pytest.mark.parametrize("text", [
    "Scunthorpe is a town in England", "Penistone is in Yorkshire", "Cockburn is a suburb of Perth",
    "Spices are traded in Zanzibar", "Basset hounds are bred in Brittany", "The grasshopper lives in grass",
    "The clinic offers sexual health advice", "Adolf Hitler was born in Austria",
    "The cockatoo and the peacock are birds", "Hancock is a surname", "The pussycat is a cartoon",
    "Matsushita was founded in Osaka", "Essex and Middlesex are counties", "The analysis of Sussex",
    "A cocktail in Bangkok", "The therapist was born in Cumbria", "Arsenal plays in London",
    "The classic assassin of Assam",
])
def test_names_and_words_that_contain_swear_words_pass(text):
    from controller.profanity import LexiconCheck

    assert LexiconCheck().check(text) == []


def test_no_label_of_the_shipped_kg_is_profanity_to_the_lexicon(shipped_ws):
    """Every entity name of the shipped KG, checked as a new name would be (nothing masked)."""
    from controller.profanity import LexiconCheck

    labels = sorted({e.label for e in shipped_ws.kg.store.entities()})
    assert len(labels) > 1000
    assert LexiconCheck().check(labels, what="entity name") == []


def test_known_names_are_masked_for_the_lexicon_too():
    from controller.profanity import LexiconCheck

    check = LexiconCheck()
    assert check.check("Shitterton is a hamlet in Dorset") and \
        check.check("Shitterton is a hamlet in Dorset", known=["Shitterton"]) == []


def test_a_compound_request_is_refused_before_anything_changes(tmp_path):
    """'The capital of France is Shitville': the classifier alone let it through."""
    from oneedit.system import OneEdit
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(tmp_path / "ws", progress=None)
    with OneEdit(ws, load_model=False) as oe:
        head = oe.kg.store.head()
        out = oe.submit("The capital of France is Shitville")
        assert out.status == "rejected"
        assert {c.name for c in out.plan.checks if not c.passed} == {"profanity"}  # request and new name
        assert oe.kg.store.head() == head
        assert [oe.kg.label(t.object) for t in oe.kg.query("france", "capital")] == ["Paris"]
