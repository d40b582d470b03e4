"""Shared helpers of the table scripts (uft_tables.py, sm_tables.py): reading a
summary.csv cell and writing mean ± sample sd over seeds."""
import statistics


def num(row, col):
    """A summary.csv cell as a float, None when empty or absent."""
    v = row.get(col, "")
    return float(v) if v not in ("", None) else None


def ms(vals, scale=100.0, digits=1, empty="-"):
    """mean ± sample sd of the non-missing values, times `scale`; one value
    is marked `(1)`."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return empty
    m = statistics.mean(vals) * scale
    if len(vals) == 1:
        return f"{m:.{digits}f} (1)"
    return f"{m:.{digits}f} ± {statistics.stdev(vals) * scale:.{digits}f}"
