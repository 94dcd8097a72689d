"""A chat template's render has a budget: steps, seconds and characters end in a clear error, not a
hang."""

import time

import pytest
from conftest import write_jsonl

import chattune.templates.budget as budget
from chattune.config import DataSource
from chattune.data.schema import Message
from chattune.errors import TemplateError
from chattune.prepare.examples import PrepareOptions, prepare_source
from chattune.templates.render import render_text

MSGS = [Message("user", "What is 2 + 2?"), Message("assistant", "4")]
NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def fails_fast(tokenizer, jinja, says, within=5.0):
    start = time.monotonic()
    with pytest.raises(TemplateError, match=says):
        render_text(tokenizer, MSGS, jinja=jinja)
    assert time.monotonic() - start < within


def test_nested_loops_end_with_the_step_budget(tokenizer):
    fails_fast(tokenizer, NESTED_RANGES,
               r"more than chattune\.templates\.budget\.RENDER_STEPS=2,000,000 loop steps")
    # a list made once and looped over twice makes no call per step: the loops still count
    fails_fast(tokenizer, "{% set x = range(100000)|list %}{% for i in x %}{% for j in x %}{% "
                          "endfor %}{% endfor %}",
               "RENDER_STEPS")


def test_calls_without_loops_end_with_the_time_budget(tokenizer, monkeypatch):
    monkeypatch.setattr(budget, "RENDER_SECONDS", 0.3)
    exponential = ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro "
                   "%}{{ f(60) }}")
    fails_fast(tokenizer, exponential, r"RENDER_SECONDS=0\.3 s to render one conversation")


@pytest.mark.parametrize(("jinja", "says"), [
    ("{{ 'a' * 10000000000 }}", "built a value of 10,000,000,000"),
    ("{{ [1] * 10000000000 }}", "built a value of 10,000,000,000"),
    ("{{ 7 ** 1000000000 }}", "built a value of"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% "
     "endfor %}", "built a"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% "
     "endfor %}", "built a"),
    ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
     "wrote more than .*RENDER_CHARS=10,000,000"),
])
def test_huge_values_and_output_end_with_the_size_budget(tokenizer, jinja, says):
    fails_fast(tokenizer, jinja, says)


def test_budgeted_rendering_is_the_template_s_own(tokenizer):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    jinja = ("{% set ns = namespace(n=0) %}{% macro turn(m) %}[{{ m.role ~ ':' + m.content }}]{{ "
             "caller() }}{% endmacro %}{% for m in messages if m.role != 'system' %}{% set ns.n = "
             "ns.n + loop.length %}{% call turn(m) %}{{ loop.index }}/{{ loop.length }}{{ '!' if "
             "loop.last }}{% endcall %}{% else %}none{% endfor %}{% for x in [[1, [2, 3]], 4] "
             "recursive %}{% if x is iterable %}({{ loop(x) }}){% else %}{{ x * 2 }}{% endif %}{% "
             "endfor %}{{ ns.n }} {{ 2 ** 10 }} {{ messages | map(attribute='content') | join('|') "
             "}} {{ 'ab' * 3 }} {{ range(3) | list }}{{ raise_exception('never') if messages | "
             "length > 5 }}{{ eos_token }}")
    dicts = [m.to_template_dict() for m in MSGS]
    expected = _compile_jinja_template(jinja).render(messages=dicts, add_generation_prompt=False,
                                                      **tokenizer.special_tokens_map)
    assert render_text(tokenizer, MSGS, jinja=jinja) == expected
    # the features above did run
    assert "[user:What is 2 + 2?]1/2" in expected and "(2(46))8" in expected


def test_a_row_over_budget_is_a_bad_row_naming_file_and_line(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setattr(budget, "RENDER_STEPS", 10_000)
    slow = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    # loops as long as the conversation is, squared: fine for short rows, over budget for a long one
    slow.chat_template = ("{% for a in messages %}{% for b in messages %}{% for c in messages %}{% "
                          "endfor %}{% endfor %}{% endfor %}" + tokenizer.chat_template)
    long_row = {"messages": [{"role": r, "content": "hi"} for _ in range(30)
                             for r in ("user", "assistant")]}
    short_row = {"messages": [m.to_template_dict() for m in MSGS]}
    path = write_jsonl(tmp_path / "d.jsonl", [short_row, long_row, short_row])
    examples, stats = prepare_source(DataSource(path=str(path)), slow,
                                     PrepareOptions(max_length=4096), cache=False)
    assert len(examples) == 2 and stats.bad == 1
    assert (stats.problems[0].startswith(f"{path}, line 2: ")
            and "RENDER_STEPS=10,000" in stats.problems[0])


@pytest.mark.parametrize("jinja", ["{{ messages.append(messages[0]) }}",
                                   "{{ messages[0].clear() }}",
                                   "{{ (messages | attr('pop'))() }}"])
def test_the_sandbox_refuses_every_render_not_only_the_first(tokenizer, jinja):
    # its answers are remembered per type and name: the second render must be refused as the first
    for _ in range(2):
        with pytest.raises(TemplateError, match="failed to render"):
            render_text(tokenizer, MSGS, jinja=jinja)
    # an internal attribute reads as undefined (Jinja's sandbox), every time
    for _ in range(2):
        assert render_text(tokenizer, MSGS, jinja="{{ raise_exception.__globals__ }}") == ""


def test_remembered_attribute_checks_stop_at_their_limit(tokenizer, monkeypatch):
    monkeypatch.setattr(budget, "SAFE_ATTRIBUTES_KEPT", 0)
    budget._environment.cache_clear()
    budget.budgeted_template.cache_clear()
    try:
        with pytest.raises(TemplateError, match="failed to render"):
            render_text(tokenizer, MSGS, jinja="{{ messages.append(1) }}")
        assert render_text(tokenizer, MSGS, jinja="{{ messages | length }}") == "2"
    finally:
        budget._environment.cache_clear()
        budget.budgeted_template.cache_clear()
