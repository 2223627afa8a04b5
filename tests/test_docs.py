"""The user docs' cross-references hold: every relative link (README.md, docs/*.md) reaches a
file and, with ``#anchor``, one of its headings; every benchmark results file the docs cite
is in ``benchmarks/results/``; every flag and config key the docs' commands give is one their
program accepts."""
import functools
import importlib
import importlib.metadata
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


# a program named in the docs' code: a writer, a benchmark, loaders.verify, train.py, eval.py
# [COMMAND] or a console entry point; flags are read from it to the next program or the end
# of its shell command
SCRIPTS = {entry.name: entry.value
           for entry in importlib.metadata.distribution('fastssl').entry_points
           if entry.group == 'console_scripts'}
PROGRAM = re.compile(
    r'(?:writers/)?(write_images|write_video_frames|write_video_pairs|merge_betons'
    r'|inspect_pairs|render_invariance_sets)\.py|benchmarks[./](\w+)(?:\.py)?|(loaders\.verify)'
    r'|(train)\.py|(eval)\.py(?: +([a-z]+))?|(' + '|'.join(map(re.escape, SCRIPTS)) + r')(?![\w-])')
FLAG = re.compile(r'(?<![\w-])--[a-z][\w.-]*')


def code_fragments(text):
    """Fenced blocks (continued lines joined) and inline code spans."""
    blocks = re.findall(r'```[^\n]*\n(.*?)```', text, re.S)
    prose = re.sub(r'```.*?```', '', text, flags=re.S)
    return [re.sub(r'\\\n\s*', ' ', b) for b in blocks] + re.findall(r'`([^`\n]+)`', prose)


def flag_uses(text):
    """``(program, flag)`` for every flag the code in ``text`` gives a program; a program is
    ``('module', name)`` (an argparse CLI), ``('train', None)`` or ``('eval', COMMAND)``."""
    for fragment in code_fragments(text):
        for line in fragment.splitlines():
            if line.lstrip().startswith('#'):
                continue
            line = re.split(r' #|\||;|&&', line)[0]
            found = list(PROGRAM.finditer(line))
            for match, after in zip(found, found[1:] + [None]):
                segment = line[match.end():after.start() if after else len(line)]
                for flag in FLAG.findall(segment):
                    yield _program(match), flag.split('=')[0]


def _program(match):
    writer, benchmark, verify, train, eval_py, command, console = match.groups()
    if console:
        module = SCRIPTS[console].split(':')[0]
        return {'fastssl.train_command': ('train', None),
                'fastssl.eval_command': ('eval', None)}.get(module, ('module', module))
    if writer:
        return 'module', f'writers.{writer}'
    if benchmark:
        return 'module', f'benchmarks.{benchmark}'
    if verify:
        return 'module', verify
    return ('train', None) if train else ('eval', command)


@functools.lru_cache(maxsize=None)
def accepted_flags(program):
    from fastssl.config import declare_sections
    from fastssl.config_loader import declared_keys
    from fastssl.eval_config import COMMANDS

    def keys(declare):
        return {f'--{key}' for key in declared_keys(declare)} | {'--config-file', '--help'}
    kind, name = program
    if kind == 'train':
        return keys(declare_sections)
    if kind == 'eval':     # eval.py with no command, or a placeholder: any command's keys
        return set().union(*(keys(c.declare) for n, c in COMMANDS.items()
                             if name not in COMMANDS or n == name))
    return set(importlib.import_module(name).build_parser()._option_string_actions)


def test_flag_uses_reads_programs_and_their_flags():
    text = ('```bash\npython writers/write_images.py SRC OUT \\\n    --workers 4  # --not-this\n'
            'torchrun --nproc_per_node=8 train.py --config-file c.yaml --train.epochs=3\n```\n'
            'and `eval.py knn --knn.k=20 | head` or `fastssl-verify x.beton --quiet`.')
    assert list(flag_uses(text)) == [
        (('module', 'writers.write_images'), '--workers'), (('train', None), '--config-file'),
        (('train', None), '--train.epochs'), (('eval', 'knn'), '--knn.k'),
        (('module', 'loaders.verify'), '--quiet')]


def test_every_flag_the_docs_give_a_program_is_one_it_accepts():
    uses = {(doc.relative_to(ROOT).as_posix(), program, flag)
            for doc in DOCS for program, flag in flag_uses(doc.read_text())}
    programs = {program for _, program, _ in uses}
    assert {('train', None), ('eval', 'knn'), ('module', 'writers.write_video_pairs'),
            ('module', 'benchmarks.loader')} <= programs, 'the pattern no longer finds commands'
    unknown = sorted((doc, program, flag) for doc, program, flag in uses
                     if flag not in accepted_flags(program))
    assert not unknown, unknown


def test_every_config_key_the_docs_name_is_declared():
    """``train.epochs``, ``logging.knn_train_path``, ``invariance.reference`` in the docs'
    code are keys of train.py or eval.py (not file names such as ``train.py``, nor Python
    such as ``model.state_dict()`` or a pattern ``augment.region_*``)."""
    from fastssl.config import declare_sections
    from fastssl.config_loader import declared_keys
    from fastssl.eval_config import COMMANDS

    declared = set().union(*map(declared_keys, [declare_sections, *(
        command.declare for command in COMMANDS.values())]))
    sections = sorted({key.split('.')[0] for key in declared})
    key = re.compile(rf"(?<![\w./-])(?:{'|'.join(sections)})\.[a-z_]+\b(?![(*])")
    files = ('py', 'json', 'beton', 'yaml', 'pt', 'pth', 'png')
    named = {(doc.relative_to(ROOT).as_posix(), match.group())
             for doc in DOCS for fragment in code_fragments(doc.read_text())
             for match in key.finditer(fragment) if match.group().split('.')[1] not in files}
    assert len(named) > 50, 'the pattern no longer finds the keys'
    unknown = sorted((doc, name) for doc, name in named if name not in declared)
    assert not unknown, unknown
