"""Generation engine: KV cache, prefill/decode, sampling and continuous batching.

Boundary: the engine sees token ids, sampling settings and a model; text appears only through the
optional `TextStream` (stop strings). It knows nothing about HTTP: the server submits requests with
a callback and receives `Event`s from the engine thread.

Scheduling (continuous batching, as in Orca, Yu et al. OSDI'22): one loop; each iteration admits
waiting requests into free cache slots, runs ONE batched decode step for every request that has
started answering, then prefills waiting prompts up to `prefill_chunk` tokens (a long prompt takes
several steps, so running streams are never held up by a whole prompt). Finished or cancelled
requests leave between steps and free their slot. The KV cache is preallocated: `max_batch` slots
of `max_context` positions, so memory is fixed at start; requests beyond the slots wait in a queue
of at most `max_queue`, beyond that `submit` refuses with `QueueFullError`.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from inference.cuda_graphs import DecodeGraphs
from inference.errors import InferenceError
from inference.model import KVView, ModelConfig, Transformer
from inference.sampling import SamplingParams, TokenLogprob, logprobs_of, sample_batch
from inference.tokenizer import ChatTokenizer, TextStream

log = logging.getLogger(__name__)


# prompt tokens per pass when a prompt is scored: its logits at every position, 256 x 152k fp32
# (~150 MB plus the log-softmax), instead of whole prompts' worth
SCORING_CHUNK = 256


class QueueFullError(InferenceError):
    """Every cache slot is busy and the wait queue is full; retry later."""


class ContextLengthError(InferenceError):
    """The prompt does not fit the context limit. Worded as OpenAI words it: LiteLLM recognises an
    overflow by "maximum context length" in the message (the server adds the code LangChain looks for)."""


class EmptyPromptError(InferenceError):
    """A prompt of no tokens: nothing to continue from (not a context-length problem)."""


@dataclass
class Event:
    """What a request produced in one step: new text/ids, and a finish reason on the last one."""

    text: str
    token_ids: list[int]
    finish_reason: str | None  # "stop", "length", "cancelled", "error"
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None  # one per token in token_ids, when asked for
    cached_tokens: int = 0  # leading prompt tokens whose keys/values were reused, not computed


@dataclass
class EngineConfig:
    max_batch: int = 8  # KV cache slots = requests decoded together
    max_context: int = 2048  # positions per slot (prompt + completion)
    max_queue: int = 64  # requests allowed to wait for a slot
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    # replay the decode step as CUDA graphs (CUDA with an in-place decode attention only): a step at
    # 8B shapes launches ~1,500 kernels, and launching them one by one from Python cost more than
    # the kernels themselves on an H100
    cuda_graphs: bool = True
    # prompt tokens prefilled per step, across requests (0: whole prompts at once). A long prompt is
    # split over several steps, interleaved with the running requests' decode steps, so their next
    # tokens wait for one chunk instead of the whole prompt (chunked prefill, Agrawal et al.,
    # Sarathi, arXiv:2308.16369)
    prefill_chunk: int = 512
    # reuse the keys/values a free slot kept from its last request when a new prompt starts with the
    # same >= prefix_reuse_min tokens (a shared system prompt, the earlier turns of a chat); 0: off
    prefix_reuse_min: int = 16


@dataclass(eq=False)
class Request:
    id: int
    prompt_ids: list[int]
    params: SamplingParams
    callback: Callable[[Event], None]
    stream: TextStream | None
    max_new: int
    generator: torch.Generator
    slot: int = -1
    prefilled: int = 0  # prompt tokens already in the cache (chunked prefill, reused prefix)
    cached_tokens: int = 0  # leading prompt tokens found in the slot's kept cache (prefix reuse)
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)  # when scoring the prompt
    output: list[int] = field(default_factory=list)
    cancelled: bool = False
    finish_reason: str | None = None
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None


def kv_cache_bytes(cfg: ModelConfig, slots: int, positions: int, dtype: torch.dtype) -> int:
    per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * torch.finfo(dtype).bits // 8
    return per_token * slots * positions


class KVCache:
    """Per layer K and V of shape (slots, Hkv, max_context, D), allocated once.

    `k_mean` (per layer (slots, Hkv, D) float32) is kept for attention backends that decode in place
    (they smooth K with each slot's prompt mean). `scratch` slots beyond `slots` belong to no request:
    CUDA graphs pad a batch up to a captured size with rows that write there.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        slots: int,
        positions: int,
        device: str,
        dtype: torch.dtype,
        *,
        k_mean: bool = False,
        scratch: int = 0,
    ):
        shape = (slots + scratch, cfg.num_kv_heads, positions, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)]
        mean_shape = (slots + scratch, cfg.num_kv_heads, cfg.head_dim)
        self.k_mean = (
            [torch.zeros(mean_shape, device=device, dtype=torch.float32) for _ in range(cfg.num_layers)]
            if k_mean
            else None
        )
        self.free = list(range(slots))  # oldest freed first
        # tokens whose keys/values a free slot still holds, from the request that last used it
        self.kept: dict[int, list[int]] = {}
        self.scratch_slot = slots if scratch else None
        self.device = device

    def take(self, prompt: list[int], min_reuse: int) -> tuple[int, int]:
        """A free slot for `prompt` and how many of its leading tokens are already cached there:
        the slot holding the longest common prefix (at least min_reuse tokens, at most all but the
        last prompt token, whose logits are needed), else the slot freed longest ago."""
        best, reused = self.free[0], 0
        if min_reuse > 0:
            for slot in self.free:
                n = _common_prefix(self.kept.get(slot, ()), prompt, len(prompt) - 1)
                if n >= min_reuse and n > reused:
                    best, reused = slot, n
        self.free.remove(best)
        self.kept.pop(best, None)
        return best, reused

    def release(self, slot: int, tokens: list[int]) -> None:
        """Slot back to the free list, remembering which tokens' keys/values it holds."""
        self.free.append(slot)
        self.kept[slot] = tokens

    def prefill_view(self, slot: int, start: int, n: int, *, first: bool) -> KVView:
        """n prompt tokens of one request written from position `start` of its slot; `first`: the
        request's first prefill pass (see KVView.fresh_mean)."""
        view = self._view([slot], [start], [start + n], host=True)
        view.fresh_mean = first
        return view

    def decode_view(self, slots: list[int], positions: list[int], *, host: bool) -> KVView:
        """One new token per row at `positions`; host=False leaves out the host ints (in-place decode)."""
        return self._view(slots, positions, [p + 1 for p in positions], host=host)

    def _view(self, slots: list[int], start: list[int], lens: list[int], *, host: bool) -> KVView:
        as_t = lambda xs: torch.tensor(xs, device=self.device, dtype=torch.long)  # noqa: E731
        view = KVView(self.k, self.v, as_t(slots), as_t(start), as_t(lens), k_mean=self.k_mean)
        if host:
            view.host_slots, view.host_start, view.kmax = slots, start, max(lens)
        return view


def _common_prefix(a, b, limit: int) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if n >= limit or x != y:
            break
        n += 1
    return n


class Engine:
    def __init__(self, model: Transformer, tokenizer: ChatTokenizer | None, config: EngineConfig):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.decode_in_place = getattr(model.attn_fn, "decode", None) is not None
        use_graphs = config.cuda_graphs and self.decode_in_place and config.device.startswith("cuda")
        self.cache = KVCache(
            model.cfg,
            config.max_batch,
            config.max_context,
            config.device,
            config.dtype,
            k_mean=self.decode_in_place,
            scratch=1 if use_graphs else 0,
        )
        self.graphs: DecodeGraphs | None = None
        if use_graphs:
            self.graphs = DecodeGraphs.capture_or_none(model, self.cache, config.max_batch)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self.counters = {"completed": 0, "cancelled": 0, "rejected": 0, "cached_prompt_tokens": 0}

    # ---- API used by the server (any thread) -------------------------------------------------
    def submit(
        self, prompt_ids: list[int], params: SamplingParams, callback: Callable[[Event], None]
    ) -> Request:
        n = len(prompt_ids)
        if n == 0:
            raise EmptyPromptError("the prompt is empty: it encodes to no tokens")
        if n >= self.config.max_context:
            asked = f" and {params.max_tokens} in the completion" if params.max_tokens else ""
            raise ContextLengthError(
                f"This model's maximum context length is {self.config.max_context} tokens. However, you "
                f"requested {n + (params.max_tokens or 0)} tokens ({n} in the prompt{asked}). Please reduce "
                "the length of the prompt."
            )
        limit = self.config.max_context - n
        max_new = limit if params.max_tokens is None else min(params.max_tokens, limit)
        # unseeded requests draw a fresh seed; torch.seed() would reseed the process-wide generator
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        gen = torch.Generator().manual_seed(int(seed))
        stream = self.tokenizer.stream(prompt_ids, params.stop) if self.tokenizer else None
        req = Request(next(self._ids), list(prompt_ids), params, callback, stream, max_new, gen)
        with self._cond:
            # free slots absorb waiting requests at the next step, so they count on top of max_queue
            if len(self.waiting) >= self.config.max_queue + len(self.cache.free):
                self.counters["rejected"] += 1
                raise QueueFullError(
                    f"server busy: {len(self.running)} requests running and {len(self.waiting)} waiting "
                    f"(max_queue {self.config.max_queue}); retry later"
                )
            self.waiting.append(req)
            self._cond.notify()
        return req

    def cancel(self, req: Request) -> None:
        """Stop a request (client gone); its slot is freed before the next decode step."""
        with self._cond:
            if req.finish_reason is None:
                req.cancelled = True
                self._cond.notify()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "running": len(self.running),
                "prefilling": sum(1 for r in self.running if not r.output),
                "waiting": len(self.waiting),
                "free_slots": len(self.cache.free),
                "max_batch": self.config.max_batch,
                "max_queue": self.config.max_queue,
                "max_context": self.config.max_context,
                **self.counters,
            }

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread:
            self._thread.join(timeout=10)

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> tuple[list[int], str, str]:
        """Synchronous helper for scripts and tests when no engine thread runs: (ids, text, finish)."""
        events: list[Event] = []
        self.submit(prompt_ids, params, events.append)
        while not events or events[-1].finish_reason is None:
            self.step()
        ids = [t for e in events for t in e.token_ids]
        return ids, "".join(e.text for e in events), events[-1].finish_reason or ""

    # ---- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self.waiting and not self.running:
                    self._cond.wait()
                if self._stop:
                    return
            try:
                self.step()
            except Exception:  # a bug must not hang every client: fail the running requests, keep serving
                log.exception("engine step failed")
                with self._cond:
                    for req in [*self.running]:
                        self._finish(req, "error")

    @torch.inference_mode()
    def step(self) -> None:
        """Admit and prefill waiting requests, then one decode step for all running ones."""
        with self._cond:
            for req in [r for r in self.running if r.cancelled]:
                self._finish(req, "cancelled")
            for req in [r for r in self.waiting if r.cancelled]:
                self.waiting.remove(req)
                self._finish(req, "cancelled")
            while self.waiting and self.cache.free:
                req = self.waiting.popleft()
                # scoring a prompt needs its logits at every position: compute it, never reuse it
                scoring = req.params.prompt_logprobs is not None
                reuse = 0 if scoring else self.config.prefix_reuse_min
                req.slot, reused = self.cache.take(req.prompt_ids, reuse)
                req.prefilled = req.cached_tokens = reused
                self.counters["cached_prompt_tokens"] += reused
                self.running.append(req)
        # requests already decoding take their step first; prompts then fill the token budget
        batch = [r for r in self.running if r.finish_reason is None and r.output]
        if batch:
            self._decode(batch)
        budget = self.config.prefill_chunk or None
        for req in [r for r in self.running if not r.output and r.finish_reason is None]:
            if budget is not None and budget <= 0:
                break
            done = self._prefill(req, budget)
            if budget is not None:
                budget -= done

    def _prefill(self, req: Request, budget: int | None) -> int:
        """Run the next chunk of req's prompt (all of it without a budget); after the last chunk,
        sample its first token. Returns the number of prompt tokens processed."""
        dev = self.config.device
        start, total = req.prefilled, len(req.prompt_ids)
        n = total - start if budget is None else min(total - start, budget)
        if req.params.prompt_logprobs is not None:  # its (n, vocab) logits are kept: bound them
            n = min(n, SCORING_CHUNK)
        ids = torch.tensor([req.prompt_ids[start : start + n]], device=dev)  # (1, n)
        kv = self.cache.prefill_view(req.slot, start, n, first=start == req.cached_tokens)
        positions = torch.arange(start, start + n, device=dev)[None]
        scoring = req.params.prompt_logprobs
        logits = self.model(ids, positions, kv, last_only=scoring is None)  # (1, 1 or n, V)
        if scoring is not None:
            if start == 0:  # nothing predicts the first token
                req.prompt_logprobs.append(TokenLogprob(req.prompt_ids[0], None, []))
            following = req.prompt_ids[start + 1 : start + n + 1]  # logits at i predict token i + 1
            if following:
                ks = [scoring] * len(following)
                req.prompt_logprobs.extend(logprobs_of(logits[0, : len(following)], following, ks))
        req.prefilled = start + n
        if req.prefilled == total:
            self._sample_and_emit([req], logits[:, -1])
        return n

    def _decode(self, batch: list[Request]) -> None:
        dev = self.config.device
        # in slot order: a full batch then covers slots 0..B-1 and the torch path reads a cache view
        batch = sorted(batch, key=lambda r: r.slot)
        pos = [len(r.prompt_ids) + len(r.output) - 1 for r in batch]  # position of each last token
        last = [r.output[-1] for r in batch]
        slots = [r.slot for r in batch]
        if self.graphs is not None:
            logits = self.graphs.run(last, pos, slots)  # (B, V)
        else:
            ids = torch.tensor([[t] for t in last], device=dev)  # (B, 1)
            kv = self.cache.decode_view(slots, pos, host=not self.decode_in_place)
            logits = self.model(ids, torch.tensor(pos, device=dev)[:, None], kv)[:, -1]  # (B, V)
        self._sample_and_emit(batch, logits)

    def _sample_and_emit(self, batch: list[Request], logits: torch.Tensor) -> None:
        """logits (B, V) where the model left them; one small device->host copy for the whole batch."""
        params = [r.params for r in batch]
        tokens, logprobs = sample_batch(logits, params, [r.generator for r in batch])
        for req, token, lp in zip(batch, tokens, logprobs, strict=True):
            self._emit(req, token, lp)

    def _emit(self, req: Request, token: int, logprob: TokenLogprob | None) -> None:
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
        req.output.append(token)
        stop_ids = (
            self.tokenizer.stop_token_ids if self.tokenizer else frozenset(self.model.cfg.eos_token_ids)
        )
        finish = None
        text = ""
        if token in stop_ids or token in req.params.stop_token_ids:
            finish = "stop"
        elif req.stream is not None:
            text = req.stream.push(token)
            if req.stream.stopped:
                finish = "stop"
        if finish is None and len(req.output) >= req.max_new:
            finish = "length"
        if finish is not None and req.stream is not None:
            text += req.stream.finish()
            if req.stream.matched_stop:  # the last token completed a stop string held back by the
                finish = "stop"  # detokenizer (a partial UTF-8 character): a stop, as OpenAI reports it
        logprobs = [logprob] if logprob is not None else None
        if req.params.prompt_logprobs is not None and len(req.output) == 1:
            logprobs = [*req.prompt_logprobs, *(logprobs or [])]  # the prompt's come first, once
        counts = (len(req.prompt_ids), len(req.output))
        req.callback(Event(text, [token], finish, *counts, logprobs, cached_tokens=req.cached_tokens))
        if finish is not None:
            with self._cond:
                self._finish(req, finish, notify=False)

    def _finish(self, req: Request, reason: str, notify: bool = True) -> None:
        """Caller holds the lock. Frees the slot; tells the client unless it already knows."""
        req.finish_reason = reason
        if req in self.running:
            self.running.remove(req)
            # valid keys/values: the prompt's prefilled part and every output token but the last
            # (sampled, never fed back through the model)
            kept = req.prompt_ids[: req.prefilled] + (req.output[:-1] if req.output else [])
            if reason == "error":  # a failed step may have left a half-written cache
                kept = []
            self.cache.release(req.slot, kept)
        self.counters["cancelled" if reason == "cancelled" else "completed"] += 1
        if notify:
            try:
                counts = (len(req.prompt_ids), len(req.output))
                req.callback(Event("", [], reason, *counts, cached_tokens=req.cached_tokens))
            except Exception:  # the client side may be gone already
                log.debug("callback failed for cancelled request %s", req.id, exc_info=True)
