"""The LLM endpoint for translation and style: any OpenAI-compatible server, via the `openai` client.

Settings arrive as the same plain `rag.llm.LLMConfig` answers use (built once by
`bot.services.llm_config` from RESEARCH_BOT_LLM_*); failures become one `LLMError` naming the endpoint.
"""

from __future__ import annotations

import re

from rag.llm import LLMClient, LLMConfig

__all__ = ["LLMConfig", "chat"]


FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.S)


def chat(llm: LLMConfig, system: str, user: str, *, temperature: float = 0.2) -> str:
    client = LLMClient(llm)
    try:
        text = client.complete(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=temperature,
        ).strip()
    finally:
        client.close()
    fenced = FENCE.match(text)  # some models wrap the fragment in a code fence
    return fenced.group(1) if fenced else text
