"""A local Bot API emulator: an aiohttp server on 127.0.0.1 that the real bot talks HTTP to.

Implements getMe, getUpdates (scripted updates, long polling), sendMessage, editMessageText,
sendChatAction, answerCallbackQuery, getFile + file download, sendMessageDraft, deleteWebhook,
setWebhook, getChat (chats the emulator has seen, by id or @username).
Every request is recorded (method, decoded params, monotonic time) so tests check real traffic.
`fail(method, retry_after=...)` scripts 429 answers; `drafts=False` answers sendMessageDraft with
404 like a Bot API server that predates it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Research", "username": "research_test_bot"}
GIFTS = dict.fromkeys(
    ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels"), False
)
RAW_FIELDS = {"text", "caption", "callback_query_id", "draft_id_raw"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class Emulator:
    token: str = "123456:TEST-token"
    drafts: bool = True
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    base_url: str = ""
    closing: bool = False

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._incoming_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._chats: dict[int, dict[str, Any]] = {}
        self.last_update_id = 0  # the newest pushed update
        self.acked = 0  # the newest update the bot has fetched (getUpdates offset - 1)

    # --- server -------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- scripting ----------------------------------------------------------------------------
    def fail(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend(
            [
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
            ]
            * times
        )

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.last_update_id = update["update_id"]
        self._updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return update

    def chat(self, chat_id: int, kind: str = "private", **extra: Any) -> dict[str, Any]:
        chat = {"id": chat_id, "type": kind, **extra}
        if kind == "private":
            chat.setdefault("first_name", f"user{chat_id}")
        else:
            chat.setdefault("title", f"chat {chat_id}")
        self._chats[chat_id] = chat
        return chat

    def message(
        self,
        text: str | None = None,
        *,
        user_id: int = 1,
        chat_id: int | None = None,
        chat_type: str = "private",
        lang: str = "en",
        **extra: Any,
    ) -> dict[str, Any]:
        """An incoming user message update (pushed); returns the message dict."""
        chat_id = chat_id if chat_id is not None else user_id
        message = {
            "message_id": next(self._incoming_ids),
            "date": int(time.time()),
            "chat": self._chats.get(chat_id) or self.chat(chat_id, chat_type),
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}", "language_code": lang},
            **extra,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": len(command)},
                    *extra.get("entities", []),
                ]
        self.push({"message": message})
        return message

    def channel_post(
        self,
        channel: str,
        message_id: int,
        text: str,
        *,
        edited: bool = False,
        chat_id: int | None = None,
        username: str | None = "",
        **extra: Any,
    ) -> dict[str, Any]:
        """A post of channel `channel` (its title; also its username unless `username` is given, None
        for a channel without one); the chat id is stable per title unless `chat_id` is given."""
        chat = {
            "id": chat_id if chat_id is not None else -1001000000000 - zlib.crc32(channel.encode()) % 10**9,
            "type": "channel",
            "title": channel,
        }
        if username is not None:
            chat["username"] = username or channel
        self._chats[chat["id"]] = chat
        post = {
            "message_id": message_id,
            "date": int(time.time()),
            "text": text,
            "chat": chat,
            **extra,
        }
        if edited:
            post["edit_date"] = int(time.time())
        self.push({"edited_channel_post" if edited else "channel_post": post})
        return post

    def document(self, data: bytes, file_name: str, mime_type: str) -> dict[str, Any]:
        file_id = f"file{len(self.files) + 1}"
        self.files[file_id] = data
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(data),
        }

    def press(self, message: dict[str, Any], data: str, *, user_id: int = 1, lang: str = "en") -> None:
        """A callback query: the user presses a button with `data` under the bot's `message`."""
        self.push(
            {
                "callback_query": {
                    "id": f"cq{next(self._update_ids)}",
                    "chat_instance": "ci",
                    "data": data,
                    "message": message,
                    "from": {
                        "id": user_id,
                        "is_bot": False,
                        "first_name": f"user{user_id}",
                        "language_code": lang,
                    },
                }
            }
        )

    # --- inspection ---------------------------------------------------------------------------
    def sent(self, method: str | None = None, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method)
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    async def wait_for(self, predicate, timeout: float = 15.0) -> Any:
        """Wait until `predicate()` returns something truthy (checked after every request)."""

        async def _wait() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, as they are now (after edits), in send order."""
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id]

    # --- handlers -----------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            value = value if isinstance(value, str) else value.file.read().decode()
            if key in RAW_FIELDS:
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except (ValueError, TypeError):
                params[key] = value
        return params

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, time.monotonic())
        scripted = self.failures.get(method)
        if scripted:
            body = scripted.pop(0)
            call.status = body["error_code"]
            self.calls.append(call)
            await self._notify()
            return web.json_response(body, status=body["error_code"])
        if method == "getUpdates":
            result: Any = await self._get_updates(params)
        else:
            self.calls.append(call)
            handler = getattr(self, "_m_" + method, None)
            if handler is None or (method == "sendMessageDraft" and not self.drafts):
                call.status = 404
                await self._notify()
                return web.json_response(
                    {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
                )
            try:
                result = handler(params)
            except _ApiError as exc:
                call.status = 400
                await self._notify()
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": str(exc)}, status=400
                )
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        self.acked = max(self.acked, offset - 1)  # the bot confirmed it has every update up to here
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 2.0)  # short polls keep test shutdown fast
        while True:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if self._updates or time.monotonic() >= deadline or self.closing:
                return self._updates[:100]
            await asyncio.sleep(0.02)

    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if request.match_info["token"] != self.token or file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def _m_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = params.get("chat_id")
        for chat in self._chats.values():
            if ref in (chat["id"], str(chat["id"])) or (
                isinstance(ref, str) and ref.lstrip("@").lower() == str(chat.get("username", "")).lower()
            ):
                return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": GIFTS}
        raise _ApiError("Bad Request: chat not found")

    def _m_sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_sendMessageDraft(self, params: dict[str, Any]) -> bool:
        if not params.get("draft_id"):
            raise _ApiError("Bad Request: draft_id must be non-zero")
        return True

    def _m_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise _ApiError("Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"documents/{file_id}",
        }

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = params.get("text", "")
        if not text.strip():
            raise _ApiError("Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError("Bad Request: message is too long")
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "from": BOT_USER,
            "chat": self._chats.get(chat_id)
            or {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "text": text,
            "parse_mode": params.get("parse_mode"),
        }
        reply = params.get("reply_parameters") or {}
        if params.get("reply_to_message_id") or reply.get("message_id"):
            message["reply_to_message_id"] = params.get("reply_to_message_id") or reply.get("message_id")
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return _public(message)

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise _ApiError("Bad Request: message to edit not found")
        text = params.get("text", "")
        if len(text) > 4096:
            raise _ApiError("Bad Request: MESSAGE_TOO_LONG")
        markup = params.get("reply_markup")
        if text == message["text"] and markup == message.get("reply_markup"):
            raise _ApiError("Bad Request: message is not modified")
        message.update(text=text, parse_mode=params.get("parse_mode"), edited=message.get("edited", 0) + 1)
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return _public(message)


class _ApiError(Exception):
    pass


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """The Message object as the Bot API returns it (our bookkeeping keys removed)."""
    return {k: v for k, v in message.items() if k not in {"parse_mode", "edited", "reply_to_message_id"}}
