"""What the report derives from each answer's text, worked out once, when the answer is stored.

A report reads three things of every answer a run compares: its length (the length-bias
figures), its markdown counts (the style-controlled win rate) and the first verdict-like
passage in it (answers that may steer a judge). At 100,000 judgments that is 40,000
answers: reading their texts and scanning them was a tenth of `report --json`'s time, and
more with real answers, which run to kilobytes (benchmarks/report_scale.py). So the store
keeps these figures beside the text (`generations.features`, written by `stored_features`
in the same insert), and a report that finds them for every answer never reads a text.

They are a cache of a pure function of the text, never a source of their own: each stored
value names the `FEATURES_VERSION` of the rules that made it, and a reader recomputes from
the text any answer whose value is missing (a store written before schema 4, a row copied
from one) or was made by other rules. Bump `FEATURES_VERSION` whenever `style_counts` or
`verdict_like_text` would count or find anything differently:
`tests/report/test_answer_features.py` fails until you do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: the store imports this module, and not every command needs numpy
    import numpy as np
    from numpy.typing import NDArray

#: The version of the rules behind a stored features value (see the module docstring).
FEATURES_VERSION = 1


@dataclass(frozen=True)
class FeatureTable:
    """The derived figures of n answers, row i for answer i.

    `chars` is each text's length in characters; `style` the (n, 5) `stats.style.style_counts`
    in `STYLE_FEATURES` order (its length is the text's without fenced code); `verdict_like`
    the first verdict-like passage (`verdicts.verdict_like_text`), or None.
    """

    chars: NDArray[np.float64]
    style: NDArray[np.float64]
    verdict_like: list[str | None]

    def __len__(self) -> int:
        return len(self.chars)


def feature_table(texts: Sequence[str]) -> FeatureTable:
    """The figures of `texts`, worked out from them (each pattern run once over many texts)."""
    import numpy as np

    from brie_bench.stats.style import style_count_table
    from brie_bench.verdicts import verdict_like_texts

    return FeatureTable(chars=np.fromiter(map(len, texts), dtype=float, count=len(texts)),
                        style=style_count_table(texts).astype(float), verdict_like=verdict_like_texts(texts))


def stored_features(text: str, as_stored: Callable[[str], str] = str) -> str | None:
    """The value the store writes beside `text`: compact JSON of its figures and the rules' version.

    `as_stored` is the text as the store will hold it (PostgreSQL cannot hold NUL). None for a
    value that is no text: the store's insert then refuses it (NOT NULL, or a type the database
    cannot hold), as it would have without this column.
    """
    if not isinstance(text, str):
        return None
    text = as_stored(text)
    from brie_bench.stats.style import STYLE_FEATURES, style_counts
    from brie_bench.verdicts import verdict_like_text

    counts = style_counts(text)
    return json.dumps({"version": FEATURES_VERSION, "chars": len(text),
                       "style": [getattr(counts, name) for name in STYLE_FEATURES],
                       "verdict_like": verdict_like_text(text)}, separators=(",", ":"), ensure_ascii=False)


def with_features(rows: Sequence[dict[str, Any]], as_stored: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """`generations` rows to store, each with the features of its own text (a copied row's value is not
    trusted); `as_stored` as in `stored_features`."""
    return [{**r, "features": stored_features(r["text"], as_stored)} if "text" in r else r for r in rows]


def _usable(value: Any, width: int) -> bool:
    """Whether a parsed stored value was made by these rules and has their shape."""
    return (isinstance(value, dict) and value.get("version") == FEATURES_VERSION
            and type(value.get("chars")) is int and isinstance(value.get("style"), list)
            and len(value["style"]) == width and all(type(x) is int for x in value["style"])
            and (value.get("verdict_like") is None or isinstance(value["verdict_like"], str)))


def parse_stored(values: Sequence[str | None]) -> tuple[FeatureTable, list[int]]:
    """The figures in stored `values` (one per answer), and the indexes of those that must be
    worked out from the text again: missing, unreadable, or made by another `FEATURES_VERSION`.

    Their rows in the table are zeros until the caller fills them (`fill`).
    """
    import numpy as np

    from brie_bench.stats.style import STYLE_FEATURES

    n, width = len(values), len(STYLE_FEATURES)
    parsed: list[Any] = [None] * n
    present = [i for i, v in enumerate(values) if v]
    if present:
        texts = [values[i] for i in present]
        try:  # one call for all of them: the store writes each as a JSON object
            found = json.loads("[" + ",".join(texts) + "]")  # type: ignore[arg-type]
        except ValueError:
            found = [_loads(t) for t in texts]
        if len(found) != len(present):
            found = [_loads(t) for t in texts]
        for i, value in zip(present, found):
            parsed[i] = value
    usable = [_usable(value, width) for value in parsed]
    redo = [i for i, ok in enumerate(usable) if not ok]
    good = [i for i, ok in enumerate(usable) if ok]
    chars = np.zeros(n)
    style = np.zeros((n, width))
    verdict_like: list[str | None] = [None] * n
    if good:
        chars[good] = [parsed[i]["chars"] for i in good]
        style[good] = [parsed[i]["style"] for i in good]
        for i in good:
            verdict_like[i] = parsed[i]["verdict_like"]
    return FeatureTable(chars=chars, style=style, verdict_like=verdict_like), redo


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def fill(table: FeatureTable, at: Sequence[int], texts: Sequence[str]) -> None:
    """Work out rows `at` of `table` from their answers' `texts` (in place)."""
    import numpy as np

    if not at:
        return
    made = feature_table(texts)
    index = np.asarray(at, dtype=np.intp)
    table.chars[index] = made.chars
    table.style[index] = made.style
    for i, passage in zip(at, made.verdict_like):
        table.verdict_like[i] = passage
