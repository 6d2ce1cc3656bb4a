"""Every interface text of the bot, in Russian and English, in one place.

Handlers call `t(lang, key, **values)`; `lang_of(user)` picks the language from the user's
Telegram `language_code` (Russian for ru/uk/be/kk, English otherwise). Values are inserted with
`str.format`, so texts that are sent in HTML mode must receive already-escaped values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crosspost import NETWORKS

if TYPE_CHECKING:
    from aiogram.types import User

RU_CODES = ("ru", "uk", "be", "kk")
_SOCIAL = ", ".join(name for key, name in NETWORKS.items() if key != "markdown")  # Markdown is a file, not a network

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "en": "Hi! I answer questions about ML research from the channels I index, with links to the "
        "posts and papers.\n\nJust write a question (in a group: mention me or reply to me).\n"
        "/ask QUESTION: ask anywhere\n/new: forget our conversation\n"
        f"/crosspost LINK or text: convert a post for {_SOCIAL}\n/help: this text",
        "ru": "Привет! Я отвечаю на вопросы об ML-исследованиях по каналам, которые индексирую, со "
        "ссылками на посты и статьи.\n\nПросто напишите вопрос (в группе: упомяните меня или ответьте мне).\n"
        "/ask ВОПРОС: спросить где угодно\n/new: забыть наш разговор\n"
        f"/crosspost ССЫЛКА или текст: переделать пост для {_SOCIAL}\n/help: эта справка",
    },
    "admin_help": {
        "en": "Admin: /reingest, /reindex, /stats, /sources, /watch @channel (index its new posts); "
        "send result.json or a PDF to add it.",
        "ru": "Админам: /reingest, /reindex, /stats, /sources, /watch @канал (индексировать его новые "
        "посты); пришлите result.json или PDF, чтобы добавить.",
    },
    "new_done": {"en": "Started a new conversation.", "ru": "Начали новый разговор."},
    "ask_usage": {
        "en": "Write the question after /ask, e.g. /ask what is SageAttention?",
        "ru": "Напишите вопрос после /ask, например: /ask что такое SageAttention?",
    },
    "empty": {
        "en": "The message is empty: write a question in words.",
        "ru": "Сообщение пустое: напишите вопрос словами.",
    },
    "not_text": {
        "en": "I read text only: write the question in words (a caption under a photo works too).",
        "ru": "Я читаю только текст: напишите вопрос словами (подпись к фото тоже подойдёт).",
    },
    "too_long": {
        "en": "That is {n} characters; questions are limited to {limit}. Please shorten it.",
        "ru": "Здесь {n} символов, а вопрос может быть не длиннее {limit}. Сократите, пожалуйста.",
    },
    "rate_limited": {
        "en": "Too many messages: please wait {s} s.",
        "ru": "Слишком много сообщений: подождите {s} с.",
    },
    "sources_title": {"en": "Sources", "ru": "Источники"},
    "btn_sources": {"en": "📚 Sources", "ru": "📚 Источники"},
    "btn_convert": {"en": "🔁 Convert post [{n}]", "ru": "🔁 Переделать пост [{n}]"},
    "no_quotes": {"en": "No quotes for this answer.", "ru": "У этого ответа нет цитат."},
    "stale_button": {
        "en": "This button is from an older message; please ask again.",
        "ru": "Эта кнопка от старого сообщения; спросите ещё раз, пожалуйста.",
    },
    "not_yours": {
        "en": "This button belongs to someone else's message.",
        "ru": "Эта кнопка относится к чужому сообщению.",
    },
    "error": {
        "en": "Sorry, something went wrong on my side. Please try again in a minute.",
        "ru": "Извините, у меня что-то сломалось. Попробуйте ещё раз через минуту.",
    },
    "user_error": {"en": "Could not do that: {msg}", "ru": "Не получилось: {msg}"},
    "crosspost_usage": {
        "en": "Send /crosspost with a post link (t.me/channel/123), or forward a channel post to me, "
        "or write /crosspost followed by the text.",
        "ru": "Пришлите /crosspost со ссылкой на пост (t.me/channel/123), перешлите мне пост канала "
        "или напишите /crosspost и текст.",
    },
    "forward_private": {
        "en": "This was forwarded from a private chat, so I cannot find it in the corpus. Ask me a question, "
        "or send /crosspost with the text to convert it.",
        "ru": "Это переслано из личного чата, и найти его в корпусе я не могу. Задайте вопрос или пришлите "
        "/crosspost с текстом, чтобы переделать его.",
    },
    "crosspost_header": {
        "en": "{network}: {count} part(s), limit {limit}{translated}",
        "ru": "{network}: частей {count}, лимит {limit}{translated}",
    },
    "translated_mark": {"en": ", translated", "ru": ", переведено"},
    "not_translated_mark": {"en": ", not translated", "ru": ", без перевода"},
    "btn_thread": {"en": "🧵 As separate messages", "ru": "🧵 Отдельными сообщениями"},
    "btn_retranslate": {"en": "🌐 Re-translate", "ru": "🌐 Перевести заново"},
    "crosspost_working": {"en": "Converting…", "ru": "Переделываю…"},
    # --- admin ------------------------------------------------------------------------------
    "admin_only": {
        "en": "Sorry, only the bot's admins can do that.",
        "ru": "Извините, это могут только администраторы бота.",
    },
    "reingest_running": {
        "en": "A re-ingest is already running; I will post its summary when it ends.",
        "ru": "Переиндексация уже идёт; итог будет, когда она закончится.",
    },
    "reingest_start": {"en": "Re-ingest: starting…", "ru": "Переиндексация: начинаю…"},
    "reingest_progress": {
        "en": "Re-ingest: {done}/{total} sources…\n{location}",
        "ru": "Переиндексация: {done}/{total} источников…\n{location}",
    },
    "reingest_done": {
        "en": "Re-ingest done: {summary}.{errors}",
        "ru": "Переиндексация готова: {summary}.{errors}",
    },
    "reingest_errors": {"en": "\nSkipped sources:\n{lines}", "ru": "\nПропущенные источники:\n{lines}"},
    "no_sources": {
        "en": "No sources yet: send me a result.json export or a PDF.",
        "ru": "Источников пока нет: пришлите мне экспорт result.json или PDF.",
    },
    "watch_done": {
        "en": "Watching {name} ({id}): its new and edited posts will be indexed.",
        "ru": "Слежу за {name} ({id}): новые и изменённые посты попадут в индекс.",
    },
    "watch_usage": {
        "en": "Write /watch @channel (or its numeric id), or reply /watch to a post forwarded from the "
        "channel. The bot must be a member of the channel.",
        "ru": "Напишите /watch @канал (или его числовой id) или ответьте /watch на пост, пересланный из "
        "канала. Бот должен состоять в канале.",
    },
    "watch_list": {"en": "Watched channels:\n{lines}", "ru": "Отслеживаемые каналы:\n{lines}"},
    "unwatch_done": {"en": "No longer watching {name}.", "ru": "Больше не слежу за {name}."},
    "unwatch_none": {"en": "{name} was not watched.", "ru": "За {name} я и не следил."},
    "reindex_start": {"en": "Rebuilding the indexes…", "ru": "Перестраиваю индексы…"},
    "reindex_done": {"en": "Indexes rebuilt.", "ru": "Индексы перестроены."},
    "stats": {
        "en": "Channels {channels}, posts {posts}, papers {papers}, chunks {chunks}.",
        "ru": "Каналов {channels}, постов {posts}, статей {papers}, фрагментов {chunks}.",
    },
    "sources_list": {"en": "Sources ({n}):\n{lines}", "ru": "Источники ({n}):\n{lines}"},
    "file_received": {"en": "Got {name}, ingesting…", "ru": "Получил {name}, добавляю…"},
    "file_done": {"en": "{name}: {summary}.", "ru": "{name}: {summary}."},
    "file_kind": {
        "en": "Send a Telegram export (result.json) or a PDF paper.",
        "ru": "Пришлите экспорт Telegram (result.json) или PDF статьи.",
    },
    "file_too_big": {
        "en": "The file is too big for the Bot API download limit (20 MB).",
        "ru": "Файл больше лимита скачивания Bot API (20 МБ).",
    },
    "file_not_admin": {
        "en": "Only admins can add files to the corpus. Ask me a question instead.",
        "ru": "Добавлять файлы в корпус могут только админы. Задайте мне вопрос.",
    },
}


def lang_of(user: User | None) -> str:
    """'ru' or 'en' from a Telegram user."""
    code = ((user.language_code if user is not None else None) or "").lower()
    return "ru" if code.split("-")[0] in RU_CODES else "en"


def t(lang: str, key: str, **values: Any) -> str:
    entry = TEXTS[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text
