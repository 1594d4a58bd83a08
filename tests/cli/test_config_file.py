"""The TOML config file, its environment overrides, the example, and `check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maildir_jmap.cli import main
from maildir_jmap.config_file import ConfigError, example, load
from maildir_jmap.demo import create_demo_maildir
from maildir_jmap.users import User, hash_password, save_users_file

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_committed_example_is_current_and_means_the_defaults() -> None:
    committed = (ROOT / "config.example.toml").read_text()
    assert committed == example(), "regenerate: maildir-jmap config-example > config.example.toml"
    assert load(ROOT / "config.example.toml", {}) == load(None, {})


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\nport = 8443\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n'
        '[submission]\nsmarthost = "mail.example.org:587"\ntls = "starttls"\n'
        "[push]\nallow_private_targets = true\n"
    )
    config = load(path, {"MAILDIR_JMAP_SERVER_PORT": "9000", "MAILDIR_JMAP_MAIL_WATCH": "no"})
    assert config.port == 9000  # the environment wins
    assert config.watch is False
    assert config.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert (config.sending.smarthost.host, config.sending.smarthost.port) == (
        "mail.example.org",
        587,
    )
    assert config.sending.smarthost.tls == "starttls"
    assert config.push_allow_private_targets is True


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[server]\nprot = 1\n", {}, "unknown setting server.prot"),
        ('[server]\nport = "x"\n', {}, "server.port must be a number"),
        ("[server]\nport = -1\n", {}, "must not be negative"),
        ('[auth]\nbackend = "ldap"\n', {}, "must be one of users-file, dovecot"),
        ('[server]\ntls_cert = "/x.pem"\n', {}, "go together"),
        ('[submission]\nsmarthost = "nohost"\n', {}, "HOST:PORT"),
        ("server = 1\n", {}, "must be a [section]"),
        ("[server\n", {}, "config.toml"),
        ("", {"MAILDIR_JMAP_SERVER_PORT": "eighty"}, "MAILDIR_JMAP_SERVER_PORT"),
        ("", {"MAILDIR_JMAP_SERVR_PORT": "80"}, "unknown environment setting"),
    ],
)
def test_mistakes_are_named(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load(path, environ)


def test_check_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = create_demo_maildir(tmp_path / "good", user="alice")
    users = tmp_path / "users.toml"
    save_users_file(
        users,
        {
            "alice": User("alice", good, hash_password("pw")),
            "bob": User("bob", tmp_path / "gone", hash_password("pw")),
        },
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\n[auth]\nusers_file = "{users}"\n'
        '[mail]\nsieve_dir = "{nope}/sieve"\n'
    )
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"ok       alice: Maildir {good}" in out
    assert f"PROBLEM  bob: Maildir {tmp_path / 'gone'} does not exist" in out
    assert "PROBLEM  sieve path '{nope}/sieve'" in out


def test_serve_refuses_flags_next_to_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    assert main(["serve", "--config", str(config), "--port", "9"]) == 2
    assert "--config replaces --port" in capsys.readouterr().err


def test_config_example_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-example"]) == 0
    assert capsys.readouterr().out == example()


def test_journal_lines_carry_their_priority() -> None:
    import logging

    from maildir_jmap.logs import JournalFormatter

    formatter = JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("mj", logging.ERROR, __file__, 1, "two\nlines", None, None)
    assert formatter.format(record) == "<3>mj: two\n<3>lines"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[server]\nport = 99999\n", "server.port 99999 is not a port"),
        ('[server]\npublic_url = "mail.example.org"\n', "server.public_url"),
        ('[server]\npublic_url = "https://mail.example.org/"\n', "must not end in '/'"),
        ('[server]\nmetrics_from = ["10.0.0.0/33"]\n', "server.metrics_from: '10.0.0.0/33'"),
        ('[server]\ntrusted_proxies = ["proxy"]\n', "server.trusted_proxies: 'proxy'"),
        ("[mail]\nrescan_interval = 0\n", "mail.rescan_interval must be more than 0"),
        ("[mail]\nidle_close = -1\n", "mail.idle_close"),
        ("[auth]\nmax_failures_per_user = 0\n", "auth.max_failures_per_user must be 1"),
    ],
)
def test_out_of_range_values_are_refused_with_the_key_named(
    tmp_path: Path, toml: str, named: str
) -> None:
    """Issue 17: validated once, in one place, each problem naming its key."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load(path, environ={})


def test_check_passes_a_machine_without_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: no smarthost configured and nothing on port 25 is "sending is
    off", not a problem; a configured smarthost that does not answer is one."""
    from tests.ports import free_port

    good = create_demo_maildir(tmp_path / "good", user="alice")
    users = tmp_path / "users.toml"
    save_users_file(users, {"alice": User("alice", good, hash_password("pw"))})
    base = f'[server]\nstate_dir = "{tmp_path / "state"}"\n[auth]\nusers_file = "{users}"\n'
    config = tmp_path / "config.toml"
    config.write_text(base)
    from maildir_jmap.check import check
    from maildir_jmap.config_file import load as load_config

    results = list(check(load_config(config, environ={})))
    sending = [m for ok, m in results if "sending is off" in m or "smarthost" in m]
    assert sending, results
    if any("sending is off" in m for m in sending):
        assert all(ok for ok, m in results if "sending is off" in m)
    config.write_text(base + f'[submission]\nsmarthost = "127.0.0.1:{free_port()}"\n')
    assert main(["check", "--config", str(config)]) == 1
    assert "PROBLEM  SMTP smarthost 127.0.0.1:" in capsys.readouterr().out


def test_environment_settings_apply_without_a_config_file_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 17: MAILDIR_JMAP_<SECTION>_<KEY> used to need --config; now flags,
    environment and file go through one schema: defaults < file < env < flags."""
    from maildir_jmap.cli import build_parser
    from maildir_jmap.serve import settings

    monkeypatch.setenv("MAILDIR_JMAP_SERVER_PORT", "8443")
    monkeypatch.setenv("MAILDIR_JMAP_AUTH_MAX_FAILURES_PER_ADDRESS", "7")
    monkeypatch.setenv("MAILDIR_JMAP_SERVER_STATE_DIR", str(tmp_path / "from-env"))
    config = settings(build_parser().parse_args(["serve"]))
    assert (config.port, config.max_failures_per_address) == (8443, 7)
    assert config.state_dir == tmp_path / "from-env"
    flagged = settings(build_parser().parse_args(["serve", "--port", "9000", "--layout", "fs"]))
    assert (flagged.port, flagged.layout, flagged.max_failures_per_address) == (9000, "fs", 7)
