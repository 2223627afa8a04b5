"""The command-line parser every CLI of the project uses (writers, ``loaders.verify``, the
benchmarks): argparse whose usage errors are one line through
:func:`fastssl_common.errors.run_cli`."""
import argparse

from .errors import UserError


class ArgParser(argparse.ArgumentParser):
    """argparse, except that a usage error becomes a UserError (one line, exit 2 via run_cli)."""

    def error(self, message):
        raise UserError(message)
