"""DataCollatorForCompletionOnlyLM and the old-TRL trainer arguments the completion-only notebook
uses."""

from __future__ import annotations

from copy import copy

import pytest
from conftest import make_tiny_model

from chattune import DataCollatorForCompletionOnlyLM, SFTTrainer
from chattune.labels import IGNORE_INDEX

HUMAN, ASSISTANT = "\n\n### Human:", "\n\n### Assistant:"
PAIRS = [("dog", "perro"), ("water", "agua"), ("mother", "madre"), ("hello", "hola"),
         ("tree", "árbol")]


def notebook_rows(tokenizer) -> list[dict]:
    """The notebook's data after its add_special_tokens(): eos before each human turn, bos before
    the answer."""
    return [{"text": f'{tokenizer.eos_token}{HUMAN} How do you say "{en}" in Spanish?{ASSISTANT}'
                     f'{tokenizer.bos_token} {es}{tokenizer.eos_token}'} for en, es in PAIRS]


def trained_text(tokenizer, ids, labels) -> str:
    return tokenizer.decode([t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX])


def test_bos_eos_templates_as_in_the_notebook(tokenizer):
    text = notebook_rows(tokenizer)[0]["text"]
    collator = DataCollatorForCompletionOnlyLM(instruction_template=tokenizer.eos_token,
                                               response_template=tokenizer.bos_token,
                                               tokenizer=tokenizer)
    batch = collator([tokenizer(text)])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    # the answer is trained; the eos the instruction template names is masked, as the notebook shows
    assert trained_text(tokenizer, ids, labels) == " perro"
    assert batch["attention_mask"].sum() == len(ids)


def test_templates_are_found_whatever_their_tokens_in_context(tokenizer):
    """ "Answer:" alone is ["Answer", ":"]; in the text it is [" Answer", ":"]. TRL matched ids,
    found nothing, and trained the row on nothing; the text is searched here."""
    text = "### Question: What is 2+2?\n ### Answer: 4"
    collator = DataCollatorForCompletionOnlyLM("Answer:", tokenizer=tokenizer)
    ids = tokenizer(text)["input_ids"]
    template_ids = tokenizer.encode("Answer:", add_special_tokens=False)
    # TRL's search fails
    assert not any(ids[i:i + len(template_ids)] == template_ids for i in range(len(ids)))
    assert trained_text(tokenizer, ids, collator.labels_for(ids)) == " 4"
    # ids that do not round-trip through the text (one token per character) are placed by decoding
    # prefixes
    by_char = [t for c in text for t in tokenizer.encode(c, add_special_tokens=False)]
    assert by_char != ids and trained_text(tokenizer, by_char, collator.labels_for(by_char)) == " 4"


def test_multi_turn_and_padding_keep_eos_trained(tokenizer):
    """Every response is trained up to the next instruction; padding is masked by position, so an
    eos that is also the pad token is still learned (the model learns to stop)."""
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    two_turns = (f"{HUMAN} hi{ASSISTANT} hello{tokenizer.eos_token}{HUMAN} bye{ASSISTANT} "
                 f"adios{tokenizer.eos_token}")
    short = f"{HUMAN} a{ASSISTANT} b{tokenizer.eos_token}"
    collator = DataCollatorForCompletionOnlyLM(ASSISTANT, HUMAN, tokenizer=tokenizer)
    batch = collator([tokenizer(two_turns), tokenizer(short)])
    rows = [(batch["input_ids"][i].tolist(), batch["labels"][i].tolist()) for i in range(2)]
    eos = tokenizer.eos_token
    assert trained_text(tokenizer, *rows[0]) == f" hello{eos} adios{eos}"
    assert trained_text(tokenizer, *rows[1]) == f" b{eos}"
    pad_positions = batch["attention_mask"][1] == 0
    assert pad_positions.any() and (batch["labels"][1][pad_positions] == IGNORE_INDEX).all()


def test_a_row_without_its_template_warns(tokenizer):
    collator = DataCollatorForCompletionOnlyLM(ASSISTANT, tokenizer=tokenizer)
    with pytest.warns(UserWarning, match="no completion found"):
        batch = collator([tokenizer("no template here")])
    assert (batch["labels"] == IGNORE_INDEX).all()


def test_notebook_sft_with_training_arguments_and_collator(tmp_path, tokenizer):
    """The notebook's cells: TrainingArguments, SFTTrainer(model, train_dataset=,
    dataset_text_field=, data_collator=, args=, max_seq_length=, tokenizer=), train, then copy the
    args, change the epochs and train again."""
    from datasets import Dataset
    from transformers import TrainingArguments

    training_arguments = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=15,
                                           per_device_train_batch_size=1, seed=1,
                                           learning_rate=5e-3, save_strategy="no", report_to="none")
    collator = DataCollatorForCompletionOnlyLM(instruction_template=tokenizer.eos_token,
                                               response_template=tokenizer.bos_token,
                                               tokenizer=tokenizer)
    model = make_tiny_model(tokenizer)
    trainersft = SFTTrainer(model, train_dataset=Dataset.from_list(notebook_rows(tokenizer)),
                            dataset_text_field="text", data_collator=collator,
                            args=training_arguments, max_seq_length=512, tokenizer=tokenizer)
    assert [trained_text(tokenizer, e.input_ids, e.labels) for e in trainersft.train_examples] == \
        [f" {es}" for _, es in PAIRS]
    first = trainersft.train()
    assert (first.global_step == 75 and first.metrics["epoch"] == 15
            and first.metrics["train_runtime"] > 0)
    argcopy = copy(trainersft.args)
    argcopy.num_train_epochs = 5
    trainersft.args = argcopy
    again = trainersft.train()
    assert again.global_step == 25 and again.training_loss < first.training_loss
    assert (training_arguments.num_train_epochs == 15
            and trainersft.args.per_device_train_batch_size == 1)


def test_training_arguments_fields_chattune_lacks_are_named(tokenizer):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="x", label_smoothing_factor=0.1, report_to="none")
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1 is not supported by chattune"):
        SFTTrainer(make_tiny_model(tokenizer), args=args, train_dataset=[{"text": "a b c"}],
                   tokenizer=tokenizer)


def test_torch_call_and_padding_free(tokenizer):
    import torch
    from transformers.data.data_collator import DataCollatorMixin

    rows = [tokenizer(f"{HUMAN} Say {en}.{ASSISTANT} {es}", add_special_tokens=False)
            for en, es in PAIRS[:2]]
    padded = DataCollatorForCompletionOnlyLM(ASSISTANT, tokenizer=tokenizer)
    flat = DataCollatorForCompletionOnlyLM(ASSISTANT, tokenizer=tokenizer, padding_free=True)
    assert isinstance(padded, DataCollatorMixin)
    batch = padded.torch_call(rows)
    assert torch.equal(batch["labels"], padded(rows)["labels"])
    free = flat(rows)
    assert "attention_mask" not in free and free["input_ids"].shape == free["labels"].shape == \
        free["position_ids"].shape
    mask = batch["attention_mask"].bool()
    assert torch.equal(free["input_ids"][0], batch["input_ids"][mask])
    lengths = [len(r["input_ids"]) for r in rows]
    assert free["position_ids"][0].tolist() == [i for n in lengths for i in range(n)]
    assert (free["cu_seq_lens_q"].tolist() == [[0, lengths[0], sum(lengths)]]
            and free["max_length_k"].item() == max(lengths))
    # the same tokens are trained, except each example's first token, which has no context in the
    # flat row
    want = [lab for row_labels, m in zip(batch["labels"], mask) for lab in row_labels[m].tolist()]
    want[0], want[lengths[0]] = IGNORE_INDEX, IGNORE_INDEX
    assert free["labels"][0].tolist() == want
    with pytest.raises(TypeError, match="return_tensors='np'"):
        DataCollatorForCompletionOnlyLM(ASSISTANT, tokenizer=tokenizer, return_tensors="np")
