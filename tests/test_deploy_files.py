"""The files an operator installs from ``deploy/`` (README, "Deploying to production"),
checked against the code they drive: the systemd units parse and run commands that exist
with options those commands accept, the reverse proxy keeps the webhook routes reachable
without a redirect and tells the app the scheme, and the env templates name every setting
the code reads and nothing else (the list is taken from the code, so a new setting fails
here until it is documented)."""

import ast
import configparser
import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class

from tests.e2e.conftest import make_key_pair
from tests.test_env_files import manage

BASE_DIR = Path(__file__).resolve().parent.parent
DEPLOY = BASE_DIR / "deploy"
SETTINGS_FILE = BASE_DIR / "whisper_project" / "settings.py"
# Where the units and the README put things.
APP_DIR = "/srv/whisper"
ENV_FILE = "/etc/whisper/env"
UNITS = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))
SECTIONS = {".service": {"Unit", "Service", "Install"}, ".timer": {"Unit", "Timer", "Install"}}


# --- settings the code reads ---------------------------------------------------------


def settings_read_by_the_code() -> set[str]:
    """Every variable name passed to ``env(…)`` or ``env.<cast>(…)`` in settings.py."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS_FILE.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = node.func
        reads_env = (isinstance(function, ast.Name) and function.id == "env") or (
            isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and function.value.id == "env"
        )
        first = node.args[0]
        if reads_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.add(first.value)
    return names


def names_in_template(path: Path) -> list[str]:
    """The variables a template names, set (``NAME=…``) or shown commented (``# NAME=…``)."""
    return [
        match.group(1)
        for line in path.read_text().splitlines()
        if (match := re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line.strip()))
    ]


def test_the_scan_finds_the_settings() -> None:
    # The scan itself: it sees every kind of call settings.py uses.
    found = settings_read_by_the_code()
    assert {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "CONN_MAX_AGE", "DATABASE_WORK_MEM"} <= found
    assert {"AGENT_CALL_DEADLINE_SECONDS", "AGENT_CALL_DISPATCH", "TRUST_X_FORWARDED_PROTO"} <= found


@pytest.mark.parametrize("template", [".env.example", "deploy/env.example"])
def test_the_env_template_names_every_setting_the_code_reads_and_nothing_else(template: str) -> None:
    named = names_in_template(BASE_DIR / template)
    code = settings_read_by_the_code()

    assert sorted(code - set(named)) == [], f"settings the code reads that {template} does not name"
    assert sorted(set(named) - code) == [], f"names in {template} that the code does not read"
    assert len(named) == len(set(named)), f"{template} names a setting twice"


def template_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"[A-Z][A-Z0-9_]*=", line))


def test_the_development_template_is_for_development() -> None:
    values = template_values(BASE_DIR / ".env.example")
    assert values["DEBUG"] == "true"
    # Left for the development defaults (localhost, secure cookies off, a throwaway key).
    for name in ("ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT"):
        assert name not in values, name
    assert values["SECRET_KEY"] == ""


def test_the_production_template_is_for_production_behind_the_proxy() -> None:
    values = template_values(DEPLOY / "env.example")
    assert values["DEBUG"] == "false"
    assert values["SECRET_KEY"] == ""  # to fill in: the app refuses to start without it
    assert values["TRUST_X_FORWARDED_PROTO"] == "true"  # deploy/nginx.conf sets X-Forwarded-Proto
    assert values["TRUSTED_PROXY_COUNT"] == "1"  # and appends to X-Forwarded-For
    assert values["DATABASE_URL"].startswith("postgres://")
    assert values["VONAGE_PRIVATE_KEY"] == "/etc/whisper/private.key"


def test_the_production_template_filled_in_passes_the_deployment_checks(tmp_path: Path) -> None:
    """An operator fills in the blanks: ``manage.py check --deploy`` passes."""
    filled = {
        "SECRET_KEY": "a-production-secret-key-of-fifty-characters-or-more-0123456789",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "api-secret",
        "VONAGE_APPLICATION_ID": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "VONAGE_PRIVATE_KEY": str(tmp_path / "private.key"),
        "VONAGE_SIGNATURE_SECRET": "signature-secret",
    }
    lines = []
    for line in (DEPLOY / "env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={filled[name]}" if name in filled else line)
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(lines) + "\n")
    (tmp_path / "private.key").write_text(make_key_pair().private_pem)

    result = manage("check", "--deploy", env_file=env_file)

    assert result.returncode == 0, result.stdout + result.stderr
    # Only the two HSTS choices that depend on the domain (every subdomain on HTTPS, the
    # browsers' preload list) are left to the operator, off as the template ships them.
    reported = set(re.findall(r"\(([a-z]+\.[A-Z]\d+)\)", result.stdout + result.stderr))
    assert reported <= {"security.W005", "security.W021"}, result.stdout + result.stderr


# --- systemd units ---------------------------------------------------------------------


def unit(path: Path) -> configparser.ConfigParser:
    """Parsed strictly: a repeated section or key, or a line that is not ``Key=value``, fails."""
    parser = configparser.ConfigParser(
        strict=True, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"), empty_lines_in_values=False
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign] # systemd keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    return parser


def test_there_are_units_for_the_web_processes_and_each_scheduled_job() -> None:
    assert {path.name for path in UNITS} == {
        "whisper.service",
        "whisper-answers.service",
        "whisper-reconcile.service",
        "whisper-reconcile.timer",
        "whisper-purge.service",
        "whisper-purge.timer",
        "whisper-alerts.service",
        "whisper-alerts.timer",
    }


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_the_unit_parses(path: Path) -> None:
    parsed = unit(path)

    assert set(parsed.sections()) <= SECTIONS[path.suffix]
    assert "Unit" in parsed and parsed["Unit"]["Description"]


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.timer")), ids=lambda path: path.name)
def test_each_timer_starts_a_oneshot_service_of_its_own(path: Path) -> None:
    timer = unit(path)
    service = DEPLOY / timer["Timer"]["Unit"]

    assert service.name == path.with_suffix(".service").name
    assert unit(service)["Service"]["Type"] == "oneshot"
    assert "OnCalendar" in timer["Timer"]
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.service")), ids=lambda path: path.name)
def test_the_service_runs_as_the_app_user_with_the_env_file(path: Path) -> None:
    service = unit(path)["Service"]

    assert (service["User"], service["Group"]) == ("whisper", "whisper")
    assert service["WorkingDirectory"] == APP_DIR
    assert service["Environment"] == f"ENV_FILE={ENV_FILE}"


def commands(path: Path) -> list[list[str]]:
    service = unit(path)["Service"]
    return [shlex.split(service[key]) for key in ("ExecStartPre", "ExecStart") if key in service]


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.service")), ids=lambda path: path.name)
def test_the_service_runs_commands_that_exist_with_options_they_accept(path: Path) -> None:
    for argv in commands(path):
        program = Path(argv[0])
        # The virtualenv's own programs, which this checkout's virtualenv also has.
        assert program.parent == Path(APP_DIR, ".venv", "bin"), argv
        assert (BASE_DIR / ".venv" / "bin" / program.name).exists(), argv
        if program.name == "python":
            assert argv[1] == f"{APP_DIR}/manage.py", argv
            name, options = argv[2], argv[3:]
            available = get_commands()
            assert name in available, f"manage.py has no {name} command"
            command = load_command_class(available[name], name)
            command.create_parser("manage.py", name).parse_args(options)  # exits on an unknown option
        elif program.name == "gunicorn":
            gunicorn_accepts(argv[1:])
        else:
            pytest.fail(f"{path.name} runs {argv[0]}, which this test does not know")


def gunicorn_accepts(args: list[str]) -> None:
    from gunicorn.config import Config

    parsed = Config().parser().parse_args(args)
    (application,) = parsed.args
    module, _, attribute = application.partition(":")
    assert module == settings.WSGI_APPLICATION.rpartition(".")[0]
    assert hasattr(importlib.import_module(module), attribute or "application")
    assert parsed.bind[0] in upstreams().values()  # an address deploy/nginx.conf proxies to


@pytest.mark.parametrize(
    ("service", "upstream"), [("whisper.service", "whisper"), ("whisper-answers.service", "whisper_answers")]
)
def test_each_web_service_checks_the_settings_before_it_serves_its_upstream(service: str, upstream: str) -> None:
    (check, serve) = commands(DEPLOY / service)
    assert check[2:4] == ["check", "--deploy"]
    assert Path(serve[0]).name == "gunicorn"
    assert serve[serve.index("--bind") + 1] == upstreams()[upstream]


def test_the_answers_service_starts_stops_and_reloads_with_the_web_service() -> None:
    answers = unit(DEPLOY / "whisper-answers.service")
    assert answers["Unit"]["PartOf"] == answers["Unit"]["ReloadPropagatedFrom"] == "whisper.service"
    assert "whisper.service" in answers["Install"]["WantedBy"].split()
    # On busy cores the answers run first (benchmarks/calls.py --events-nice, as measured).
    assert unit(DEPLOY / "whisper.service")["Service"]["Nice"] == "10"
    assert "Nice" not in answers["Service"]
    # The same spool: the events' note that they are behind is read where the answers run.
    assert answers["Service"]["StateDirectory"] == unit(DEPLOY / "whisper.service")["Service"]["StateDirectory"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_systemd_finds_nothing_wrong_with_the_unit(path: Path, tmp_path: Path) -> None:
    """systemd's own check, with the paths pointed at this checkout (it wants the programs to
    exist) and the unit's user and group replaced by the runner's (it wants them to exist)."""
    for each in UNITS:
        text = each.read_text().replace(APP_DIR, str(BASE_DIR))
        text = re.sub(r"(?m)^(User|Group)=whisper$", r"\1=root", text)
        (tmp_path / each.name).write_text(text)
    result = subprocess.run(  # noqa: S603 - a fixed system program on our own files
        [shutil.which("systemd-analyze") or "", "verify", "--man=no", str(tmp_path / path.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # Not about the file: this machine runs no systemd (a container).
        if line.strip() and "System has not been booted with systemd" not in line and "Failed to" not in line[:10]
    ]
    assert problems == [], "\n".join(problems)


# --- reverse proxy -------------------------------------------------------------------------


def nginx_blocks(text: str) -> list[tuple[list[str], list]]:
    """nginx's configuration as a tree: ``(directive and arguments, children)``."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};"]+', re.sub(r"(?m)#.*$", "", text))
    stack: list[list] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == "{":
            block: list = []
            stack[-1].append((words, block))
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        elif token == ";":
            stack[-1].append((words, []))
            words = []
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def directives(block: list, name: str) -> list[list[str]]:
    return [words[1:] for words, _ in block if words and words[0] == name]


def servers() -> dict[str, list]:
    """The server blocks by the port they listen on."""
    found = {}
    for words, block in nginx_blocks((DEPLOY / "nginx.conf").read_text()):
        if words == ["server"]:
            (port, *_) = directives(block, "listen")[0]
            found[port] = block
    return found


def location_for(server: list, path: str) -> list:
    """The location nginx picks for ``path``: the first matching regex, else the longest prefix."""
    prefixes = []
    for words, block in server:
        if words[:1] != ["location"]:
            continue
        if words[1] == "~":
            if re.search(words[2], path):
                return block
        elif path.startswith(words[1]):
            prefixes.append((len(words[1]), block))
    return max(prefixes, key=lambda each: each[0])[1]


def upstreams() -> dict[str, str]:
    """The upstream groups by name: the address of each one's server."""
    return {
        words[1]: directives(block, "server")[0][0]
        for words, block in nginx_blocks((DEPLOY / "nginx.conf").read_text())
        if words[:1] == ["upstream"]
    }


def passes_to_the_app(location: list) -> bool:
    """Proxied to one of the two gunicorns, chosen by route (tests/test_deploy_nginx.py runs
    the choice in a real nginx), with the headers the app reads."""
    headers = {tuple(args) for args in directives(location, "proxy_set_header")}
    return (
        directives(location, "proxy_pass") == [["http://$whisper_upstream"]]
        and not directives(location, "return")
        and ("X-Forwarded-Proto", "$scheme") in headers
        and ("Host", "$host") in headers
        and ("X-Forwarded-For", "$proxy_add_x_forwarded_for") in headers
    )


def webhook_paths() -> list[str]:
    """The routes the app exempts from its HTTPS redirect (Vonage's webhooks, the health
    check), with and without the optional slash."""
    paths = []
    for pattern in settings.SECURE_REDIRECT_EXEMPT:
        name = pattern.removeprefix("^").removesuffix("/?$")
        assert re.fullmatch(r"[a-z_]+", name), pattern
        paths += [f"/{name}", f"/{name}/"]
    return paths


def test_the_proxy_serves_the_webhooks_on_both_schemes_without_a_redirect() -> None:
    from django.urls import resolve

    by_port = servers()
    assert set(by_port) == {"80", "443"}
    for path in webhook_paths():
        resolve(path)  # a route the app has
        for port in ("80", "443"):
            assert passes_to_the_app(location_for(by_port[port], path)), (port, path)


def test_the_proxy_redirects_the_rest_of_plain_http_and_serves_it_over_tls() -> None:
    by_port = servers()
    for path in ("/admin/", "/admin/login/", "/api/docs/", "/"):
        assert directives(location_for(by_port["80"], path), "return") == [["301", "https://$host$request_uri"]]
        assert passes_to_the_app(location_for(by_port["443"], path)), path
    assert "ssl" in directives(by_port["443"], "listen")[0]
    assert directives(by_port["443"], "ssl_certificate")
