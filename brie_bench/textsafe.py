"""Text from suites, models and stores is untrusted: show control characters, never obey them.

Rich drops a few control codes but passes ESC through, so a suite name or a
model answer holding `\\x1b[2J` could clear the screen or retitle the window.
Everything printed to a terminal or written into Markdown goes through here.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

# C0 controls except tab and newline, DEL, C1 controls, and the bidi overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """`value` as text with every control character shown as an escape (`\\x1b`), not obeyed."""
    return _CONTROL.sub(_visible, str(value))


def safe_text(value: Any, **kwargs: Any) -> Text:
    """A rich Text of untrusted content: control characters escaped, no markup interpreted."""
    return Text(printable(value), **kwargs)
