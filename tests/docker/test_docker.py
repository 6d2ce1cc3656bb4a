"""docker/: images linted, compose file valid, no drift between compose/.env.example and the settings,
no LLM unless one runs, the bot's token only in the bot's container, and the README's deploy steps
complete. (The image's commands through the wheel: test_wheel.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from bot.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
COMPOSE_ONLY = {"COMPOSE_PROJECT_NAME", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
REQUIRED_IN_ENV_EXAMPLE = {"TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_IDS", "RESEARCH_BOT_LLM_BASE_URL"}


def setting_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"RESEARCH_BOT_{name.upper()}")
    return names


def env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "docker/Dockerfile", "docker/Dockerfile.llm"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_env_var_is_a_setting_the_app_reads():
    settings = setting_env_names()
    example = env_example()
    unknown = set(example) - settings - COMPOSE_ONLY
    assert not unknown, f".env.example sets variables no setting reads: {unknown}"
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    for service in ("bot", "llm"):
        env = compose["services"][service].get("environment", {})
        assert not set(env) - settings, (service, set(env) - settings)
    assert set(example) >= REQUIRED_IN_ENV_EXAMPLE
    # every setting is documented in .env.example (set or commented out)
    text = (DOCKER / ".env.example").read_text()
    undocumented = {name for name in settings if not re.search(rf"^#?\s*{name}=", text, re.M)}
    assert not undocumented, f"settings missing from .env.example: {undocumented}"


def test_compose_services_are_wired_as_documented():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert services["bot"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["bot"]["environment"]["RESEARCH_BOT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["llm"]["profiles"] == ["llm"]
    assert services["llm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert any(v.endswith(":ro") for v in services["llm"]["volumes"])
    assert {"pgdata", "data", "models"} <= set(compose["volumes"])
    assert "healthcheck" in services["postgres"]


@pytest.mark.skipif(
    not COMPOSE_SPEC.exists() and not shutil.which("docker-compose"),
    reason="needs Debian's docker-compose (CI installs it)",
)
def test_compose_file_is_valid(tmp_path):
    shutil.copy(DOCKER / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(DOCKER / ".env.example", tmp_path / ".env")
    if COMPOSE_SPEC.exists():
        import jsonschema

        schema = json.loads(COMPOSE_SPEC.read_text())
        # the file names draft 2019-09 with a trailing "#" that jsonschema does not resolve: pick it explicitly
        jsonschema.Draft201909Validator(schema).validate(
            yaml.safe_load((DOCKER / "compose.yaml").read_text())
        )
    if shutil.which("docker-compose"):
        result = subprocess.run(
            ["docker-compose", "-f", "compose.yaml", "--profile", "llm", "config", "-q"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def compose_file() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def bot_environment() -> dict[str, str]:
    """What the bot container gets with .env = .env.example: the env_file, then `environment` over it
    (compose's order), with compose's `${VAR:-default}` interpolation from the same file."""
    example = env_example()

    def interpolate(value: str) -> str:
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: example.get(m[1]) or m[2] or "", str(value))

    env = dict(example)
    env.update({k: interpolate(v) for k, v in compose_file()["services"]["bot"]["environment"].items()})
    return env


def compose_config(tmp_path: Path, env_text: str, *profiles: str) -> dict:
    """`docker-compose config` on a copy of compose.yaml with the given .env, parsed."""
    shutil.copy(DOCKER / "compose.yaml", tmp_path / "compose.yaml")
    (tmp_path / ".env").write_text(env_text)
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        ["docker-compose", "-f", "compose.yaml", *flags, "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_without_the_llm_profile_the_bot_answers_extractively(monkeypatch, tmp_path):
    from bot.services import llm_config

    env = bot_environment()
    assert not any("llm:8000" in value for value in env.values()), env
    for name, value in env.items():  # over conftest's clean environment
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env in the working directory
    assert llm_config(Settings()) is None  # no endpoint: answers quote the posts, no "LLM unreachable"
    if shutil.which("docker-compose"):
        bot = compose_config(tmp_path, (DOCKER / ".env.example").read_text())["services"]["bot"]
        assert not bot["environment"].get("RESEARCH_BOT_LLM_BASE_URL"), bot["environment"]


def test_the_llm_container_gets_only_the_server_settings(tmp_path):
    llm = compose_file()["services"]["llm"]
    assert "env_file" not in llm  # docker/.env holds TELEGRAM_BOT_TOKEN
    serve = {name for name in setting_env_names() if name.startswith("RESEARCH_BOT_LLM_SERVE_")}
    assert set(llm["environment"]) == serve  # every serve-llm setting can still be set in docker/.env
    if shutil.which("docker-compose"):
        env_text = (DOCKER / ".env.example").read_text()
        env_text = env_text.replace("TELEGRAM_BOT_TOKEN=\n", "TELEGRAM_BOT_TOKEN=123456:bot-secret\n")
        env_text += "RESEARCH_BOT_LLM_SERVE_MAX_BATCH=3\n"
        services = compose_config(tmp_path, env_text, "llm")["services"]
        assert services["bot"]["environment"]["TELEGRAM_BOT_TOKEN"] == "123456:bot-secret"
        assert services["llm"]["environment"]["RESEARCH_BOT_LLM_SERVE_MAX_BATCH"] == "3"
        assert "bot-secret" not in yaml.safe_dump(services["llm"])


def test_readme_says_how_an_export_gets_into_the_data_volume():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deploy with Docker") :]
    ingested = re.findall(r"exec bot research-bot ingest (\S+)", section)
    assert ingested, "the Docker section shows no ingest example"
    for path in ingested:
        assert re.search(rf"docker compose .* cp \S+ bot:{re.escape(path)}\b", section), path


def test_dockerfiles_copy_only_what_the_repository_has_and_the_context_sends():
    # .dockerignore excludes everything ("*") and lets the copied paths back in ("!path")
    allowed = {line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert "*" in (REPO / ".dockerignore").read_text().splitlines()
    for dockerfile in ("Dockerfile", "Dockerfile.llm"):
        for line in (DOCKER / dockerfile).read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                *sources, _dest = line.split()[1:]
                for source in sources:
                    assert (REPO / source).exists(), f"{dockerfile}: {line}"
                    assert source.rstrip("/") in allowed, (
                        f"{dockerfile}: {source} is not in .dockerignore's list"
                    )
