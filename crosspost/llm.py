"""The LLM endpoint for translation and style: any OpenAI-compatible server, via the `openai` client.

Settings arrive as a plain `LLMConfig` (built by the CLI/bot from RESEARCH_BOT_LLM_*); transport
failures become one `LLMError` naming the endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.errors import LLMError


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str = "default"
    api_key: str = "not-needed"
    timeout_s: float = 60.0


FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.S)


def chat(llm: LLMConfig, system: str, user: str, *, temperature: float = 0.2) -> str:
    import openai

    client = openai.OpenAI(
        base_url=llm.base_url, api_key=llm.api_key or "not-needed", timeout=llm.timeout_s, max_retries=0
    )
    try:
        reply = client.chat.completions.create(
            model=llm.model,
            temperature=temperature,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        )
    except openai.APIStatusError as exc:
        raise LLMError(f"LLM endpoint {llm.base_url} answered HTTP {exc.status_code}: {exc.message}") from exc
    except openai.APIError as exc:
        raise LLMError(f"LLM endpoint {llm.base_url} failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        client.close()
    if not reply.choices or not (reply.choices[0].message.content or "").strip():
        raise LLMError(f"LLM endpoint {llm.base_url} returned an empty answer")
    text = reply.choices[0].message.content.strip()
    fenced = FENCE.match(text)  # some models wrap the fragment in a code fence
    return fenced.group(1) if fenced else text
