"""Which backend serves a user (issue 20, server/routing.py): pure logic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.config import Config, problems
from maildir_jmap.server.routing import Routing, host_literal, parse_backend

BACKENDS = ("10.0.0.11:8080", "10.0.0.12:8080", "10.0.0.13:8080")
LOGINS = [f"user{n}@example.org" for n in range(600)]


def test_the_hash_spreads_users_and_adding_a_backend_moves_only_its_gains() -> None:
    three = Routing(BACKENDS, 8080)
    before = {login: three.hashed(login) for login in LOGINS}
    counts = {b: list(before.values()).count(b) for b in BACKENDS}
    assert all(150 < n < 250 for n in counts.values()), counts
    four = Routing((*BACKENDS, "10.0.0.14:8080"), 8080)
    after = {login: four.hashed(login) for login in LOGINS}
    moved = [login for login in LOGINS if after[login] != before[login]]
    assert moved
    assert all(after[login] == "10.0.0.14:8080" for login in moved)  # nobody else moves
    assert Routing(tuple(reversed(BACKENDS)), 8080).hashed(LOGINS[0]) == before[LOGINS[0]]


def test_the_passdb_pins_a_user_and_a_bad_host_falls_back_to_the_hash() -> None:
    routing = Routing(BACKENDS, 8081)
    assert routing.backend_for("a", {"host": "10.0.0.99"}) == "10.0.0.99:8081"
    assert routing.backend_for("a", {"host": "b2.example.org", "port": "9000"}) == (
        "b2.example.org:9000"
    )
    assert routing.backend_for("a", {"host": "fd00::2"}) == "[fd00::2]:8081"
    for hostile in ({"host": "evil;/x"}, {"host": "a b"}, {"host": "h", "port": "99999"}):
        assert routing.backend_for("a", hostile) == routing.hashed("a")
    assert Routing((), 8080).backend_for("a", {}) is None


@given(st.text(max_size=40))
def test_anything_accepted_as_a_host_is_safe_in_proxy_pass(text: str) -> None:
    literal = host_literal(text)
    if literal is not None:
        assert all(c.isalnum() or c in ".-:[]" for c in literal)
        assert parse_backend(f"{literal}:80") == f"{literal}:80"


def test_malformed_backends_are_named_by_their_setting() -> None:
    config = Config(route_backends=("10.0.0.1:8080", "nope", "h:0"), route_port=0)
    found = problems(config)
    assert "route.backends: 'nope' is not HOST:PORT" in found
    assert "route.backends: 'h:0' is not HOST:PORT" in found
    assert "route.port 0 is not a port (1-65535)" in found
