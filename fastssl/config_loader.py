"""Reading a command's settings: fastargs sections filled from YAML files and
``--section.key=value`` flags, every value checked, each problem one ``error:`` line.

A section is declared with the checkers here: :class:`Int` and :class:`Float` take the
parameter's valid range (``Int(gt=0)``, ``Float(ge=0, le=1)``), so a range lives with its
parameter. Besides each value's type and range, a ``X_min`` must not exceed its ``X_max``.
Unknown keys, wrong types, values out of range and missing files are reported as one
``UserError`` naming the key (and the value) or the file.
"""
import collections.abc
import difflib
import math
import os
import re
import sys
from pathlib import Path

import yaml
from fastargs.config import Config
from fastargs.dict_utils import expand_keys, fix_dict
from fastargs.validation import Checker

from fastssl_common.errors import UserError


class OutOfRange(ValueError):
    """A value of the right type outside its parameter's range."""

    def __init__(self, value, bounds):
        super().__init__(value, bounds)
        self.value, self.bounds = value, bounds


class Number(Checker):
    """A number, optionally bounded below (``gt``, ``ge``) and above (``lt``, ``le``);
    ``special`` values (``'auto'``, ``0``) are accepted besides the range, each with a
    meaning the parameter's help states."""
    noun = ''

    def __init__(self, gt=None, ge=None, lt=None, le=None, special=()):
        self.low, self.low_open = (gt, True) if gt is not None else (ge, False)
        self.high, self.high_open = (lt, True) if lt is not None else (le, False)
        self.special = tuple(special)

    def convert(self, value):
        raise NotImplementedError

    def check(self, value):
        if isinstance(value, bool):
            raise TypeError()
        if value in self.special:  # as written: 'auto'
            return value
        number = self.convert(value)
        if number in self.special:  # as parsed: '0' on the command line
            return number
        # written as not (inside): nan is outside every range
        if ((self.low is not None and not (number > self.low if self.low_open
                                           else number >= self.low))
                or (self.high is not None and not (number < self.high if self.high_open
                                                   else number <= self.high))):
            raise OutOfRange(number, self.bounds())
        return number

    def bounds(self):
        """'> 0', '>= 0', 'in (0, 1]', 'in [0, 1)', '> 0 or auto' ... ('' when unbounded)."""
        return ' or '.join([self._range()] * bool(self._range())
                           + [str(value) for value in self.special])

    def help(self):
        return f'{self.noun} {self.bounds()}'.rstrip()

    def _range(self):
        low = f"{'>' if self.low_open else '>='} {self.low}"
        high = f"{'<' if self.high_open else '<='} {self.high}"
        if self.low is None:
            return '' if self.high is None else high
        if self.high is None:
            return low
        return (f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}")


class Int(Number):
    """An integer; unlike fastargs' Int it refuses 3.7 instead of truncating it."""
    noun = 'an int'

    def convert(self, value):
        if isinstance(value, float) and not value.is_integer():
            raise TypeError()
        return int(value)


class Float(Number):
    """A finite float: inf and nan are no setting's valid value."""
    noun = 'a float'

    def convert(self, value):
        return float(value)

    def check(self, value):
        number = super().check(value)
        if not math.isfinite(number):
            raise OutOfRange(number, 'finite')
        return number


class Bool(Checker):
    """true/false, yes/no, on/off, 1/0: the words YAML reads as booleans, so a value means the
    same in a file and on the command line (fastargs' Bool would read 'false' as True)."""
    WORDS = {'true': True, 'yes': True, 'on': True, '1': True,
             'false': False, 'no': False, 'off': False, '0': False}

    def check(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in self.WORDS:
            return self.WORDS[value.lower()]
        raise TypeError()

    def help(self):
        return 'a boolean (true/false)'


class Str(Checker):
    def check(self, value):
        if isinstance(value, str):
            return value
        raise TypeError()

    def help(self):
        return 'a string'


class UnsetVariable(ValueError):
    """A path naming an environment variable that is not set (or set to '')."""

    def __init__(self, name, empty=False):
        super().__init__(name)
        self.name, self.empty = name, empty

    def refusal(self, setting, raw):
        """The UserError naming ``setting`` and its value ``raw``."""
        if not re.fullmatch(r'\w+', self.name):     # ${VAR:-default}: a shell's, not ours
            return UserError(f'{setting} uses ${{{self.name}}}: only $VAR and ${{VAR}} are '
                             f'expanded, without shell defaults or other forms: {raw}')
        state = 'empty' if self.empty else 'not set'
        return UserError(f'{setting} names ${self.name}, an environment variable that is '
                         f'{state}: {raw}')


class PathStr(Str):
    """A file or folder path; ``~`` and ``$VAR`` / ``${VAR}`` are expanded as a shell would,
    also in a YAML file and after ``--key=`` (where the shell leaves them): taken literally
    they made folders named ``~`` or ``$SCRATCH`` in the working directory. A YAML integer
    (``run_dir: 2024``) is the folder of that name."""
    VARIABLE = re.compile(r'\$(\w+|\{[^}]*\})')

    def check(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        value = super().check(value)
        # set to '': '$SCRATCH/x.beton' would quietly become '/x.beton'
        for named in self.VARIABLE.finditer(value):
            if os.environ.get(named.group(1).strip('{}')) == '':
                raise UnsetVariable(named.group(1).strip('{}'), empty=True)
        expanded = os.path.expandvars(os.path.expanduser(value))
        unset = self.VARIABLE.search(expanded)  # expandvars leaves an unset one as written
        if unset:
            raise UnsetVariable(unset.group(1).strip('{}'))
        return expanded

    def help(self):
        return 'a path'


class OneOf(Checker):
    def __init__(self, *choices):
        self.choices = choices

    def check(self, value):
        if value in self.choices:
            return value
        raise ValueError()

    def help(self):
        return 'one of ' + '/'.join(self.choices)


def _flatten(tree, prefix=()):
    for key, value in tree.items():
        path = prefix + (str(key),)
        if isinstance(value, dict):
            yield from _flatten(value, path)
        else:
            yield path, value


def config_differences(old, new):
    """``[(dotted key, old value, new value), ...]`` of every key whose value differs between
    two resolved configs (nested dicts), sorted by key; None stands for a missing key."""
    old, new = ({'.'.join(path): value for path, value in _flatten(tree)} for tree in (old, new))
    return [(key, old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]


def parse_cli(argv):
    """Split argv into (config files, {dotted key: value}); UserError on a malformed item."""
    files, overrides = [], {}
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in ('--config-file', '-C'):
            if not items:
                raise UserError(f'{item} needs a file path')
            files.append(items.pop(0))
        elif item.startswith('--config-file='):
            files.append(item.split('=', 1)[1])
        elif item.startswith('--') and '=' in item:
            key, value = item[2:].split('=', 1)
            overrides[key] = value
        elif item.startswith('--') and items and not items[0].startswith('--'):
            overrides[item[2:]] = items.pop(0)
        else:
            raise UserError(f"cannot parse argument '{item}' (use --section.key=value)")
    return files, overrides


def help_text(cfg, command=None, about='', sources=()):
    """``--help``: the usage line of ``command`` (default: the script's name), ``about`` (what
    the command does) and every key with its range, value and description. The value is the
    default, or what ``sources`` (the config files and the command line, as named) set, so
    ``--config-file RECIPE --help`` shows the recipe's settings."""
    command = command or os.path.basename(sys.argv[0])
    lines = [f'usage: {command} [--config-file FILE.yaml] [--section.key=value ...]',
             *([about] if about else []), '']
    if sources:
        lines[-1:-1] = [f"values as set by {' then '.join(sources)} (default shown where "
                        f"they change it)"]
    for path, param in cfg.entries.items():
        default = 'required' if param.required else repr(param.default)
        shown = default
        if path in cfg.content:
            try:
                value = param.checker.check(cfg.content[path])
            except Exception:
                value = cfg.content[path]   # refused when the command runs, not here
            shown = repr(value) if param.required or value == param.default else \
                f'{value!r}, default {default}'
        lines.append(f"  --{'.'.join(path):28s} {param.checker.help():32s} "
                     f"[{shown}] {param.desc}")
    return '\n'.join(lines)


def _closest(name, choices):
    """The choice closest to ``name`` (a likely typo of it), or None."""
    close = difflib.get_close_matches(name, choices, n=1)
    return close[0] if close else None


def _key_suggestion(key, known, elsewhere=None):
    """' (did you mean S.NAME?)': the same name in another section; else ' (a setting of
    COMMAND)' where ``elsewhere`` ({section: [command, ...]}) says which other commands declare
    the key's section; else the closest key."""
    keys = ['.'.join(path) for path in known]
    name = key.rsplit('.', 1)[-1]
    moved = [other for other in keys if other.rsplit('.', 1)[-1] == name]
    section = key.split('.', 1)[0]
    if not moved and section in (elsewhere or {}):
        return f" (a setting of {' and '.join(elsewhere[section])})"
    moved = moved or [_closest(key, keys)]
    return f" (did you mean {' or '.join(moved)}?)" if moved[0] else ''


# the named recipes: fastssl/configs/ inside a wheel, configs/ beside fastssl/ in a clone
RECIPE_DIRS = [Path(__file__).resolve().parent / 'configs',
               Path(__file__).resolve().parent.parent / 'configs']


def config_file_path(name):
    """A ``--config-file`` argument's file: NAME itself when it is a file (or a pipe:
    ``<(...)``), else the named recipe it calls (``fti`` or ``fti.yaml``); UserError naming it
    otherwise. ``~`` and ``$VAR`` are expanded as in a path setting: after ``--config-file=``
    the shell leaves them."""
    try:
        given = PathStr().check(name)
    except UnsetVariable as err:
        raise err.refusal('--config-file', name) from None
    if os.path.exists(given) and not os.path.isdir(given):
        return given
    recipes = {path.stem: path for folder in reversed(RECIPE_DIRS) if folder.is_dir()
               for path in folder.glob('*.yaml')}
    stem = name[:-len('.yaml')] if name.endswith('.yaml') else name
    if os.sep not in name and stem in recipes:
        return str(recipes[stem])
    if os.path.isdir(given):
        raise UserError(f'config file {name} is a folder: give a YAML file in it')
    raise UserError(f"config file not found: {name} (named recipes: {', '.join(sorted(recipes))})"
                    + _file_suggestion(name, recipes))


def _file_suggestion(name, recipes):
    """': did you mean X?' for a misspelled recipe name, or for a path, the YAML file in its
    folder closest to it (``configs/fti_rt`` -> ``configs/fti_rt.yaml``), or ''."""
    def stem(file_name):
        return re.sub(r'\.ya?ml$', '', file_name)
    folder, base = os.path.split(name)
    choices = {recipe: recipe for recipe in recipes}
    if folder:
        try:
            choices = {stem(entry): os.path.join(folder, entry) for entry in os.listdir(folder)
                       if entry.endswith(('.yaml', '.yml'))}
        except OSError:
            return ''
    close = _closest(stem(base), choices)
    return f': did you mean {choices[close]}?' if close else ''



class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping: PyYAML keeps the
    last, so a second ``train:`` section silently dropped the first one's keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == 'tag:yaml.org,2002:merge':
                continue      # `<<: *shared`: its keys give way to the mapping's own
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, collections.abc.Hashable):
                continue                  # the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f'{key!r} is given twice (line {key_node.start_mark.line + 1})')
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(argv, declare, command=None, about='', elsewhere=None):
    """The fastargs Config of the sections ``declare(cfg)`` declares, filled from argv's files
    and overrides and checked; ``--help`` prints :func:`help_text` and exits. An unknown key
    of a section that ``elsewhere`` maps to other commands names them."""
    cfg = Config()
    declare(cfg)
    wants_help = '--help' in argv or '-h' in argv
    files, overrides = parse_cli([item for item in argv if item not in ('--help', '-h')])
    known = set(cfg.entries)
    given_in = {}             # key -> the file that gave it its value last
    for fname in map(config_file_path, files):
        try:
            with open(fname, encoding='utf-8') as handle:
                content = yaml.load(handle, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            mark = getattr(err, 'problem_mark', None)
            where = f'line {mark.line + 1}: ' if mark else ''
            raise UserError(f'config file {fname} is not valid YAML ({where}'
                            f'{getattr(err, "problem", err)})') from None
        except UnicodeDecodeError:
            raise UserError(_not_utf8(fname)) from None
        except OSError as err:
            raise UserError(f'cannot read config file {fname}: {err.strerror}') from None
        content = {} if content is None else content       # an empty file
        if not isinstance(content, dict):
            raise UserError(f'config file {fname} must hold a mapping of sections')
        bad_key = _non_string_key(content)
        if bad_key is not None:
            raise UserError(f'unknown config key {bad_key!r} in {fname} (keys are names)')
        sections = {path[:-1] for path in known}
        for path, value in _flatten(fix_dict(expand_keys(content))):
            key = '.'.join(path)
            if path in sections:
                raise UserError(f"config section '{key}' in {fname} holds no keys")
            setting = next((path[:end] for end in range(1, len(path)) if path[:end] in known),
                           None)
            if setting:   # `seed: {a: 1}` is a wrong value of train.seed, not a key seed.a
                raise UserError(f"config key '{'.'.join(setting)}' in {fname} must be "
                                f"{cfg.entries[setting].checker.help()}, got a mapping")
            if path not in known:
                raise UserError(f"unknown config key '{key}' in {fname}"
                                + _key_suggestion(key, known, elsewhere))
            if value is None:      # `batch_size:` would otherwise fall back to the default
                raise UserError(f"config key '{key}' in {fname} has no value")
            given_in[path] = fname
        cfg.collect(content)
    for key in overrides:
        if tuple(key.split('.')) not in known:
            raise UserError(f"unknown config key '{key}' on the command line"
                            + _key_suggestion(key, known, elsewhere))
    cfg.collect(overrides)
    for key in overrides:
        given_in.pop(tuple(key.split('.')), None)
    if wants_help:
        sources = [*files, *(['the command line'] if overrides else [])]
        print(help_text(cfg, command, about, sources))
        sys.exit(0)
    check_values(cfg, given_in)
    return cfg


def _not_utf8(fname):
    """Why a config file is not UTF-8: binary (a checkpoint, a .beton), or text in another
    encoding, with the line of its first such byte."""
    with open(fname, 'rb') as handle:
        head = handle.read(1 << 16)
    binary = sum(byte < 32 and byte not in b'\t\n\r' or byte >= 128 for byte in head)
    if binary > len(head) // 10:
        return f'config file {fname} is not a YAML text file (a checkpoint or a .beton?)'
    try:
        head.decode('utf-8')
        where = ''
    except UnicodeDecodeError as err:
        line = head[:err.start].count(b'\n') + 1
        where = f' (line {line}: byte 0x{head[err.start]:02x})'
    return f'config file {fname} is not UTF-8 text{where}: save it as UTF-8'


def _non_string_key(mapping):
    """The first key of ``mapping`` or of a mapping inside it that is not a string, or None."""
    for key, value in mapping.items():
        if not isinstance(key, str):
            return key
        if isinstance(value, dict):
            inner = _non_string_key(value)
            if inner is not None:
                return inner
    return None


def check_values(cfg, given_in=None):
    """UserError naming the key and the value (and the config file that gave it, from
    ``given_in``: key path -> file) for the first value that is missing, of the wrong type
    or out of its range, or for an ``X_min`` above its ``X_max``."""
    values = {}
    given_in = given_in or {}
    for path, param in cfg.entries.items():
        key = '.'.join(path)
        where = f' in {given_in[path]}' if path in given_in else ''
        raw = cfg.content.get(path)
        if param.required and raw is None:
            raise UserError(f"missing required config key '{key}'")
        if param.required and raw == '':      # `--eval.checkpoint=`: a path would be ''
            raise UserError(f"config key '{key}' is required and was given empty")
        if raw == '' and isinstance(param.checker, PathStr) and param.default:
            # `--train.run_dir=`: '' is no folder, and means "none" only where that is the default
            raise UserError(f"config key '{key}' was given empty: give a path, or leave it "
                            f"out for its default {param.default!r}")
        try:
            values[key] = param.checker.check(param.default if raw is None else raw)
        except OutOfRange as err:
            raise UserError(f'{key}{where} must be {err.bounds}, got {err.value}') from None
        except UnsetVariable as err:
            raise err.refusal(f"config key '{key}'{where}", raw) from None
        except Exception:
            raise UserError(f"config key '{key}'{where} must be {param.checker.help()}, "
                            f"got {raw!r}") from None
    for key, low in values.items():
        high_key = key[:-len('_min')] + '_max'
        if key.endswith('_min') and high_key in values and low > values[high_key]:
            raise UserError(f'{key} must be <= {high_key}, got {low} > {values[high_key]}')


def as_dict(cfg):
    """Resolved config as a nested dict (what is saved next to the checkpoints)."""
    out = {}
    for path in cfg.entries:
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = cfg[path]
    return out


class Settings:
    """Attribute access to a resolved config: ``s.data.batch_size``."""

    def __init__(self, tree):
        for key, value in tree.items():
            setattr(self, key, Settings(value) if isinstance(value, dict) else value)

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, Settings) else v) for k, v in vars(self).items()}


def read_settings(argv, declare, command=None, about='', elsewhere=None):
    """The checked settings of the sections ``declare(cfg)`` declares, read from argv
    (``command`` and ``about`` head its ``--help``; ``elsewhere``: see :func:`load_config`)."""
    return Settings(as_dict(load_config(argv, declare, command, about, elsewhere)))


def declared_keys(declare):
    """The keys ``declare(cfg)`` declares, as ``'section.name'``."""
    cfg = Config()
    declare(cfg)
    return {'.'.join(path) for path in cfg.entries}


def declared_sections(declare):
    """The names of the sections ``declare(cfg)`` declares."""
    return {key.split('.', 1)[0] for key in declared_keys(declare)}
