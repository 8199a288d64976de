"""The wire format: OpenAI's request and response bodies as pydantic models, and its error JSON.

Requests are validated strictly (a string where a number belongs is a 400 naming the field, as OpenAI's API
answers); fields ponder does not know are ignored, as OpenAI-compatible servers do, except inside the
namespaced ``ponder`` object, where a typo is an error. ponder's additions: ``thinking_token_budget``
(vLLM's name), ``reasoning_effort`` and ``ponder: {speed, max_latent_steps, latent_temperature, exit, ...}``
(``ExitConfig``'s fields, generated from the dataclass so the API and the command line cannot drift apart).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ponder.arguments import ExitConfig

# ExitConfig fields a client may not set: a verifier is a model the server would load from a path or hub id.
SERVER_ONLY = ("verifier",)


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


def _ponder_options() -> type[BaseModel]:
    hints = typing.get_type_hints(ExitConfig)
    exit_fields = {f.name: (Optional[hints[f.name]], None) for f in dataclasses.fields(ExitConfig)
                   if f.name not in SERVER_ONLY}
    return create_model(
        "PonderOptions", __config__=ConfigDict(strict=True, extra="forbid"),
        speed=(Optional[Union[int, str]], None),
        max_latent_steps=(Optional[int], Field(None, ge=0)),
        latent_temperature=(Optional[float], Field(None, ge=0)),
        **exit_fields)


PonderOptions = _ponder_options()
EXIT_FIELDS = tuple(f.name for f in dataclasses.fields(ExitConfig) if f.name not in SERVER_ONLY)


class ContentPart(_Body):
    type: str
    text: Optional[str] = None


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Optional[Union[str, list[ContentPart]]] = None


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    """What both endpoints take."""

    model: str
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    seed: Optional[int] = None
    stop: Optional[Union[str, list[str]]] = None
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    thinking_token_budget: Optional[int] = Field(None, ge=0)
    reasoning_effort: Optional[Literal["low", "medium", "high"]] = None
    ponder: Optional[PonderOptions] = None  # type: ignore[valid-type]


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    logprobs: Optional[int] = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: Optional[str] = None
    best_of: Optional[int] = Field(None, ge=1)
    return_token_ids: bool = False  # vLLM's: each choice also lists the ids it decoded (exit policies upstream)


# -- errors ------------------------------------------------------------------------------------------
class APIError(Exception):
    """An error answered as OpenAI's JSON: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


_FIELDS = {name for m in (ChatCompletionRequest, CompletionRequest, ChatMessage, ContentPart, StreamOptions,
                          PonderOptions) for name in m.model_fields}


def validation_error(e: ValidationError) -> APIError:
    """The first problem of a request body, as a 400 naming its parameter (``messages[0].role``, ``ponder.speed``)."""
    err = e.errors()[0]
    param = ""
    for k, part in enumerate(err["loc"]):
        if isinstance(part, int):
            param += f"[{part}]"
        elif part in _FIELDS or (err["type"] == "extra_forbidden" and k == len(err["loc"]) - 1):
            param += ("." if param else "") + part
    param = param or None
    if err["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif err["type"] == "extra_forbidden":
        message = f"Unrecognized parameter: '{param}' (ponder's options: {', '.join(PonderOptions.model_fields)})."
    else:
        message = f"Invalid value for '{param}': {err['msg'][0].lower() + err['msg'][1:]}, got {_short(err.get('input'))}."
    code = {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter"}.get(
        err["type"], "invalid_type" if err["type"].endswith("_type") else "invalid_value")
    return APIError(400, message, param, code)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- responses ---------------------------------------------------------------------------------------
class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails = Field(default_factory=CompletionTokensDetails)


class PonderInfo(BaseModel):
    """How a choice was decoded: thinking speed, why its thinking ended, what it cost."""

    speed: Optional[Union[int, str]] = None
    exit: str = "none"  # the exit policy (``budget:N`` with its budget)
    exit_reason: Optional[str] = None  # model, length, eos, or the policy that ended the thinking
    thinking_tokens: int = 0
    latent_steps: int = 0
    probe_tokens: int = 0
    latency_s: float = 0.0


class ChatMessageOut(BaseModel):
    role: str = "assistant"
    content: Optional[str] = None
    reasoning_content: Optional[str] = None
    reasoning: Optional[str] = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: Optional[dict] = None
    finish_reason: Optional[str] = None
    ponder: Optional[PonderInfo] = None


class ChatCompletion(BaseModel):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    ponder: Optional[PonderInfo] = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: Optional[dict] = None
    finish_reason: Optional[str] = None
    stop_reason: Optional[str] = None  # vLLM's: the stop string that ended it (None: <eos> or the length)
    token_ids: Optional[list[int]] = None  # with return_token_ids (vLLM's)
    ponder: Optional[PonderInfo] = None


class Completion(BaseModel):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    ponder: Optional[PonderInfo] = None


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "ponder"
    ponder: dict = Field(default_factory=dict)  # method, reasoning, speeds


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]
