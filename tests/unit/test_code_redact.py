"""Redaction of e-mail addresses, IP addresses and keys in kept code (code/redact.py), with real detect-secrets."""

import ast
import json

import pytest

from abacus_repro.cli import main
from abacus_repro.code import check_paths, clean_shard
from abacus_repro.code.funnel import summarize_funnel
from abacus_repro.code.redact import find_redactions, redact
from abacus_repro.io import make_doc
from abacus_repro.settings import CodeSettings

ALL = ["email", "ip_address", "key"]
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"
URL_PASSWORD = "s3cr3tPassw0rd"
KEY_BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
]
SECRETS_FILE = f'''"""Client settings."""

AWS_ACCESS_KEY_ID = "{AWS_KEY}"
GITHUB = "{GITHUB_TOKEN}"
DATABASE_URL = "postgres://admin:{URL_PASSWORD}@db.internal:5432/app"
PEM = """-----BEGIN RSA PRIVATE KEY-----
{KEY_BODY[0]}
{KEY_BODY[1]}
-----END RSA PRIVATE KEY-----"""
ONE_LINE = "-----BEGIN PRIVATE KEY-----\\n{KEY_BODY[0]}\\n-----END PRIVATE KEY-----\\n"
'''


def test_keys_are_replaced_inside_their_string_literals():
    text, counts = redact(SECRETS_FILE, ALL)
    for secret in (AWS_KEY, GITHUB_TOKEN, URL_PASSWORD, *KEY_BODY):
        assert secret not in text
    assert 'AWS_ACCESS_KEY_ID = "<KEY>"' in text and 'GITHUB = "<KEY>"' in text
    assert '"postgres://admin:<KEY>@db.internal:5432/app"' in text  # only the password goes
    assert "-----BEGIN RSA PRIVATE KEY-----\n<KEY>\n<KEY>\n-----END RSA PRIVATE KEY-----" in text
    assert '"-----BEGIN PRIVATE KEY-----\\n<KEY>\\n-----END PRIVATE KEY-----\\n"' in text
    assert counts == {"key": 5}  # a key block is one key, however many lines
    ast.parse(text)  # still Python


def test_emails_in_strings_and_comments_not_examples_or_code():
    source = (
        "# Author: Jane Roe <jane.roe@gmail.com>\n"
        '"""Maintained by ops-team+alerts@corp-mail.co.uk."""\n'
        'SAMPLE = "someone@example.com"\n'
        'TEST = "user@sub.example.org"\n'
        'REMOTE = "git@github.com:org/repo.git"\n'
        "product = a@self.weight\n"
    )
    text, counts = redact(source, ALL)
    assert "# Author: Jane Roe <<EMAIL>>" in text
    assert '"""Maintained by <EMAIL>."""' in text
    for kept in ("someone@example.com", "user@sub.example.org", "git@github.com:org", "a@self.weight"):
        assert kept in text
    assert counts == {"email": 2}


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ('SERVER = "52.14.200.11"', True),
        ('HOST = "1.2.3.4"', True),  # single digits, but the line speaks of a host
        ('V6 = "2a00:1450:4001:81b::200e"', True),
        ('LOCAL = "127.0.0.1"', False),
        ('ANY = "0.0.0.0"', False),
        ('LAN = "192.168.1.20"', False),
        ('VPC = "10.0.12.7"', False),
        ('DOCKER = "172.17.0.2"', False),
        ('DOCS = "203.0.113.9"', False),  # documentation range
        ('DNS = "8.8.8.8"', False),
        ('RESOLVER = "2001:4860:4860::8888"', False),
        ('RELEASE = "1.2.3.4"', False),  # a version number
        ('__version__ = "52.14.200.11"', False),  # the line says version
        ("# 8.2.4.44 Bogus comment state", False),  # a section number
        ('BUILD = "1.2.3.4.5"', False),  # a longer dotted run
        ("part = values[10::20]", False),  # a slice, not IPv6
    ],
)
def test_ip_addresses_public_only_not_versions(line, redacted):
    text, counts = redact(line + "\n", ALL)
    assert ("<IP_ADDRESS>" in text) is redacted, text
    assert counts.get("ip_address", 0) == int(redacted)


def test_kinds_choose_what_is_redacted():
    source = f'KEY = "{AWS_KEY}"\n# mail: jane.roe@gmail.com, host 52.14.200.11\n'
    only_mail, counts = redact(source, ["email"])
    assert AWS_KEY in only_mail and "52.14.200.11" in only_mail and "<EMAIL>" in only_mail
    assert counts == {"email": 1}
    assert redact(source, ALL)[1] == {"email": 1, "ip_address": 1, "key": 1}


def test_findings_are_masked_and_located():
    findings = [f for f in find_redactions(SECRETS_FILE, ALL) if f.counted]
    assert [(f.kind, f.line) for f in findings] == [("key", 3), ("key", 4), ("key", 5), ("key", 7), ("key", 10)]
    for finding in findings:
        for secret in (AWS_KEY, GITHUB_TOKEN, URL_PASSWORD, *KEY_BODY):
            assert secret not in finding.masked
    assert findings[0].masked.startswith("AKIA") and "20 chars" in findings[0].masked


def _docs(text: str) -> list[dict]:
    return [make_doc(text, "code", {"repo": "org/app", "path": "app/settings.py", "bytes": len(text)}, id="f1")]


def test_clean_shard_redacts_kept_files_and_counts_them():
    kept, dropped, funnel = clean_shard(_docs(SECRETS_FILE + "# contact: jane.roe@gmail.com\n"), CodeSettings())
    assert not dropped and len(kept) == 1
    assert AWS_KEY not in kept[0]["text"] and "<EMAIL>" in kept[0]["text"]
    stats = funnel.to_dict()
    assert stats["redacted"] == {"email": 1, "ip_address": 0, "key": 5}
    assert stats["redacted_files"] == 1
    summary = summarize_funnel([stats, stats])
    assert summary["redacted"] == {"email": 2, "ip_address": 0, "key": 10} and summary["redacted_files"] == 2


def test_redaction_off_leaves_the_text():
    settings = CodeSettings.model_validate({"redact": {"enabled": False}})
    kept, _dropped, funnel = clean_shard(_docs(SECRETS_FILE), settings)
    assert kept[0]["text"] == SECRETS_FILE
    assert funnel.to_dict()["redacted"] == {} and funnel.to_dict()["redacted_files"] == 0


def test_code_check_shows_what_would_be_redacted_masked(tmp_path, capsys):
    target = tmp_path / "settings.py"
    target.write_text(SECRETS_FILE, encoding="utf-8")
    (tmp_path / "clean.py").write_text("X = 1\n", encoding="utf-8")
    decisions = {d["path"]: d for d in check_paths([tmp_path], CodeSettings())}
    assert "redactions" not in decisions[str(tmp_path / "clean.py")]
    assert main(["code", "check", str(target)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["kept"] and "redacted: 5 key" in line["detail"]
    assert [(r["kind"], r["line"]) for r in line["redactions"]] == [
        ("key", 3),
        ("key", 4),
        ("key", 5),
        ("key", 7),
        ("key", 10),
    ]
    printed = json.dumps(line)
    for secret in (AWS_KEY, GITHUB_TOKEN, URL_PASSWORD, *KEY_BODY):
        assert secret not in printed


def test_code_that_names_a_key_marker_is_left_alone():
    parser = (
        "def is_key(text):\n"
        '    if text.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n'
        "        return deserializationOfTheKeyBody(text)\n"
        '    return text.endswith("-----END RSA PRIVATE KEY-----")\n'
    )
    assert redact(parser, ALL) == (parser, {})
