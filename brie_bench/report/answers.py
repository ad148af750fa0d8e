"""The distinct answers a run's judgments compare: texts read when first needed, figures read or worked out.

Every table of a report that looks at the answers themselves needs only their figures (a
length, markdown counts, a verdict-like passage: `brie_bench.answer_features`), which the
store keeps beside each text. A report loaded with ``lazy=True`` (`report.rows.load_run`)
reads those figures and no text; a text is read when a single comparison is listed
(the few rows a JSON report names) or when the figures of an answer were never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

from brie_bench.answer_features import FeatureTable, feature_table


class Answers(Sequence[str]):
    """Answers `keys` (generation keys; or the texts themselves, for rows built by hand) as a sequence of texts.

    `texts(keys)` gives the texts of some keys (a store read, or the keys themselves);
    `features` are the answers' figures in `keys` order, worked out from all texts on first
    use when not given.
    """

    __slots__ = ("keys", "_texts", "_read", "_features")

    def __init__(self, keys: list[str], read: Callable[[list[str]], dict[str, str]] | None = None,
                 features: FeatureTable | None = None, known: dict[str, str] | None = None) -> None:
        self.keys = keys
        self._read = read
        self._texts: dict[str, str] = {} if known is None else known
        self._features = features

    @classmethod
    def of_texts(cls, texts: list[str]) -> Answers:
        """Answers given as their texts (rows built by hand): each is its own key."""
        return cls(texts, None, None, None)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return self.texts_of(self.keys[i])
        return self.texts_of([self.keys[i]])[0]

    def texts_of(self, keys: Sequence[str]) -> list[str]:
        """The texts of `keys` (answers of this run), reading the ones not read yet in one call."""
        if self._read is None:
            return list(keys)
        missing = [k for k in dict.fromkeys(keys) if k not in self._texts]
        if missing:
            self._texts.update(self._read(missing))
        return [self._texts[k] for k in keys]

    def texts(self) -> list[str]:
        """Every answer's text, in order."""
        return self.texts_of(self.keys)

    @property
    def features(self) -> FeatureTable:
        """The answers' figures (`answer_features.FeatureTable`), row i for answer i."""
        if self._features is None:
            self._features = feature_table(self.texts())
        return self._features
