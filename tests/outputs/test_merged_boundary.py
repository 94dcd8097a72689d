"""The BLOOM case: tokens merge across the prompt/answer boundary, so a response-template token
search fails.

A byte-level BPE is trained here (hermetic) on the notebook's `### Human:` / `### Assistant:` data
so that `?\\n\\n` becomes one token, as it does in BLOOM's vocabulary.
"""

import pytest

from chattune.data.schema import Message
from chattune.templates import IGNORE_INDEX, render, setup_chat_format

PAIRS = [("dog", "perro"), ("water", "agua"), ("mother", "madre"), ("hello", "hola"),
         ("tree", "árbol"), ("cat", "gato"), ("house", "casa"), ("book", "libro")]


@pytest.fixture(scope="module")
def merging_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # split only before spaces, like BLOOM: punctuation and newlines may merge into one token
    # (`?\n\n###`)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(
        " ", behavior="merged_with_next"),
                                                 pre_tokenizers.ByteLevel(
                                                     add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    corpus = [f'\n\n### Human: How do you say "{en}" in Spanish?\n\n### Assistant: {es}'
              for en, es in PAIRS] * 20
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=330, special_tokens=["</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>")
    setup_chat_format(None, tok, "human_assistant")
    return tok


def test_question_mark_and_newlines_merge(merging_tokenizer):
    tok = merging_tokenizer
    ids = tok.encode('How do you say "dog" in Spanish?\n\n### Assistant:', add_special_tokens=False)
    pieces = [tok.decode([i]) for i in ids]
    assert any("?\n\n" in p for p in pieces), pieces
    # so searching for the response template's own tokens finds nothing
    template_ids = tok.encode("\n\n### Assistant:", add_special_tokens=False)
    found = any(ids[k:k + len(template_ids)] == template_ids for k in range(len(ids)))
    assert not found


def test_span_mask_is_exact_anyway(merging_tokenizer):
    tok = merging_tokenizer
    msgs = [Message("user", 'How do you say "dog" in Spanish?'), Message("assistant", "perro"),
            Message("user", 'How do you say "cat" in Spanish?'), Message("assistant", "gato")]
    r = render(tok, msgs)
    trained = tok.decode([t for t in r.labels if t != IGNORE_INDEX])
    assert trained.replace(" ", "") == "perro</s>gato</s>"
    untrained = tok.decode([t for t, lab in zip(r.input_ids, r.labels) if lab == IGNORE_INDEX])
    assert "Spanish?" in untrained and "perro" not in untrained
