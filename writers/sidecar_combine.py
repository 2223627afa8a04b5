"""How ``merge_betons.py`` combines one sidecar entry of several files into the merged
file's: counts add up, a share or mean taken over one of them is recomputed from the totals,
settings the same in every file are kept, anything else that differs is kept per file
(``{'per_input': [...]}``). Entries no writer knows yet combine by the same rules.
"""
import math
import re

# The track summary's means and shares (writers.region_pairs.stats_summary) and the count
# each is taken over; unknown ones are matched to a count by :func:`_denominators`.
# Whole numbers that count something, and so add up even where the inputs agree (other
# numbers the same in every input are settings, kept): every entry of a summary named in
# COUNT_SUMMARIES, and entries named like the writers' counts.
COUNT_SUMMARIES = ('counts', 'lost')
COUNT_NAME = re.compile(
    r'(num|pairs|tracks|frames|videos|dropped|proposals|cuts|samples|small_boxes)(_|$)')
KNOWN_DENOMINATORS = {'kept_fraction': 'proposals', 'mean_track_frames': 'proposals',
                      'mean_kept_track_frames': 'tracks_kept'}


def combine(values, key=None, counts=False):
    """One sidecar value from each input's (``key``: its name; ``counts``: it is in a
    summary of counts). A count (:func:`_is_count_entry`) adds up; dicts combine key by key
    (a count missing from an input counts 0), where a share or mean is recomputed from the
    totals when it is taken over one of the dict's counts (:func:`_denominators`); any other
    value that is the same in every input is kept (a setting); other whole numbers add up;
    anything else is kept as ``{'per_input': values}``."""
    whole = all(is_count(v) for v in values)
    if whole and (counts or _is_count_entry(key)):
        return sum(values)
    if all(isinstance(v, dict) for v in values):      # equal or not: they may hold counts
        return _combine_dicts(values, key in COUNT_SUMMARIES)
    if all_same(values):
        return values[0]
    if whole:
        return sum(values)
    return {'per_input': values}


def _combine_dicts(dicts, counts):
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    merged = {}
    for key in keys:
        values = [d.get(key) for d in dicts]
        present = [d[key] for d in dicts if key in d]
        if len(present) == len(dicts):
            merged[key] = combine(values, key, counts)
        elif all(is_count(v) for v in present):
            merged[key] = sum(present)
        else:
            merged[key] = {'per_input': values}
        if _all_ratios(values) and not all_same(values):
            merged[key] = _recombined_ratio(key, values, dicts, merged[key])
    return merged


def _recombined_ratio(key, values, dicts, fallback):
    """The share or mean ``key`` over the merged counts, or ``fallback`` (per input) when
    no count of the dicts is what it was taken over. An input whose count is 0 may give None
    (nothing to take a share of); so does the merge when every count is 0."""
    results = {}
    for denominator in _denominators(key, values, dicts):
        counts = [d[denominator] for d in dicts]
        total = sum(counts)
        results[denominator] = (sum(v * c for v, c in zip(values, counts) if c) / total
                                if total else None)
    if key in KNOWN_DENOMINATORS and KNOWN_DENOMINATORS[key] in results:
        return results[KNOWN_DENOMINATORS[key]]
    found = list(results.values())
    if found and all(r is not None and math.isclose(r, found[0], rel_tol=1e-9)
                     for r in found):
        return found[0]
    return fallback


def _denominators(key, values, dicts):
    """The counts ``key`` may be taken over: its known one, or every count of the dicts that
    makes ``value * count`` a whole number in each input (a share or mean of whole numbers)
    and is 0 only where the value is 0 or None."""
    if key in KNOWN_DENOMINATORS:
        known = KNOWN_DENOMINATORS[key]
        return [known] if all(is_count(d.get(known)) for d in dicts) else []
    found = []
    for name in dicts[0]:
        counts = [d.get(name) for d in dicts]
        if name == key or not all(is_count(c) for c in counts) or not any(counts):
            continue
        if all(not v if not c else
               v is not None and abs(v * c - round(v * c)) <= 1e-6 * max(1.0, abs(v * c))
               for v, c in zip(values, counts)):
            found.append(name)
    return found


def _is_count_entry(key):
    return key is not None and COUNT_NAME.match(key) is not None


def is_count(value):
    """A whole number, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _all_ratios(values):
    """Numbers (None where there was nothing to take a share of), at least one a float."""
    return (all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in values) and any(isinstance(v, float) for v in values))


def same(a, b):
    """Equal and of one type (1 is not 1.0, nor True)."""
    return type(a) is type(b) and a == b


def all_same(values):
    """Every value :func:`same` as the first."""
    return all(same(v, values[0]) for v in values[1:])
