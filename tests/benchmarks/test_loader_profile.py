"""benchmarks/loader_profile.py: the printed profile, from the stored results of real runs."""
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_profile_says_when_its_stages_took_more_than_the_loader(capsys):
    """Two real runs on the AMD EPYC VM: in the second the machine slowed down while the
    stages were profiled (the loader's overheads came out negative), in the first it did not."""
    from benchmarks.loader_profile import print_profile

    for name, disturbed in (('loader_epyc_recheck_run2_2core_cpu.json', True),
                            ('loader_epyc_recheck_2core_cpu.json', False)):
        with open(os.path.join(REPO, 'benchmarks', 'results', name)) as file:
            result = json.load(file)
        profile = result['profile']
        print_profile(profile, profile['loader_ms'], result['config']['workers'])
        notes = [line for line in capsys.readouterr().out.splitlines()
                 if line.startswith('note: the stages alone took more CPU time')]
        assert len(notes) == int(disturbed), (name, notes)
        if disturbed:
            assert '((a) by 0.001 ms, (b) by 0.011 ms)' in notes[0], notes[0]
