"""The range check the writers' flags and the loaders' keyword arguments share."""
import numpy as np
import pytest

from fastssl_common.errors import UserError
from fastssl_common.numbers import INT64_MAX, check_number, is_number


@pytest.mark.parametrize('value, integer, expected', [
    (3, True, True), (np.int64(3), True, True), (np.uint8(3), True, True),
    (2.5, False, True), (np.float32(2.5), False, True), (2.0, True, False),
    (True, True, False), (np.bool_(True), False, False), (float('nan'), False, False),
    (float('inf'), False, False), ('3', True, False), (None, False, False),
])
def test_is_number(value, integer, expected):
    assert is_number(value, integer) is expected


def test_in_range_values_come_back_as_python_numbers():
    assert check_number(np.int32(7), '--gap', 1) == 7
    assert type(check_number(np.int32(7), '--gap', 1)) is int
    assert type(check_number(np.float32(0.5), 'flip_prob', 0, 1, integer=False)) is float
    assert check_number(0, '--workers', 1, zero='one per CPU') == 0


@pytest.mark.parametrize('value, kwargs, message', [
    (0, dict(low=1), '--x must be a whole number >= 1, got 0'),
    (101, dict(low=1, high=100), '--x must be a whole number from 1 to 100, got 101'),
    (5, dict(high=4), '--x must be a whole number <= 4, got 5'),
    (1.5, dict(low=0), '--x must be a whole number >= 0, got 1.5'),
    (float('nan'), dict(low=0, integer=False), '--x must be a number >= 0, got nan'),
    (True, dict(low=0), '--x must be a whole number >= 0, got True'),
    (-1, dict(low=1, zero='no cap'), '--x must be a whole number >= 1, or 0 (no cap), got -1'),
    (9, dict(low=0, high=4, what='a whole number up to --y (4)'),
     '--x must be a whole number up to --y (4), got 9'),
    (2**63, dict(low=0), f'--x is too large: at most {INT64_MAX} in size, got {2**63}'),
    (-2**63 - 1, dict(), f'--x is too large: at most {INT64_MAX} in size, got {-2**63 - 1}'),
])
def test_out_of_range_is_one_line_naming_the_option_range_and_value(value, kwargs, message):
    with pytest.raises(UserError) as err:
        check_number(value, '--x', **kwargs)
    assert str(err.value) == message


def test_zero_is_refused_where_it_means_nothing():
    with pytest.raises(UserError, match='got 0'):
        check_number(0, 'batch_size', 1)
