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
from fastssl.eval_command import main
from fastssl_common.errors import run_cli

if __name__ == '__main__':
    # SIGTERM (a scheduler's time limit, kill) stops as Ctrl-C does: outputs cleaned up
    run_cli(main, stop_on_sigterm=True)
