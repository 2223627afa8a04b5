"""The command-line parser every CLI of the project uses (writers, ``loaders.verify``, the
benchmarks): argparse whose usage errors are one line through
:func:`fastssl_common.errors.run_cli`, and which expands ``~`` after ``--option=`` as the
shell does after ``--option``."""
import argparse
import os
import sys

from .errors import UserError


def command_name(script):
    """The command as the user typed it: the console script's name (``fastssl-verify``) when
    launched through one, ``script`` (``write_images.py``) otherwise."""
    launched = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
    return launched if launched.startswith('fastssl-') else script


class ArgParser(argparse.ArgumentParser):
    """argparse, except that a usage error becomes a UserError (one line, exit 2 via run_cli),
    and the usage line names the console script when one was run."""

    def __init__(self, *args, prog=None, **kwargs):
        super().__init__(*args, prog=command_name(prog), **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self.given = expand_home(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(self.given, namespace)

    def error(self, message):
        raise UserError(message + self.dash_hint())

    def dash_hint(self):
        """'' or why a value like ``-x.beton`` or ``-1/2`` went missing: argparse reads it as
        an unknown option and says only that an argument is missing or unrecognized. After an
        option that takes a value the hint is ``--option=VALUE``, else ``./-x.beton``."""
        given = getattr(self, 'given', ())
        for previous, arg in zip((None, *given), given):
            if arg == '--':
                break
            named_like_a_file = arg.startswith('-') and not arg.startswith('--') and any(
                mark in arg[2:] for mark in ('.', os.sep))
            if (named_like_a_file and arg not in self._option_string_actions
                    and not self._negative_number_matcher.match(arg)):
                taker = self._option_string_actions.get(previous)
                if taker is not None and taker.nargs != 0:
                    return f' ({arg} was read as an option: write {previous}={arg})'
                return (f' ({arg} was read as an option: write ./{arg} for a file whose name '
                        f'starts with -)')
        return ''


def expand_home(args):
    """``args`` with a leading ``~`` expanded in ``--option=~/x`` as the shell expands it in
    ``--option ~/x`` (it leaves it after ``=``: ``--out=~/sheets`` made a folder named ``~``
    in the working directory). Arguments after ``--`` are left as given."""
    expanded = []
    for i, arg in enumerate(args):
        if arg == '--':
            return expanded + args[i:]
        option, equals, value = arg.partition('=')
        if option.startswith('--') and equals and value.startswith('~'):
            arg = f'{option}={os.path.expanduser(value)}'
        expanded.append(arg)
    return expanded
