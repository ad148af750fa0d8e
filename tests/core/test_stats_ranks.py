"""`stats.ranks` gives exactly what `np.unique` gives, for every kind of column the statistics pass it.

The intervals renumber the prompts a statistic covers with these (a boolean table over small
non-negative integer codes instead of a sort); anything else goes to `np.unique` itself. Both
paths must agree with `np.unique` value for value and dtype for dtype.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brie_bench.stats import ranks
from brie_bench.stats.ranks import count_unique, unique_inverse, unique_values

_INTEGER_COLUMNS = hnp.arrays(st.sampled_from([np.int64, np.int32, np.intp, np.uint8]),
                              hnp.array_shapes(max_dims=1, min_side=0, max_side=60),
                              elements=st.integers(min_value=0, max_value=200))
_OTHER_COLUMNS = st.one_of(
    hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(min_value=-5, max_value=10**12)),  # negative, huge
    hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-3, 3, allow_nan=False)),
    hnp.arrays(np.bool_, st.integers(0, 40)),
    st.lists(st.sampled_from(["p1", "p2", "b"]), max_size=30).map(np.asarray),
)


def _agree(values: np.ndarray) -> None:
    distinct, inverse = np.unique(values, return_inverse=True)
    found = unique_values(values)
    assert found.dtype == distinct.dtype and found.tolist() == distinct.tolist()
    got = unique_inverse(values)
    assert got.dtype == np.intp and got.tolist() == inverse.reshape(-1).tolist()
    assert count_unique(values) == distinct.size


@settings(max_examples=300, deadline=None)
@given(_INTEGER_COLUMNS)
def test_small_integer_codes_are_ranked_as_np_unique_ranks_them(values: np.ndarray) -> None:
    _agree(values)


@settings(max_examples=200, deadline=None)
@given(_OTHER_COLUMNS)
def test_any_other_column_goes_to_np_unique(values: np.ndarray) -> None:
    _agree(values)


def test_the_table_is_used_for_codes_and_not_for_sparse_values() -> None:
    assert ranks._present(np.array([3, 0, 3, 7])) is not None
    assert ranks._present(np.array([0, 10**9])) is None  # a table that large would cost more than a sort
    assert ranks._present(np.array([-1, 2])) is None and ranks._present(np.zeros(0, dtype=np.int64)) is None
