"""Print pyproject's dependencies one per line (``--except NAME`` / ``--only NAME``).

The Makefile installs ffcv separately (without its opencv-python dependency), so it needs the
list split; pyproject.toml stays the single place where dependencies are declared.
"""
import argparse
import re
import tomllib
from pathlib import Path

parser = argparse.ArgumentParser()
group = parser.add_mutually_exclusive_group()
group.add_argument('--except', dest='excluded', default=None)
group.add_argument('--only', default=None)
args = parser.parse_args()
pyproject = Path(__file__).resolve().parent.parent / 'pyproject.toml'
deps = tomllib.loads(pyproject.read_text())['project']['dependencies']


def name(requirement):
    return re.split(r'[<>=!~\[ ;]', requirement, maxsplit=1)[0].lower()


for dep in deps:
    if args.only and name(dep) != args.only:
        continue
    if args.excluded and name(dep) == args.excluded:
        continue
    print(dep)
