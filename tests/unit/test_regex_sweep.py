"""Every regex in the package is linear on adversarial input (issue 27, "every regex ... passes").

Each module-level pattern of ``search/`` (and a sample of each pattern built at run time from
escaped literals) runs on generated pathological inputs (see ``tests/regex_sweep.py``) at 10k characters, and its slowest cases again at 100k: the time
may grow at most about linearly (10x; 30x allowed for a loaded machine, a quadratic pattern
grows 100x and a cubic one never finishes). A child process runs the cases, each under a
deadline, so a catastrophic pattern fails the test instead of hanging it.
"""

from __future__ import annotations

from collections import defaultdict

from regex_sweep import BUILT_AT_RUN_TIME, cases_for, inline_patterns, job, module_patterns, run_jobs, run_time_patterns

SMALL, LARGE = 10_000, 100_000
#: A linear scan of 10k characters takes well under 5 ms of CPU; a quadratic one about a second.
SMALL_SECONDS = 0.1
DEADLINE = 3.0  # wall-clock seconds a case may take before it counts as hung
GROWTH = 30
NOISE_SECONDS = 0.02  # below this at 100k, any ratio is timer noise
SLOWEST_PER_PATTERN = 3


def test_every_regex_is_a_module_constant_the_sweep_can_see():
    inline = [place for place in inline_patterns() if place.split(":")[0] not in BUILT_AT_RUN_TIME]
    assert not inline, f"compile these as module-level constants, so the sweep tests them: {inline}"


def test_every_regex_grows_at_most_linearly():
    patterns = module_patterns() + run_time_patterns()
    assert len(patterns) >= 20, patterns
    cases = [case for module, name in patterns for case in cases_for(module, name)]
    small = run_jobs([job(case, SMALL) for case in cases], deadline=DEADLINE)
    slow = [f"{cases[index].label}: {'hung' if seconds is None else f'{seconds:.3f} s'} at {SMALL:,} characters"
            for index, seconds in small.items() if seconds is None or seconds > SMALL_SECONDS]
    assert not slow, "\n".join(slow)
    by_pattern = defaultdict(list)
    for index, seconds in small.items():
        by_pattern[(cases[index].module, cases[index].name)].append((seconds, cases[index]))
    slowest = [(seconds, case) for timed in by_pattern.values()
               for seconds, case in sorted(timed, key=lambda item: -item[0])[:SLOWEST_PER_PATTERN]]
    large = run_jobs([job(case, LARGE, repeats=3) for _, case in slowest], deadline=DEADLINE)
    grown = [f"{case.label}: {small_seconds * 1000:.2f} ms at {SMALL:,}, "
             f"{'over the deadline' if large[index] is None else f'{large[index] * 1000:.1f} ms'} at {LARGE:,}"
             for index, (small_seconds, case) in enumerate(slowest) if index in large
             and (large[index] is None or (large[index] > NOISE_SECONDS and large[index] > GROWTH * small_seconds))]
    assert not grown, "\n".join(grown)
