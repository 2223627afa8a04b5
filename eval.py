"""Evaluate backbones: ``python eval.py COMMAND [--config-file F.yaml] [--section.key=value]``.

``python eval.py --help`` lists the commands, ``python eval.py COMMAND --help`` the settings
of one (fastargs sections, as in train.py).

Registering a command: write a module exposing ``run(settings)``, which receives the resolved
``fastssl.config_loader.Settings`` of the command's sections (``settings.<section>.<key>``),
does the work, prints its result and returns the exit code; bad input raises
``fastssl_common.errors.UserError`` (one ``error:`` line, exit 2). Declare its fastargs
sections in ``fastssl/eval_config.py`` (its own section named after the command, plus shared
ones such as ``eval``) and add one line to ``COMMANDS`` there.
"""
import importlib
import sys

from fastssl.eval_config import COMMANDS
from fastssl_common.errors import UserError, run_cli


def usage():
    return f"usage: eval.py {{{','.join(COMMANDS)}}} [--section.key=value ...] (COMMAND --help)"


def help_text():
    width = max(map(len, COMMANDS))
    return '\n'.join([usage(), '', 'commands:'] + [
        f'  {name:{width}s}  {command.about}' for name, command in COMMANDS.items()])


def main(argv):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('--help', '-h'):
        print(help_text())
        return 0
    if not argv or argv[0] not in COMMANDS:
        got = f"unknown command '{argv[0]}'; " if argv else ''
        raise UserError(got + usage())
    from fastssl.config_loader import read_settings
    name, command = argv[0], COMMANDS[argv[0]]
    settings = read_settings(argv[1:], command.declare, f'eval.py {name}', command.about)
    return importlib.import_module(command.module).run(settings)


if __name__ == '__main__':
    run_cli(main)
