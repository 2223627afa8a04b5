"""The command-line parser every CLI of the project uses (writers, ``loaders.verify``, the
benchmarks): argparse whose usage errors are one line through
:func:`fastssl_common.errors.run_cli`."""
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

    def error(self, message):
        raise UserError(message)
