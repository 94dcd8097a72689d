"""Templates stage: render Conversations to ids and labels with exact masks."""

from chattune.labels import IGNORE_INDEX
from chattune.templates.builtin import BUILTIN_TEMPLATES, BuiltinTemplate
from chattune.templates.render import (
    Rendered,
    check_rendered,
    end_of_turn,
    render,
    render_text,
    resolve_template,
)
from chattune.templates.setup import setup_chat_format

__all__ = ["BUILTIN_TEMPLATES", "IGNORE_INDEX", "BuiltinTemplate", "Rendered", "check_rendered",
           "end_of_turn", "render", "render_text", "resolve_template", "setup_chat_format"]
