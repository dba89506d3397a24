"""`rawpost fuzz`: schemathesis against a real `rawpost serve`, signed in.

A scratch database (embedded by default) gets two users and an admin; `rawpost serve`
starts on a free loopback port with 2 workers; schemathesis runs every phase (examples,
coverage, fuzzing, stateful) and every check against the live OpenAPI document, twice:
signed in as a user, then as the admin, half of `--max-time` each. It signs in through
`POST /api/auth/token` (a Web Fuzzing Commons auth file), so it signs in again when a
fuzzed logout revokes its token. The two users are peers: schemathesis replays one's
reads as the other to look for objects it may not see. `/metrics` gets the scrape token.
Where schemathesis's model of an API does not fit the contract: fuzz_hooks.py.

The command fails when schemathesis finds anything, or when fewer than `--min-cases`
cases ran (a run that tests nothing must not pass).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import click

from rawpost_devtools import free_port

PASSWORD_FIELD = "password"  # noqa: S105 - a field name
ACCOUNTS = ("ada", "bob", "admin")
# Users that must not see each other's private data (emails, drafts). The admin sees all.
PEERS = ("ada", "bob")
# One run per identity, each pinned to it: a run that moved each operation on to whichever
# account it admits would create a draft as ada and delete it as bob (a correct 404 that
# schemathesis reports as "created resource not found").
RUNS = ("ada", "admin")
# What a schema-valid request may be answered: schemathesis's default, plus 412 and 422.
# Both are a well-formed request that the stored data makes fail: 412, an If-Match naming
# a version the row no longer has; 422, a post for an author that does not exist, or an
# Idempotency-Key already used with another body. Nothing a document can state.
ACCEPTED = ("2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx")


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def create_accounts(base: str, database_url: str) -> dict[str, tuple[str, str, str]]:
    """Sign up each account over HTTP; promote `admin` as an operator would.
    Email, password and id of each."""
    from service.users.commands import set_role

    accounts: dict[str, tuple[str, str, str]] = {}
    for name in ACCOUNTS:
        email, password = f"fuzz-{name}@example.com", secrets.token_urlsafe(18)
        status, body = _post_json(
            f"{base}/api/users", {"email": email, "name": name, PASSWORD_FIELD: password}
        )
        if status != 201:
            raise click.ClickException(f"signing up {email} answered {status}: {body[:300]!r}")
        accounts[name] = (email, password, json.loads(body)["id"])
    set_role(database_url, accounts["admin"][0], "admin")
    return accounts


def wfc_document(accounts: dict[str, tuple[str, str, str]]) -> dict[str, Any]:
    """A Web Fuzzing Commons auth document: each account signs in with its password."""
    return {
        "schemaVersion": "0.1.0",
        "auth": [
            {
                "name": name,
                "loginEndpointAuth": {
                    "endpoint": "/api/auth/token",
                    "verb": "POST",
                    "contentType": "application/json",
                    "payloadUserPwd": {
                        "username": email,
                        "usernameField": "email",
                        "password": password,
                        "passwordField": PASSWORD_FIELD,
                    },
                    "token": {
                        "extractFrom": "body",
                        "extractSelector": "/access_token",
                        "sendIn": "header",
                        "sendName": "Authorization",
                        "sendTemplate": "Bearer {token}",
                    },
                },
            }
            for name, (email, password, _) in accounts.items()
        ],
    }


def config_toml(wfc_path: Path, identity: str, metrics_token: str) -> str:
    peers = ", ".join(f'"{peer}"' for peer in PEERS)
    accepted = ", ".join(f'"{status}"' for status in ACCEPTED)
    return (
        "[auth.wfc]\n"
        f'path = "{wfc_path}"\n'
        f'user = "{identity}"\n'
        f"peers = [{peers}]\n\n"
        "[checks.positive_data_acceptance]\n"
        f"expected-statuses = [{accepted}]\n\n"
        "[[operations]]\n"
        'include-path = "/metrics"\n'
        f'headers = {{ Authorization = "Bearer {metrics_token}" }}\n'
    )


def cases_run(report: Path) -> int:
    """How many test cases schemathesis generated, from its JSON run report."""
    data = json.loads(report.read_text())
    total = data.get("test_cases", {}).get("generated")
    if not isinstance(total, int):
        raise click.ClickException(f"no case count in {report}: the report format changed?")
    return total


@click.command()
@click.option(
    "--database-url",
    default=None,
    help="A server for the scratch database (needs CREATEDB); default: a temporary"
    " embedded PostgreSQL.",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Cases per operation in each phase.",
)
@click.option(
    "--max-time",
    type=click.IntRange(min=10),
    default=240,
    show_default=True,
    help="Seconds for both runs together (as a user, then as the admin).",
)
@click.option(
    "--min-cases",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Fail unless at least this many cases ran.",
)
@click.option("--seed", type=int, default=None, help="schemathesis's random seed, to replay.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep schemathesis's reports (JSON, JUnit, reproducing pytest file) here.",
)
def fuzz(
    database_url: str | None,
    max_examples: int,
    max_time: int,
    min_cases: int,
    seed: int | None,
    report_dir: Path | None,
) -> None:
    """Run schemathesis, signed in as two users and an admin, against a fresh `rawpost serve`."""
    from rawpost_devtools import scratch
    from rawpost_devtools.bench.server import server

    with (
        tempfile.TemporaryDirectory(prefix="rawpost-fuzz-") as tmp,
        scratch.scratch_database(database_url) as url,
    ):
        work = Path(tmp)
        reports = report_dir or work / "reports"
        base = f"http://127.0.0.1:{free_port()}"
        metrics_token = secrets.token_urlsafe(24)
        env = {
            "RAWPOST_WORKERS": "2",
            "RAWPOST_JWT_SECRET": secrets.token_urlsafe(48),
            "RAWPOST_METRICS_TOKEN": metrics_token,
            # Every case comes from one address and signs in again and again: with the
            # limits on, most would be answered 429 and test nothing else.
            "RAWPOST_RATE_LIMIT": "off",
            "RAWPOST_LOGIN_RATE_LIMIT": "off",
            "RAWPOST_SIGNUP_RATE_LIMIT": "off",
        }
        with server(base, start=True, database_url=url, env=env):
            accounts = create_accounts(base, url)
            wfc = work / "auth.json"
            wfc.write_text(json.dumps(wfc_document(accounts)))
            hooks = {
                "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("fuzz_hooks.py")),
                "RAWPOST_FUZZ_KEEP": ",".join(user_id for _, _, user_id in accounts.values()),
            }
            failed = []
            for identity in RUNS:
                config = work / f"schemathesis-{identity}.toml"
                config.write_text(config_toml(wfc, identity, metrics_token))
                command = [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "--config-file",
                    str(config),
                    "run",
                    f"{base}/schema/openapi.json",
                    "--checks",
                    "all",
                    "--phases",
                    "examples,coverage,fuzzing,stateful",
                    "--max-examples",
                    str(max_examples),
                    "--max-time",
                    str(max_time // len(RUNS)),
                    "--report",
                    "json,junit,pytest",
                    "--report-dir",
                    str(reports / identity),
                    "--generation-database",
                    "none",
                    "--no-color",
                ]
                if seed is not None:
                    command += ["--seed", str(seed)]
                click.echo(f"\n=== signed in as {identity} ===\n$ " + " ".join(command))
                result = subprocess.run(command, cwd=work, env={**os.environ, **hooks}, check=False)
                if result.returncode != 0:
                    failed.append(identity)
        total = sum(cases_run(report) for report in reports.glob("*/json-*.json"))
        if failed:
            raise click.ClickException(
                f"schemathesis found problems signed in as {', '.join(failed)} (above)"
            )
        if total < min_cases:
            raise click.ClickException(
                f"only {total} cases ran, fewer than --min-cases {min_cases}"
            )
        click.echo(f"schemathesis: {total} cases, no findings")
