"""Data stage: load rows, convert them to Conversations, validate."""

from chattune.data.convert import conversations_from_rows, to_conversation
from chattune.data.load import load_rows
from chattune.data.schema import Conversation, Message

__all__ = ["Conversation", "Message", "conversations_from_rows", "load_rows", "to_conversation"]
