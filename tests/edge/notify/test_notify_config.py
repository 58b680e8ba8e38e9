"""``[notify]`` in site.toml: every mistake listed by ``doorkeep check``, secrets only in
private files, and a password that never reaches a log line or an error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import SiteConfigError, load_site_config
from edge.config.notify import ALARM_KINDS

BASE = """
[site]
id = "s1"
timezone = "Europe/Berlin"
data_dir = "data"
"""
PASSWORD = "hunter2-correct-horse"


def write(tmp_path: Path, notify: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(BASE + notify)
    return path


def test_a_good_section_is_read_with_its_defaults(tmp_path: Path) -> None:
    secret = tmp_path / "data" / "keys" / "smtp.password"
    secret.parent.mkdir(parents=True)
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    config = load_site_config(
        write(
            tmp_path,
            '[notify]\nemail_to = ["pm@example.org"]\n'
            '[notify.smtp]\nhost = "smtp.example.org"\nusername = "dk"\nfrom = "dk@example.org"\n'
            '[notify.webhook]\nurl = "https://hooks.example.org/x"\n',
        )
    )
    notify = config.notify
    assert notify is not None and notify.smtp is not None and notify.webhook is not None
    assert notify.smtp.port == 587 and notify.smtp.security == "starttls"
    assert notify.smtp.password() == PASSWORD
    assert notify.alarms == frozenset(ALARM_KINDS) and notify.max_per_minute == 6
    assert notify.webhook.secret_file == tmp_path / "data" / "keys" / "webhook.secret"
    assert PASSWORD not in repr(config)


def test_every_mistake_is_listed_with_what_to_change(tmp_path: Path) -> None:
    secret = tmp_path / "data" / "keys" / "smtp.password"
    secret.parent.mkdir(parents=True)
    secret.write_text(PASSWORD)
    secret.chmod(0o644)
    path = write(
        tmp_path,
        '[notify]\nemail_to = ["nobody"]\nalarms = ["door_ajar"]\nmax_per_minute = 0\n'
        "colour = 1\n"
        '[notify.smtp]\nhost = "smtp.example.org"\nsecurity = "none"\nusername = "dk"\n'
        'from = "dk"\n'
        '[notify.webhook]\nurl = "http://hooks.example.org/x"\n',
    )
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path)
    text = "\n".join(caught.value.problems)
    assert "'email_to'" in text and "'nobody' is not one" in text
    assert "'door_ajar' is not one" in text
    assert "'max_per_minute'" in text and "between 1 and 600" in text
    assert "'colour'" in text and "not a known key" in text
    assert "clear text" in text  # security = "none" with a password to a remote host
    assert "chmod 600" in text
    assert "[notify.smtp] key 'from'" in text
    assert "plain http:// only to a loopback address" in text
    assert PASSWORD not in text
    assert len(caught.value.problems) == 8


def test_a_username_without_its_password_file_says_where_to_put_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[notify.smtp]\nhost = "smtp.example.org"\nusername = "dk"\nfrom = "dk@example.org"\n',
    )
    with pytest.raises(SiteConfigError, match="install -m 600"):
        load_site_config(path)


def test_email_recipients_need_an_smtp_table(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match=r"needs a \[notify.smtp\] table"):
        load_site_config(write(tmp_path, '[notify]\nemail_to = ["pm@example.org"]\n'))


def test_doorkeep_check_lists_notify_problems_and_never_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "data" / "keys" / "smtp.password"
    secret.parent.mkdir(parents=True)
    secret.write_text(PASSWORD)
    secret.chmod(0o640)
    path = write(
        tmp_path,
        '[notify.smtp]\nhost = "smtp.example.org"\nusername = "dk"\nfrom = "dk@example.org"\n'
        "port = 70000\n",
    )
    with caplog.at_level(logging.DEBUG):
        code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "chmod 600" in err and "'port'" in err
    assert PASSWORD not in out + err + caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test
async def test_the_password_file_logs_in_to_a_real_server_and_never_reaches_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from edge.notify.transport import NotifyError, send_mail
    from edge.notify.visitor import new_code

    from .conftest import Mailbox, free_port

    logins: list[tuple[bytes, bytes]] = []

    def authenticator(_server, _session, _envelope, mechanism, data):  # type: ignore[no-untyped-def]
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode())

    port, mailbox = free_port(), Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        secret = tmp_path / "data" / "keys" / "smtp.password"
        secret.parent.mkdir(parents=True)
        secret.write_text(PASSWORD)
        secret.chmod(0o600)
        config = load_site_config(
            write(
                tmp_path,
                f'[notify.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
                'username = "dk"\nfrom = "dk@example.org"\ntimeout_s = 2\n',
            )
        )
        assert config.notify is not None and config.notify.smtp is not None
        from email.message import EmailMessage

        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "dk@example.org", "pm@example.org", "hi"
        mail.set_content(new_code("qr"))
        with caplog.at_level(logging.DEBUG):
            await send_mail(config.notify.smtp, mail)
            secret.write_text("wrong-password")  # read at each send: a change needs no restart
            with pytest.raises(NotifyError) as refused:
                await send_mail(config.notify.smtp, mail)
    finally:
        controller.stop()
    assert logins[0] == (b"dk", PASSWORD.encode())
    assert len(mailbox.messages) == 1
    assert "wrong-password" not in str(refused.value) and PASSWORD not in caplog.text
