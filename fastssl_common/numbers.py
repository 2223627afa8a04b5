"""Range checks for numeric options and arguments, shared by the writers' flags and the
loaders' keyword arguments so that both refuse a bad number with the same one line.

Whole numbers are refused beyond 64 bits whatever the range: NumPy, Numba, FFCV and the
video libraries take them as int64 and would fail later with an OverflowError traceback.
"""
import numpy as np

from fastssl_common.errors import UserError

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def is_number(value, integer=False):
    """A real number (``integer``: a whole one) and not a bool; floats must be finite."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return (not integer and isinstance(value, (float, np.floating))
            and bool(np.isfinite(value)))


def check_number(value, name, low=None, high=None, *, integer=True, zero=None, what=None):
    """``value`` as an int (``integer``) or a float, if it lies in ``[low, high]`` (None:
    unbounded) or is 0 where ``zero`` says what 0 means. Otherwise a UserError naming
    ``name`` (the flag or keyword as the user wrote it), the range (or ``what``) and the
    value."""
    if isinstance(value, (int, np.integer)) and is_number(value):
        if not INT64_MIN <= value <= INT64_MAX:
            raise UserError(f'{name} is too large: at most {INT64_MAX} in size, got {value!r}')
    number = is_number(value, integer)
    in_range = number and (low is None or value >= low) and (high is None or value <= high)
    if not in_range and not (zero and number and value == 0):
        if what is None:
            what = 'a whole number' if integer else 'a number'
            what += (f' from {low} to {high}' if low is not None and high is not None else
                     f' >= {low}' if low is not None else f' <= {high}' if high is not None
                     else '')
            what += f', or 0 ({zero})' if zero else ''
        raise UserError(f'{name} must be {what}, got {value!r}')
    return int(value) if integer else float(value)


def check_flag(value, name, *, unset=False):
    """``value`` as a bool, if it is one (NumPy's too), or None where ``unset`` allows it;
    otherwise a UserError naming ``name``: ``strict='false'`` or ``progress=0`` would be read
    by their truth, the opposite of what they say."""
    if value is None and unset:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = 'True, False or None' if unset else 'True or False'
        raise UserError(f'{name} must be {allowed}, got {value!r}')
    return bool(value)
