"""The LLM endpoint: any OpenAI-compatible server through the `openai` package, sync and async.

Every failure (unreachable, timeout, HTTP error, an answer with no text) becomes `LLMError` with
one line naming the endpoint, so callers fall back to extractive answers and say why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from core.errors import LLMError
from rag.redact import redact


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    api_key: str = "not-needed"
    model: str = "default"
    timeout_s: float = 60.0
    temperature: float = 0.2
    max_tokens: int = 700


def _describe(exc: BaseException, base_url: str) -> str:
    import openai  # imported where used: `openai` costs ~1-2 s of start-up for commands that never call it

    base_url = redact(base_url)  # the message reaches notices, logs and chats: no user:pass@ or ?key=
    if isinstance(exc, openai.APITimeoutError):
        return f"LLM endpoint {base_url} timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"LLM endpoint {base_url} is unreachable"
    if isinstance(exc, openai.APIStatusError):
        # the OpenAI error envelope says why (prompt over the context limit, unknown model, ...)
        body = exc.body if isinstance(exc.body, dict) else {}
        reason = body.get("message") or (body.get("error") or {}).get("message") if body else None
        detail = f": {str(reason).splitlines()[0][:200]}" if reason else ""
        return f"LLM endpoint {base_url} answered HTTP {exc.status_code}{detail}"
    return redact(
        f"LLM endpoint {base_url} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )


# Where OpenAI-compatible servers put the context length in /v1/models: ours and vLLM
# (max_model_len), llama.cpp (n_ctx, under meta), LM Studio / others (context_length, ...).
_CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx")


def context_from_models(cards: list[dict], model: str) -> int | None:
    """The context length of `model` (or of the only model served) from /v1/models entries."""
    chosen = [c for c in cards if c.get("id") == model] or (cards if len(cards) == 1 else [])
    for card in chosen:
        for place in (card, card.get("meta") or {}):
            for name in _CONTEXT_FIELDS:
                value = place.get(name) if isinstance(place, dict) else None
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None


class LLMClient:
    def __init__(self, config: LLMConfig):
        self.config = config
        self._context: int | None = None
        self._context_checked = False
        # No retries: a dead endpoint must fall back to quotes quickly, not after 3 timeouts.
        kwargs = {
            "base_url": config.base_url,
            "api_key": config.api_key or "not-needed",
            "timeout": config.timeout_s,
            "max_retries": 0,
        }
        import openai  # see _describe: loaded only once an endpoint is configured

        self._sync = openai.OpenAI(**kwargs)
        self._async = openai.AsyncOpenAI(**kwargs)

    def complete(
        self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> str:
        try:
            response = self._sync.chat.completions.create(
                model=self.config.model,
                messages=messages,
                temperature=self.config.temperature if temperature is None else temperature,
                max_tokens=max_tokens or self.config.max_tokens,
            )
            text = response.choices[0].message.content if response.choices else None
        except LLMError:
            raise
        except Exception as exc:  # openai errors, and pydantic/JSON errors on a garbage body
            raise LLMError(_describe(exc, self.config.base_url)) from exc
        if not isinstance(text, str) or not text.strip():
            raise LLMError(f"LLM endpoint {redact(self.config.base_url)} returned no text")
        return text

    async def stream(self, messages: list[dict], *, max_tokens: int | None = None) -> AsyncIterator[str]:
        """Text deltas as the endpoint produces them; raises LLMError (possibly mid-way)."""
        produced = False
        try:
            stream = await self._async.chat.completions.create(
                model=self.config.model,
                messages=messages,
                temperature=self.config.temperature,
                max_tokens=max_tokens or self.config.max_tokens,
                stream=True,
            )
            async for event in stream:
                if not event.choices:
                    continue
                delta = event.choices[0].delta.content if event.choices[0].delta else None
                if delta:
                    produced = True
                    yield delta
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(_describe(exc, self.config.base_url)) from exc
        if not produced:
            raise LLMError(f"LLM endpoint {redact(self.config.base_url)} returned no text")

    def context_window(self) -> int | None:
        """The served model's context length from the endpoint's /v1/models (asked once; None when
        the endpoint does not say or cannot be asked: the caller then uses its setting or a default)."""
        if not self._context_checked:
            self._context_checked = True
            try:
                page = self._sync.models.list()
                cards = [card.model_dump() for card in page.data]
                self._context = context_from_models(cards, self.config.model)
            except Exception:  # any failure here only means "unknown"; the answer request will say why
                self._context = None
        return self._context

    async def aclose(self) -> None:
        await self._async.close()

    def close(self) -> None:
        self._sync.close()
