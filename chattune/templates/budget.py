"""A budget for rendering one conversation: a chat template is code from the hub, and the sandbox
stops it reaching Python's internals but not looping for ever (two nested `range(100000)` loops) or
building a string of gigabytes. The limits are module constants, read at every render, so a user can
raise them (`chattune.templates.budget.RENDER_SECONDS = 60`).

The template's syntax tree is rewritten once, before it is compiled: every loop's iterable and every
call's callee pass through a budget filter, which counts steps and watches the clock, and `*`, `**`,
`+` and `~` check the size of what they make. Filters, not calls: the sandbox's checks on every call
would triple the cost of a render. Real templates take a few hundred steps and milliseconds per
conversation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import new_context

from chattune.errors import TemplateError

RENDER_SECONDS = 10.0  # wall-clock time for one render
RENDER_STEPS = 2_000_000  # loop iterations plus calls in one render
# characters (or items) of the rendered text and of any value built on the way
RENDER_CHARS = 10_000_000

_PREFIX = "chattune_budget_"  # the names the rewritten template reaches the budget by


class BudgetExceeded(TemplateError):
    """A render that went past RENDER_SECONDS, RENDER_STEPS or RENDER_CHARS."""


def _too_big(size: int) -> None:
    if size > RENDER_CHARS:
        raise BudgetExceeded(f"the chat template built a value of {size:,} characters or items, "
                             f"more than chattune.templates.budget.RENDER_CHARS={RENDER_CHARS:,}")


class RenderBudget:
    """The budget of one render, handed to the template as a variable its budget filters read."""

    def __init__(self) -> None:
        self.steps = 0
        self.start = time.monotonic()

    def step(self) -> None:
        self.steps += 1
        if self.steps > RENDER_STEPS:
            raise BudgetExceeded("the chat template took more than "
                                 f"chattune.templates.budget.RENDER_STEPS={RENDER_STEPS:,} loop "
                                 "steps and calls to render one conversation")
        if not self.steps & 1023 and time.monotonic() - self.start > RENDER_SECONDS:
            raise BudgetExceeded("the chat template took more than "
                                 f"chattune.templates.budget.RENDER_SECONDS={RENDER_SECONDS:g} s "
                                 "to render one conversation")


_BUDGET = "chattune_render_budget"  # the variable holding the render's RenderBudget


# pass_context: the budget is in the context, and Jinja never folds such a filter into a constant at
# compile time
@pass_context
def _loop(context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = context.get(_BUDGET)
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _call(context: Any, func: Any) -> Any:
    context.get(_BUDGET).step()
    return func


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple):
        _too_big(len(value))
    return value


@pass_context
def _mul(context: Any, left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            _too_big(len(seq) * n)  # before it is made: "x" * 10**10 would take the memory first
    return left * right


@pass_context
def _pow(context: Any, left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        _too_big(left.bit_length() * right // 3)  # about the digits the power has
    return left**right


FILTERS = {"loop": _loop, "call": _call, "sized": _sized, "mul": _mul, "pow": _pow}


def _rewrite(tree: Any) -> Any:
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    def budget(name: str, value: Any, *args: Any) -> Any:
        return nodes.Filter(value, _PREFIX + name, list(args), [], None, None, lineno=value.lineno)

    class Budgeted(NodeTransformer):
        def visit_For(self, node: Any) -> Any:
            node = self.generic_visit(node)
            node.iter = budget("loop", node.iter)
            return node

        def visit_Call(self, node: Any) -> Any:
            node = self.generic_visit(node)
            node.node = budget("call", node.node)
            return node

        def visit_Mul(self, node: Any) -> Any:
            node = self.generic_visit(node)
            return budget("mul", node.left, node.right)

        def visit_Pow(self, node: Any) -> Any:
            node = self.generic_visit(node)
            return budget("pow", node.left, node.right)

        def visit_Add(self, node: Any) -> Any:
            return budget("sized", self.chain(node))

        visit_Concat = visit_Add

        def chain(self, node: Any) -> Any:
            # only the whole of `a + b + c` is measured: its parts are no bigger, and each check
            # costs
            for field, value in node.iter_fields():
                if isinstance(value, list):
                    value[:] = [self.chain(v) if isinstance(v, nodes.Add | nodes.Concat)
                                else self.visit(v) for v in value]
                elif isinstance(value, nodes.Add | nodes.Concat):
                    setattr(node, field, self.chain(value))
                elif isinstance(value, nodes.Node):
                    setattr(node, field, self.visit(value))
            return node

    return Budgeted().visit(tree)


SAFE_ATTRIBUTES_KEPT = 4096  # answers of the sandbox's attribute check remembered per environment


def _remembered(is_safe_attribute: Any) -> Any:
    """The sandbox's attribute check, its answers remembered per (type of the object, attribute
    name): the answer depends on nothing else (the name, and which kinds of object the type is:
    function, method, code, mutable container...), and working it out took a tenth of preparing a
    conversation. A template that makes up names (`x|attr(name)`) stops being remembered past
    SAFE_ATTRIBUTES_KEPT and is checked every time."""
    known: dict[tuple[type, str], bool] = {}

    def check(obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        safe = known.get(key)
        if safe is None:
            safe = is_safe_attribute(obj, attr, value)
            if len(known) < SAFE_ATTRIBUTES_KEPT:
                known[key] = safe
        return safe
    return check


@lru_cache(maxsize=8)
def _environment(base: Any) -> Any:
    """`base` (transformers' sandboxed environment: its filters, globals and extensions) with the
    budget filters, as an overlay: transformers' own environment is left as it is."""
    env = base.overlay()
    env.filters = {**base.filters, **{_PREFIX + name: f for name, f in FILTERS.items()}}
    env.is_safe_attribute = _remembered(env.is_safe_attribute)
    return env


@lru_cache(maxsize=64)
def budgeted_template(jinja: str, environment: Any) -> Any:
    """`jinja` compiled in (an overlay of) `environment`, transformers' sandboxed one, with the
    budget written into it; cached per template."""
    env = _environment(environment)
    template = env.from_string(_rewrite(env.parse(jinja)))
    # Jinja copies a template's globals (a ChainMap, slow to walk) into every render's context: a
    # third of a short render. Copied once here; each render's variables are laid over the copy.
    template.chattune_globals = dict(template.globals)
    return template


def render_within_budget(template: Any, **context: Any) -> str:
    """Render a budgeted template: a BudgetExceeded when it takes too long or writes too much."""
    parts, size = [], 0
    globals_ = template.chattune_globals
    variables = {**globals_, **context, _BUDGET: RenderBudget()}
    # Template.new_context, with the copy of the globals in place of the ChainMap; `shared`: the
    # variables already hold the globals, as Jinja's own copy would. The root render function
    # itself: Template.generate wraps it in two more generators.
    context_ = new_context(template.environment, template.name, template.blocks, variables, True,
                           globals_)
    for part in template.root_render_func(context_):
        size += len(part)
        if size > RENDER_CHARS:
            raise BudgetExceeded("the chat template wrote more than "
                                 f"chattune.templates.budget.RENDER_CHARS={RENDER_CHARS:,} "
                                 "characters for one conversation")
        parts.append(part)
    return "".join(parts)
