"""The planted bugs of ``make mutate`` still fit the code: each one's lines stand exactly
once where it says, and the tests it names exist (a mutant that no longer applies
would report nothing about the suite)."""

from __future__ import annotations

import pytest
from mutate import MUTANTS, ROOT, Mutant


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_every_mutant_applies_to_the_code_as_it_is(mutant: Mutant) -> None:
    assert (ROOT / mutant.path).read_text().count(mutant.old) == 1
    assert mutant.old != mutant.new
    assert all((ROOT / t.split("::")[0]).is_file() for t in mutant.tests)


def test_mutant_names_are_unique() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
