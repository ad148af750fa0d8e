"""Text from suites, models and stores is untrusted: show control characters, never obey them.

Rich drops a few control codes but passes ESC through, so a suite name or a
model answer holding `\\x1b[2J` could clear the screen or retitle the window.
Everything printed to a terminal or written into Markdown goes through here.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich loads only when something is printed (start-up time of `report --json`)
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
    from rich.text import Text

    return Text(printable(value), **kwargs)


# Characters that change how text *looks* or *reads* without being visible: zero-width
# spaces and joiners, word joiner, invisible operators, soft hyphen, the BOM, Mongolian
# vowel separator, bidi marks, embeddings, overrides and isolates, and tag characters.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]")


def normalise(value: Any) -> str:
    """NFKC-normalised text with invisible format characters removed.

    What a reader (or a model) sees as `</response_a>` may be spelt with
    fullwidth letters (`＜／response_a＞`), a zero-width space inside the tag
    name, or a bidi override around it. Normalising first lets one plain
    pattern find every spelling.
    """
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", str(value)))


_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def normalise_prompt(text: str) -> str:
    """The key two prompts share when they are the same prompt: NFKC, case-folded, single spaces.

    Prompts are the unit every interval clusters on; the plan, the report and planning all
    key a prompt by this text, so the same prompt reused by several sections is one cluster.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def csv_cell(value: Any) -> Any:
    """A spreadsheet-safe CSV cell (OWASP): text starting with = + - @ (or tab, CR) gets a leading '.

    Plain numbers (`-3`, `+0.5`, `1e-3`) are left alone; so are non-strings.
    """
    if not isinstance(value, str) or not value.startswith(_CSV_TRIGGERS) or _PLAIN_NUMBER.match(value):
        return value
    return "'" + value


def json_line_safe(line: str) -> str:
    """A JSON text with control, C1 and bidi characters written as \\uXXXX escapes (still the same JSON).

    `json.dumps(..., ensure_ascii=False)` escapes C0 controls but leaves C1
    controls and bidi overrides raw; they can only occur inside strings,
    where the escape means the same character.
    """
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
