"""Training trajectories stay what they were: 20 iterations of each case against tests/data/golden.json.

A change meant to keep training identical (a refactor of the schemes) must pass unchanged; a
change meant to alter training rewrites the cases it moves (``python -m tests.golden --record``).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.golden import CASES, CHAOTIC_CASES, CHAOTIC_TOLERANCE, GOLDEN_FILE, compare, run_case

# The values were recorded with torch's vectorized x86 CPU kernels, and AVX2 and AVX512 give the same
# values (checked with ATEN_CPU_CAPABILITY=avx2); the unvectorized fallback (ATEN_CPU_CAPABILITY=default,
# or another architecture) draws other float32 random numbers for weights and noise.
RECORDED_KERNELS = ("AVX2", "AVX512")


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in RECORDED_KERNELS,
    reason="trajectories recorded with x86 AVX2/AVX512 CPU kernels; this CPU draws other random numbers",
)
@pytest.mark.parametrize("name", list(CASES))
def test_twenty_iterations_match_the_recorded_trajectory(tmp_path, name):
    expected = json.loads(GOLDEN_FILE.read_text())[name]
    problems = compare(expected, run_case(name, tmp_path), exact_iterations=CHAOTIC_CASES.get(name))
    assert not problems, "\n".join(problems[:10])


def test_compare_sees_a_changed_loss_and_weight():
    base = {"losses": [{"train/d_loss": 1.0}], "weights": {"w": [1.0, 2.0, 3.0]}}
    moved = {"losses": [{"train/d_loss": 1.0 + 1e-5}], "weights": {"w": [1.0, 2.0, 3.0 + 1e-5]}}
    assert compare(base, base) == []
    assert len(compare(base, moved)) == 2


def test_a_chaotic_case_is_exact_early_and_loose_late():
    base = {"losses": [{"l": 1.0}, {"l": 1.0}], "weights": {"w": [1.0]}}
    late = {
        "losses": [{"l": 1.0}, {"l": 1.0 + CHAOTIC_TOLERANCE / 2}],
        "weights": {"w": [1.0 + CHAOTIC_TOLERANCE / 2]},
    }
    early = {"losses": [{"l": 1.0 + 1e-5}, {"l": 1.0}], "weights": {"w": [1.0]}}
    assert compare(base, late, exact_iterations=1) == []
    assert len(compare(base, late)) == 2  # a case not named chaotic stays exact throughout
    assert len(compare(base, early, exact_iterations=1)) == 1
    far = {"losses": base["losses"], "weights": {"w": [1.0 + 3 * CHAOTIC_TOLERANCE]}}
    assert len(compare(base, far, exact_iterations=1)) == 1
