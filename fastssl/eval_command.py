"""The evaluation command (``python eval.py``, ``fastssl-eval``): dispatches to the command
named first (``fastssl.eval_config.COMMANDS``) with its own settings."""
import importlib
import sys

from fastssl.eval_config import COMMANDS
from fastssl_common.cli import command_name
from fastssl_common.errors import UserError, run_cli


def usage():
    return (f"usage: {command_name('eval.py')} {{{','.join(COMMANDS)}}} "
            f"[--section.key=value ...] (COMMAND --help)")


def help_text():
    width = max(map(len, COMMANDS))
    return '\n'.join([usage(), '', 'commands:'] + [
        f'  {name:{width}s}  {command.about}' for name, command in COMMANDS.items()])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('--help', '-h'):
        print(help_text())
        return 0
    if not argv or argv[0] not in COMMANDS:
        got = ('' if not argv else f'no command before {argv[0]}; ' if argv[0].startswith('-')
               else f"unknown command '{argv[0]}'; ")
        raise UserError(got + usage())
    from fastssl.config_loader import declared_sections, read_settings
    name, command = argv[0], COMMANDS[argv[0]]
    # a key of another command's section ('linear.epochs' given to knn) names that command
    own, elsewhere = declared_sections(command.declare), {}
    for other, declared in COMMANDS.items():
        for section in declared_sections(declared.declare) - own:
            elsewhere.setdefault(section, []).append(f"{command_name('eval.py')} {other}")
    settings = read_settings(argv[1:], command.declare, f"{command_name('eval.py')} {name}",
                             command.about, elsewhere)
    return importlib.import_module(command.module).run(settings)


def cli():
    """Console entry point: ``main`` with one-line errors; SIGTERM stops it as Ctrl-C does
    (what it had begun to write removed), with exit status 143."""
    run_cli(main, stop_on_sigterm=True)
