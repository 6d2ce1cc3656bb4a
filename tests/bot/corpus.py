"""A small Telegram export (result.json) about ML research for the end-to-end tests.

Written as a real export (the telegram-json parser reads it) and ingested with the channel hint
`quant_chan`, so posts get permalinks `https://t.me/quant_chan/<id>` that answers cite.
"""

from __future__ import annotations

import json
from pathlib import Path

CHANNEL = "quant_chan"
POSTS = {
    11: "SageAttention квантует Q и K в INT8 и оставляет PV в FP16. Ускорение внимания в 2 раза "
    "по сравнению с FlashAttention2 без потери качества. https://arxiv.org/abs/2410.02367",
    12: "GPTQ квантует веса LLM в 4 бита послойно, используя приближение второго порядка (гессиан). "
    "Модель на 175B параметров квантуется за 4 часа на одной GPU.",
    13: "Qwen-Image: новая открытая модель генерации изображений от Alibaba, хорошо рисует текст "
    "на картинках, в том числе китайские иероглифы.",
    14: "Бот для кросспостинга: переводит посты из Telegram в X, Bluesky и LinkedIn, "
    "режет на треды с учётом лимитов каждой сети.",
    15: "Mixture of Experts: роутер выбирает 2 эксперта из 8 для каждого токена, поэтому "
    "вычислений меньше, чем у плотной модели того же размера.",
    16: "LoRA обучает низкоранговые добавки к весам вместо полного fine-tuning; "
    "память на оптимизатор падает в десятки раз.",
}


def export(posts: dict[int, str] = POSTS) -> dict:
    return {
        "name": "Quant Channel",
        "type": "public_channel",
        "id": 1,
        "messages": [
            {
                "id": i,
                "type": "message",
                "date": f"2025-04-{10 + i % 18:02d}T10:00:00",
                "date_unixtime": str(1744279200 + i * 86400),
                "text": text,
            }
            for i, text in posts.items()
        ],
    }


def write_export(path: Path, posts: dict[int, str] = POSTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(export(posts), ensure_ascii=False), encoding="utf-8")
    return path
