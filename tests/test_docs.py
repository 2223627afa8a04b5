"""The user docs' cross-references hold: every relative link (README.md, docs/*.md) reaches a
file and, with ``#anchor``, one of its headings; every benchmark results file the docs cite
is in ``benchmarks/results/``."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
LINK = re.compile(r'\]\(([^)\s]+)\)')
# results files are named by machine: ..._2core_cpu.json, ..._h200.json, ..._h200_node.json;
# "[_run2]" in a name stands for the file with and the file without it
RESULTS_NAME = re.compile(r'[A-Za-z][\w\[\]]*(?:2core_cpu|h200|h200_node)\.json')


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation other than '-' and '_'
    dropped, spaces to hyphens."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def anchors(path):
    text = re.sub(r'```.*?```', '', path.read_text(), flags=re.S)
    return {github_anchor(h) for h in re.findall(r'^#+ (.+)$', text, re.M)}


def test_github_anchor_follows_githubs_rules():
    assert github_anchor('FTI+RT loader') == 'ftirt-loader'
    assert github_anchor('Writing on many machines: `--shard` and `merge_betons.py`') == \
        'writing-on-many-machines---shard-and-merge_betonspy'


@pytest.mark.parametrize('doc', DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_heading(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r'[a-z]+:', target):           # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(f'{target}: no such file')
        elif anchor and linked.suffix == '.md' and anchor not in anchors(linked):
            broken.append(f'{target}: no heading with that anchor')
    assert not broken, broken


def test_every_cited_results_file_exists():
    results = ROOT / 'benchmarks' / 'results'
    cited = set()
    for doc in DOCS:
        for name in RESULTS_NAME.findall(doc.read_text()):
            cited |= {name.replace('[_run2]', ''), name.replace('[_run2]', '_run2')}
    assert cited, 'no results file cited: the pattern no longer matches the docs'
    missing = sorted(name for name in cited if not (results / name).exists())
    assert not missing, missing
