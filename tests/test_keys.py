"""The exact Redis key strings: changing one orphans data already stored."""

from verification import keys


def test_key_names_are_pinned():
    assert keys.state("abc") == "verif:{abc}:state"
    assert keys.phone("+14155550100") == "verif:phone:+14155550100"
    assert keys.inbound("SM123") == "verif:inbound:SM123"
    assert keys.DEADLINES == "verif:deadlines"
    assert keys.CREATED == "verif:created"

