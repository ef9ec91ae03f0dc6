"""numpy arrays of pyarrow columns, taken from their buffers: pyarrow's own `to_numpy()` loads
pandas (most of a second), which reading bars does not otherwise need."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def column_values(column: Any, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The values of a pyarrow column of fixed-width `dtype` values without nulls, read-only."""
    array = column.combine_chunks()
    width = np.dtype(dtype).itemsize
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * width
    )
