"""The parts of scripts/wrap_lines.py: view (the file as tokens and brackets), text (comments,
docstrings, string literals) and code (where and how a line breaks)."""
