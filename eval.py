"""Evaluate backbones: ``python eval.py COMMAND [--config-file F.yaml] [--section.key=value]``.

``python eval.py --help`` lists the commands, ``python eval.py COMMAND --help`` the settings
of one (fastargs sections, as in train.py).

Registering a command: write a module exposing

* ``declare(cfg)``: declares the command's fastargs ``Section``\\ s on the Config ``cfg``
  (its own section named after the command, plus shared ones such as ``eval`` from
  ``fastssl.evaluation.declare_eval_section``);
* ``run(settings)``: receives the resolved ``fastssl.config.Settings`` of those sections
  (``settings.<section>.<key>``), does the work, prints its result and returns the exit code;
  bad input raises ``fastssl_common.errors.UserError`` (one ``error:`` line, exit 2);

then add one line ``'name': 'package.module'`` to ``COMMANDS``. A module is imported only when
its command runs, so one command's heavy imports never slow down another.
"""
import importlib
import sys

from fastssl_common.errors import UserError, run_cli

COMMANDS = {
    'knn': 'fastssl.knn_command',
    'linear': 'fastssl.linear_command',
    'export': 'fastssl.export_command',
    'invariance': 'fastssl.invariance_command',
}


def usage():
    return f"usage: eval.py {{{','.join(COMMANDS)}}} [--section.key=value ...] (COMMAND --help)"


def main(argv):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('--help', '-h'):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        got = f"unknown command '{argv[0]}'; " if argv else ''
        raise UserError(got + usage())
    from fastssl.config import Settings, as_dict, load_config
    command = importlib.import_module(COMMANDS[argv[0]])
    settings = Settings(as_dict(load_config(argv[1:], declare=command.declare)))
    return command.run(settings)


if __name__ == '__main__':
    run_cli(main)
