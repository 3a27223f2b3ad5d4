"""Hostile input to the pure parts: every number, period and day in ASCII digits, catalogs whose
shape or amounts cannot be computed, token scopes, the API's per-token limits. Each is refused
with one line naming what is wrong (the live reproductions: tests/integration/test_hardening.py)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tallyflow.cli import main
from tallyflow.core import catalog, periods
from tallyflow.errors import UserError
from tallyflow.serve import limits, tokens

ARABIC = "\u0662\u0660\u0662\u0666-11"
CHARGE = "meters:\n- {id: m, event_type: api_call, aggregation: count}\nplans:\n- id: p\n  version: 1\n"
CHARGE += "  currency: USD\n  effective_from: '2026-01-01T00:00:00Z'\n  charges:\n  - meter: m\n"


@pytest.mark.parametrize(
    "text", [ARABIC, "\uff12\uff10\uff12\uff16-11", "2026-1\u0661", "0001-01", "9999-12", " 2026-11"]
)
def test_a_period_is_ascii_digits_within_the_date_range(text):
    with pytest.raises(UserError):
        periods.parse_month(text)
    assert periods.parse_month("2026-11") == "2026-11"


@pytest.mark.parametrize(
    "text", ["\u0662\u0660\u0662\u0666-11-01", "20261101", "2026-W45-1", "0001-01-01", "2026-02-30"]
)
def test_a_day_is_one_spelling_in_ascii_digits(text):
    with pytest.raises(UserError):
        periods.parse_day(text)


@pytest.mark.parametrize("text", ["\u0663", "1e100000", "1e-999999999", "NaN", "Infinity", "1_000", "0x10", "9" * 101])
def test_a_decimal_is_plain_ascii(text):
    with pytest.raises(ArithmeticError):
        periods.parse_decimal(text)
    assert periods.parse_decimal("-1.5e3") == Decimal("-1500")


@pytest.mark.parametrize(
    "args", [["invoice", "--period", ARABIC], ["produce", "--generate", "\u0661\u0660"], ["reconcile", "--period", "1"]]
)
def test_cli_numbers_in_other_scripts_are_a_usage_error(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "ASCII digits" in err


def _refused(tmp_path, text: str, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(UserError) as e:
        catalog.load(path)
    assert time.monotonic() - started < 5
    return str(e.value)


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    message = _refused(tmp_path, "\n".join(levels) + "\nmeters: []\nplans: []\n")
    assert "aliases are expanded" in message and len(message.splitlines()) == 1


def test_a_small_alias_still_works(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CHARGE.replace("  charges:", "  charges: &c") + "    model: per_unit\n    unit_price: '1'\n")
    assert catalog.load(path).plans[0].charges


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("meters: " + "[" * 10_000 + "]" * 10_000 + "\nplans: []\n", "c.yaml"),
        ('{"meters": ' + "[" * 100_000 + "]" * 100_000 + ', "plans": []}', "c.json"),
        ("meters: []\nplans:\n- id: p\n  version: " + "1" * 5000 + "\n", "c.yaml"),
    ],
)
def test_deep_or_huge_documents_are_one_line(tmp_path, text, name):
    assert len(_refused(tmp_path, text, name).splitlines()) == 1


@pytest.mark.parametrize(
    ("charge", "field"),
    [
        ("    model: per_unit\n    unit_price: '1e100000'\n", "unit_price"),
        ("    model: per_unit\n    unit_price: '100000000000000000000000000'\n", "unit_price"),
        ("    model: per_unit\n    unit_price: '0.0000000000001'\n", "unit_price"),
        ("    model: per_unit\n    unit_price: '\u0663'\n", "unit_price"),
        ("    model: package\n    package_size: '1e-999999999'\n    package_price: '1'\n", "package_size"),
        (
            "    model: graduated\n    tiers:\n    - {up_to: '1e999999999', unit_price: '1'}\n"
            "    - {unit_price: '1'}\n",
            "tiers[0].up_to",
        ),
    ],
)
def test_amounts_that_cannot_be_computed_are_refused_naming_the_field(tmp_path, charge, field):
    message = _refused(tmp_path, CHARGE + charge)
    assert f"plan p v1, charge m: {field}" in message


def test_a_customer_token_never_has_the_admin_scope(tmp_path):
    import dataclasses

    from tallyflow.settings import Settings

    settings = dataclasses.replace(Settings.from_env(), home=tmp_path)
    for customer, known in (("*", None), ("*", {"*"}), ("c\u202e1", None), ("nobody", {"c1"})):
        with pytest.raises(UserError):
            tokens.create(settings, customer, known=known)
    made = tokens.create(settings, "c1", known={"c1"})
    assert tokens.resolve(settings, made["token"]).scope == "c1"
    store = tokens._read(settings)
    for entry in store.values():
        entry["customer"] = "*"  # a store edited by hand
    tokens._write(settings, store)
    assert tokens.resolve(settings, made["token"]) is None


def test_a_token_s_rate_and_queries_in_flight_are_bounded():
    import threading

    bounded = limits.TokenLimits(rate=5, queries=1)
    bounded.WAIT_SECONDS = 0.3
    for _ in range(10):  # the burst: twice the rate
        bounded.admit("t1")
    with pytest.raises(limits.Limited) as e:
        bounded.admit("t1")
    assert e.value.retry_after >= 1
    bounded.admit("t2")  # another token has its own bucket
    token = limits.current_token.set("t1")
    try:
        with bounded.query():  # one running: the next waits its turn, then gives up
            started = time.monotonic()
            with pytest.raises(limits.Limited), bounded.query():
                pass
            assert time.monotonic() - started >= 0.3
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            limits.current_token.set("t1")
            with bounded.query():
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(5)
        threading.Timer(0.1, release.set).start()
        with bounded.query():  # waited for the holder's turn to end
            pass
        holder.join()
    finally:
        limits.current_token.reset(token)


def test_a_port_and_a_quantity_are_ascii_digits():
    from tallyflow.billing import quote
    from tallyflow.serve import server

    with pytest.raises(UserError):
        server.parse_address("127.0.0.1:\u0668\u0669\u0660\u0660")
    with pytest.raises(UserError, match="ASCII"):
        quote.quote(None, "p", "m", "\u0663")  # refused before the catalog is read
