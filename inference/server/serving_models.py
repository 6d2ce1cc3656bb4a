"""The served model's names: which `model` values a request may carry, and its model cards.

Boundary: names and `ModelCard`s; no engine calls beyond reading its context size.
"""

from __future__ import annotations

from inference.server.api_errors import APIError
from inference.server.loading import Served
from inference.server.protocol import ModelCard, ModelList


class ServingModels:
    def __init__(self, served: Served, aliases: tuple[str, ...]):
        self.name = served.name
        self.names = {served.name, *aliases}
        self.max_context = served.engine.config.max_context

    def check(self, model: str, param: str | None = "model") -> None:
        if model not in self.names:
            raise APIError(
                404,
                f"The model {model!r} does not exist; this server serves {self.name!r}",
                param=param,
                code="model_not_found",
            )

    def list(self) -> ModelList:
        return ModelList(data=[ModelCard(id=self.name, max_model_len=self.max_context)])

    def card(self, model_id: str) -> ModelCard:
        self.check(model_id, param=None)
        return ModelCard(id=model_id, max_model_len=self.max_context)
