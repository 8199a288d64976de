"""From a validated request body to the engine's rows: every check that needs the model happens here, before
any work, and fails as a 400 naming the parameter.

Budgets, per kind of model (docs/serve.md):

* ``thinking_token_budget`` (vLLM's name): a token reasoner (cot, icot, a Hugging Face reasoner) runs the
  ``budget`` exit policy with that budget (s1: at most N thinking tokens, then the end of thinking and the
  answer cue are forced; with ``ponder.exit: trim`` it is trim's budget); a latent model (CoLaR) takes at most
  N latent steps. Models whose thinking has no length to cut (No-CoT, Coconut, CODI) ignore it.
* ``reasoning_effort``: a budget from ``EFFORT``; ``thinking_token_budget`` wins when both are given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ponder.arguments import ExitConfig
from ponder.errors import PonderError
from ponder.serve.protocol import EXIT_FIELDS, APIError, ChatCompletionRequest, CompletionRequest

# reasoning_effort -> thinking budget: thinking tokens for token reasoners, latent steps for latent models.
# None: no budget (the model ends its thinking itself, within max_tokens / the server's --max-latent-steps).
EFFORT = {
    "tokens": {"low": 1024, "medium": 4096, "high": None},
    "latent": {"low": 8, "medium": 24, "high": None},
}


@dataclass
class Plan:
    """What one HTTP request asks of the engine: its rows (engine ``Request`` keyword arguments, one per
    choice) and what the response needs to render them."""

    rows: list[dict]
    raw: bool  # /v1/completions: plain continuation of prompt ids
    speed: int | str | None = None
    exit: ExitConfig | None = None
    stop: list[str] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # per prompt (a completions request may have several)
    prompt_of_row: list[int] = field(default_factory=list)
    prompt_texts: list[str] = field(default_factory=list)  # echo
    logprobs: bool = False
    echo: bool = False
    return_token_ids: bool = False

    @property
    def exit_label(self) -> str:
        return self.exit.label if self.exit is not None else "none"


# -- the parts both endpoints share ---------------------------------------------------------------------
def _param_of(message: str, names: dict[str, str]) -> str | None:
    """The request parameter a ``PonderError`` is about, from the ``--option`` its message names."""
    m = re.search(r"--([a-z][a-z-]*)", message)
    return names.get(m.group(1).replace("-", "_")) if m else None


def _rename(message: str, names: dict[str, str]) -> str:
    return re.sub(r"--([a-z][a-z-]*)", lambda m: names.get(m.group(1).replace("-", "_"), m.group(0)), message)


PARAM_NAMES = {"speed": "ponder.speed", "max_new_tokens": "max_tokens", "max_latent_steps": "ponder.max_latent_steps",
               "top_p": "top_p", **{f: f"ponder.{f}" for f in EXIT_FIELDS}}


def bad_value(e: PonderError, default_param: str | None = None) -> APIError:
    """A ``PonderError`` (worded for the command line) as a 400 worded for the API."""
    message = str(e)
    param = _param_of(message, PARAM_NAMES) or default_param
    return APIError(400, _rename(message, PARAM_NAMES), param, "invalid_value")


def context_length(model) -> int | None:
    """The most positions a request may use: the position table of models that have one (GPT-2), else the
    model's ``max_position_embeddings`` (vLLM's default ``max_model_len``); None when it has neither."""
    from ponder.model.positions import position_limit

    limit = position_limit(model) if hasattr(model, "lm") else None  # a Front (--upstream) has no weights
    return limit if limit is not None else getattr(model.config, "max_position_embeddings", None)


def _sampling(body, defaults) -> dict:
    return dict(temperature=body.temperature if body.temperature is not None else 0.0,
                top_p=body.top_p if body.top_p is not None else 1.0,
                latent_temperature=(body.ponder.latent_temperature if body.ponder is not None
                                    and body.ponder.latent_temperature is not None else 0.0))


def _stops(body) -> list[str]:
    stop = body.stop
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(s == "" for s in stops):
        raise APIError(400, "Invalid value for 'stop': stop strings must not be empty.", "stop", "invalid_value")
    return stops


def _budget(body, reasoning: str):
    if body.thinking_token_budget is not None:
        return body.thinking_token_budget, "thinking_token_budget"
    if body.reasoning_effort is not None:
        return EFFORT.get(reasoning, {}).get(body.reasoning_effort), "reasoning_effort"
    return None, None


def _exit(model, body) -> ExitConfig | None:
    """The request's exit policy: ``ponder.exit`` and its options, and a thinking budget as s1's policy."""
    st = model.settings
    given = {k: getattr(body.ponder, k) for k in EXIT_FIELDS if body.ponder is not None
             and getattr(body.ponder, k) is not None}
    budget, source = _budget(body, st.reasoning)
    if st.reasoning == "tokens" and budget is not None:
        policy = given.get("exit", "none")
        if policy in ("none", "budget"):
            given.update(exit="budget", budget=budget)
        elif policy == "trim":
            given["budget"] = budget
        else:
            raise APIError(400, f"Invalid value for '{source}': the exit policy ponder.exit='{policy}' takes no "
                                "thinking budget (use 'budget' or 'trim', or leave ponder.exit out).", source,
                           "invalid_value")
    if not given:
        return None
    try:
        config = ExitConfig(**given)
        if config.exit != "none":
            from ponder.inference.exits import check_model

            check_model(model)
    except PonderError as e:
        raise bad_value(e, "ponder.exit") from None
    return None if config.exit == "none" else config


def _fit(model, prompt_length: int, speed, max_tokens: int | None, max_latent_steps: int, exit, defaults, what: str):
    """(max_new_tokens, max_latent_steps) that fit the model's context, or a 400 like OpenAI's."""
    from ponder.model.positions import decoding_positions, fit_decoding_budget, probe_reserve

    st, limit = model.settings, context_length(model)
    new = max_tokens if max_tokens is not None else defaults.max_tokens
    if limit is not None:
        thinking = decoding_positions(st, prompt_length, speed, 0, max_latent_steps) - prompt_length
        reserve = probe_reserve(model, exit)
        if prompt_length + 1 > limit:
            raise APIError(400, f"This model's maximum context length is {limit} tokens. However, your {what} "
                                f"resulted in {prompt_length} tokens. Please reduce the length of the {what}.",
                           what, "context_length_exceeded")
        room = limit - prompt_length - thinking - reserve
        if max_tokens is None:
            new = max(1, min(new, room))
        elif max_tokens > room:
            raise APIError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                                f"{prompt_length + thinking + reserve + max_tokens} tokens ({prompt_length} in the "
                                f"{what}, {thinking + reserve} for the thinking, {max_tokens} in the completion). "
                                f"Please reduce the length of the {what} or completion.", "max_tokens",
                           "context_length_exceeded")
    if not hasattr(model, "lm"):  # a Front (--upstream): the upstream guards its own context
        return new, max_latent_steps
    try:
        return fit_decoding_budget(model, prompt_length, [speed], new, max_latent_steps,
                                   reserve=probe_reserve(model, exit), warn=False)
    except PonderError as e:
        raise APIError(400, str(e), what, "context_length_exceeded") from None


def _seeds(body) -> list[int | None]:
    return [None if body.seed is None else body.seed + i for i in range(body.n)]


# -- /v1/chat/completions ---------------------------------------------------------------------------------
def question_of(body: ChatCompletionRequest) -> str:
    """The question: one user message (ponder answers one question per request, no conversation)."""
    roles = [m.role for m in body.messages]
    if roles != ["user"]:
        raise APIError(400, f"ponder answers one question per request: send exactly one message, with role 'user' "
                            f"(got roles {roles}; system messages and multi-turn conversations are not supported).",
                       "messages", "unsupported_value")
    content = body.messages[0].content
    if content is None:
        raise APIError(400, "Missing required parameter: 'messages[0].content'.", "messages[0].content",
                       "missing_required_parameter")
    if isinstance(content, str):
        return content
    if any(p.type != "text" or p.text is None for p in content):
        raise APIError(400, "Invalid value for 'messages[0].content': only text parts are supported.",
                       "messages[0].content", "unsupported_value")
    return "".join(p.text for p in content)


def plan_chat(model, body: ChatCompletionRequest, defaults) -> Plan:
    st, tok = model.settings, model.tokenizer
    question = question_of(body)
    if body.top_logprobs:
        raise APIError(400, "Invalid value for 'top_logprobs': ponder returns each token's own logprob only "
                            "(top_logprobs must be 0).", "top_logprobs", "unsupported_value")
    if body.ponder is not None and body.ponder.max_latent_steps is not None and st.reasoning != "latent":
        raise APIError(400, f"Invalid value for 'ponder.max_latent_steps': a {st.method} model takes no latent "
                            "steps.", "ponder.max_latent_steps", "unsupported_value")
    from ponder.inference.engine import check_speed

    try:
        speed = check_speed(st, body.ponder.speed if body.ponder is not None else None)
    except PonderError as e:
        raise bad_value(e, "ponder.speed") from None
    exit = _exit(model, body)
    steps = body.ponder.max_latent_steps if body.ponder is not None and body.ponder.max_latent_steps is not None \
        else defaults.max_latent_steps
    budget, _ = _budget(body, st.reasoning)
    if st.reasoning == "latent" and budget is not None:
        steps = min(steps, budget)
    prompt = st.layout.generation_prompt(tok, question, speed, think=st.reasoning != "none")
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    new, steps = _fit(model, len(prompt), speed, max_tokens, steps, exit, defaults, "messages")
    stop = _stops(body)
    common = dict(question=question, speed=speed, max_new_tokens=new, max_latent_steps=steps, stop=stop, exit=exit,
                  logprobs=bool(body.logprobs), **_sampling(body, defaults))
    return Plan(rows=[dict(common, seed=s) for s in _seeds(body)], raw=False, speed=speed, exit=exit, stop=stop,
                prompt_tokens=[len(prompt)], prompt_of_row=[0] * body.n, logprobs=bool(body.logprobs))


# -- /v1/completions --------------------------------------------------------------------------------------
def plan_completion(model, body: CompletionRequest, defaults) -> Plan:
    tok = model.tokenizer
    if body.suffix is not None:
        raise APIError(400, "Invalid value for 'suffix': not supported.", "suffix", "unsupported_value")
    if body.best_of is not None and body.best_of != body.n:
        raise APIError(400, "Invalid value for 'best_of': only best_of = n is supported.", "best_of",
                       "unsupported_value")
    p = body.ponder
    if p is not None:
        given = [k for k in ("speed", "max_latent_steps", "latent_temperature", *EXIT_FIELDS) if getattr(p, k) is not None]
        if given:
            raise APIError(400, f"Invalid value for 'ponder.{given[0]}': /v1/completions continues the prompt as "
                                "plain text, with no thinking phase; ask through /v1/chat/completions to set the "
                                "thinking.", f"ponder.{given[0]}", "unsupported_value")
    prompts = body.prompt
    if isinstance(prompts, str):
        prompts = [prompts]
    elif prompts and isinstance(prompts[0], int):
        prompts = [prompts]
    if not prompts:
        raise APIError(400, "Invalid value for 'prompt': empty.", "prompt", "invalid_value")
    ids = []
    for p in prompts:
        one = tok(p)["input_ids"] if isinstance(p, str) else list(p)
        if not one:
            raise APIError(400, "Invalid value for 'prompt': empty.", "prompt", "invalid_value")
        bad = [i for i in one if not 0 <= i < len(tok)]
        if bad:
            raise APIError(400, f"Invalid value for 'prompt': token id {bad[0]} is not in the vocabulary "
                                f"(0..{len(tok) - 1}).", "prompt", "invalid_value")
        ids.append(one)
    stop = _stops(body)
    sampling = _sampling(body, defaults)
    rows, of_row = [], []
    for k, one in enumerate(ids):
        new, _ = _fit(model, len(one), None, body.max_tokens, 0, None, defaults, "prompt")
        for s in _seeds(body):
            rows.append(dict(prompt_ids=one, max_new_tokens=new, stop=stop, logprobs=body.logprobs is not None,
                             seed=s, **sampling))
            of_row.append(k)
    texts = [p if isinstance(p, str) else tok.decode(i) for p, i in zip(prompts, ids)] if body.echo else []
    return Plan(rows=rows, raw=True, stop=stop, prompt_tokens=[len(i) for i in ids], prompt_of_row=of_row,
                prompt_texts=texts, logprobs=body.logprobs is not None, echo=body.echo,
                return_token_ids=body.return_token_ids)
