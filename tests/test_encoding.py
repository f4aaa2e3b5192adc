"""Prompt + target tokenised jointly, as the model sees them when it generates."""

from __future__ import annotations

import pytest

from editor.encoding import SubjectNotInPromptError, TextCodec
from editor.verbalize import Prompt
from tests import tiny_models as tm

P = Prompt("The capital of France is", " Berlin", "France")


def test_byte_level_bpe_has_no_leading_special_token():
    tok = tm.tokenizer("bytebpe")
    codec = TextCodec(tok)
    assert codec.prefix == ()
    pair = codec.pair(P, need_subject=True)
    assert list(pair.prompt) == tok("The capital of France is")["input_ids"]
    assert list(pair.target) == tok(" Berlin")["input_ids"]   # a space-led word is the same alone
    assert tok.decode(list(pair.prompt) + list(pair.target)) == P.text + P.target


def test_sentencepiece_gets_its_bos_and_no_spurious_leading_piece():
    tok = tm.tokenizer("sentencepiece")
    codec = TextCodec(tok)
    assert codec.prefix == (tok.bos_token_id,)
    pair = codec.pair(P, need_subject=True)
    assert pair.prompt[0] == tok.bos_token_id
    assert list(pair.prompt) == tok(P.text)["input_ids"]       # what generation starts from
    assert tok.convert_ids_to_tokens(list(pair.target)) == ["▁Berlin"]
    # tokenised alone, the answer gets an extra "▁" piece: the bug joint tokenisation avoids
    alone = tok.convert_ids_to_tokens(tok(" Berlin", add_special_tokens=False)["input_ids"])
    assert alone == ["▁", "▁Berlin"]
    assert codec.target_ids(" Berlin", P) == list(pair.target)


@pytest.mark.parametrize("kind", tm.TOKENIZER_KINDS)
@pytest.mark.parametrize("prompt", [P, Prompt("Paris is a city in", " France", "Paris"),
                                    Prompt("People in Norway speak with people in", " Oslo", "Norway")])
def test_subject_span_from_character_offsets(kind, prompt):
    tok = tm.tokenizer(kind)
    codec = TextCodec(tok)
    pair = codec.pair(prompt, need_subject=True)
    upto = tok.decode(list(pair.prompt[: pair.subject_last + 1]), skip_special_tokens=True)
    assert upto.strip().endswith(prompt.subject)
    rest = tok.decode(list(pair.prompt[pair.subject_last + 1:]), skip_special_tokens=True)
    assert prompt.subject not in rest


def test_a_subject_missing_from_its_prompt_is_an_error_naming_both():
    codec = TextCodec(tm.tokenizer("bytebpe"))
    with pytest.raises(SubjectNotInPromptError) as err:
        codec.pair(Prompt("The capital of France is", " Berlin", "Germany"), need_subject=True)
    assert "'Germany'" in err.value.message and "'The capital of France is'" in err.value.message
    assert err.value.details == {"prompt": "The capital of France is", "subject": "Germany"}
    # where no subject is needed, nothing is asked of it
    assert codec.pair(Prompt("The capital of France is", " Berlin", "Germany")).subject_last is None


def test_encode_rows_line_up():
    tok = tm.tokenizer("sentencepiece")
    codec = TextCodec(tok)
    prompts = [P, Prompt("Oslo is a city in", " Norway", "Oslo")]
    enc = codec.encode(prompts, need_subject=True)
    for i, p in enumerate(prompts):
        pair = codec.pair(p, need_subject=True)
        n = len(pair.prompt)
        assert enc.input_ids[i, :n].tolist() == list(pair.prompt)
        assert int(enc.prompt_last[i]) == n - 1 and int(enc.subject_last[i]) == pair.subject_last
        assert enc.labels[i, n - 1: n - 1 + len(pair.target)].tolist() == list(pair.target)
        assert int(enc.attention_mask[i].sum()) == n + len(pair.target)


def test_teacher_forced_passes_batch_by_length_and_answer_in_input_order():
    """The probes batch prompts of similar length (less padding); each prompt's numbers are the
    ones it gets alone, in the order given."""
    from editor.probe import target_nll, target_predictions, teacher_forced

    model, tok = tm.model("gpt2", "bytebpe")
    codec = TextCodec(tok)
    prompts = [Prompt("Oslo is a city in the north of", " Norway", "Oslo"), P,
               Prompt("Rome is in", " Italy", "Rome"),
               Prompt("The river that runs through the middle of Paris is called", " the Seine", "Paris"),
               Prompt("Bern is in", " Switzerland", "Bern")]
    exact: list[bool] = []
    acc = teacher_forced(model, codec, prompts, batch_size=2, all_correct=exact)
    nll = target_nll(model, codec, prompts, batch_size=2)
    top = target_predictions(model, codec, prompts, batch_size=2)
    for i, p in enumerate(prompts):
        alone: list[bool] = []
        assert teacher_forced(model, codec, [p], all_correct=alone) == pytest.approx([acc[i]])
        assert alone == [exact[i]]
        assert target_nll(model, codec, [p]) == pytest.approx([nll[i]], rel=1e-4, abs=1e-5)
        assert target_predictions(model, codec, [p]) == [top[i]]
    assert len(set(nll)) == len(prompts)  # distinct numbers: a reordering would show
