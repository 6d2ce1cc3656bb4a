"""docker/: images linted, compose file valid, no drift between compose/.env.example and the settings,
and the wheel installs and runs what the image's entrypoint runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
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
    assert "llm:8000" in services["bot"]["environment"]["RESEARCH_BOT_LLM_BASE_URL"]
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


@pytest.mark.slow
def test_wheel_installs_and_runs_the_entrypoint_commands(tmp_path):
    """Build the wheel, install it (without deps) into a fresh venv that sees the project's
    dependencies, then run what the image does: --help, migrate, stats on an empty data dir."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("research_bot-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # the dependencies come from this environment; the project itself only from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True
    )
    cli = venv / "bin" / "research-bot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESEARCH_BOT_")}
    env.update(RESEARCH_BOT_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1")
    outside = tmp_path / "elsewhere"
    outside.mkdir()  # not the repo: the installed package must not lean on the source tree
    for args, expect in (
        (["--help"], "ingest"),
        (["migrate"], "newest schema"),
        (["stats", "--json"], '"posts": 0'),
    ):
        result = subprocess.run([str(cli), *args], cwd=outside, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert expect in result.stdout
