"""Models with a bounded position table, and what a layout may ask of them.

Rotary models (Llama, Qwen, Mistral, Phi-3, Gemma) compute a position's encoding, so any position works
(however well the model extrapolates). Models with *learned absolute positions* (GPT-2's ``wpe``, GPT-Neo,
OPT, BioGPT) look positions up in a table of ``n_positions`` rows: one past its end is an ``IndexError``
deep inside the model. ponder's layouts can use more positions than they have tokens (CoLaR's stretched
positions advance c per latent step), so every entry point counts the positions it will use and checks them
here first: training before its first step, ``eval`` / ``ask`` before decoding (they clamp their decoding
budget to the table, see ``fit_decoding_budget``), CoLaR-RL before its first rollout.
"""

from __future__ import annotations

import re
import sys

from torch import nn

from ponder.errors import PonderError

# The names transformers gives a learned absolute position table: GPT-2 / GPT-Neo / GPT-BigCode ``wpe``,
# OPT / BioGPT ``embed_positions``, BERT-style ``position_embeddings``.
_TABLE_NAME = re.compile(r"^(wpe|embed_positions|position_embeddings)$")


def position_limit(model) -> int | None:
    """The positions a model can encode (positions 0 .. limit-1): the rows of its learned absolute position
    table (GPT-2: ``n_positions``), or None when positions are computed (rotary, ALiBi): no bound.

    ``model``: a ``PonderModel`` or a transformers model (peft-wrapped or not)."""
    lm = getattr(model, "lm", model)
    cached = getattr(model, "_position_limit", None)
    if cached is not None and cached[0] is lm:
        return cached[1]
    limit = None
    inputs = lm.get_input_embeddings()
    for name, module in lm.named_modules():
        if isinstance(module, nn.Embedding) and module is not inputs and _TABLE_NAME.match(name.rsplit(".", 1)[-1]):
            # OPT's table keeps 2 extra rows in front (``offset``): positions are looked up at p + offset.
            limit = module.num_embeddings - int(getattr(module, "offset", 0) or 0)
            break
    if lm is not model:
        model._position_limit = (lm, limit)  # a scan per training step is cheap, but once is enough
    return limit


def _table(model, limit: int) -> str:
    lm = getattr(model, "lm", model)
    kind = getattr(getattr(lm, "config", None), "model_type", None) or "this"
    name = "n_positions" if hasattr(getattr(lm, "config", None), "n_positions") else "max_position_embeddings"
    return f"{kind} model's position table ({limit} positions, {name} in config.json)"


def check_positions(model, needed: int, what: str, fix: str | None = None) -> None:
    """Raise a one-line ``PonderError`` when ``what`` needs more than ``model``'s position table holds.

    ``needed``: how many positions (0 .. needed-1) it uses; ``fix``: what to lower, e.g. "lower
    --max-new-tokens or --max-latent-steps". Models without a table (rotary) pass always."""
    limit = position_limit(model)
    if limit is None or needed <= limit:
        return
    raise PonderError(f"{what} needs {needed} positions, past the end of the {_table(model, limit)}"
                      + (f"; {fix}" if fix else ""))


def latent_stretch(settings, speed) -> int:
    """How far one latent step advances the position: c with ``stretched`` positions, else 1 (``auto`` too)."""
    if settings.reasoning != "latent" or speed in (None, "auto") or settings.latent_positions != "stretched":
        return 1
    return int(speed)


def decoding_positions(settings, prompt_length: int, speed, max_new_tokens: int, max_latent_steps: int) -> int:
    """The most positions one decode can use (``inference/decode.py``'s layout): the prompt (ending with
    ``<think>``), then latent steps (each ``latent_stretch`` positions) or continuous thoughts, ``</think>``
    fed by the decoder after them, and at most ``max_new_tokens`` tokens (a token reasoner writes its
    thinking and its ``</think>`` among those)."""
    thinking = 0
    if settings.reasoning == "latent":
        thinking = max_latent_steps * latent_stretch(settings, speed) + 1
    elif settings.reasoning == "thoughts":
        thinking = (settings.num_thoughts or 0) + 1
    return prompt_length + thinking + max_new_tokens


def fit_decoding_budget(model, questions, speeds, max_new_tokens: int, max_latent_steps: int, exit=None,
                        warn: bool = True, reserve: int | None = None) -> tuple[int, int]:
    """``eval`` / ``ask``'s fallback for a bounded position table: (max_new_tokens, max_latent_steps), cut so
    that decoding the longest of ``questions`` at every one of ``speeds`` (checked speeds) ends inside the
    table, with a one-line warning on stderr. Unbounded models (rotary): unchanged, nothing tokenized.
    ``questions`` may also be the longest prompt's length in tokens (an int: the prompt is already built).

    ``max_new_tokens`` is cut first, to what the table leaves after the prompt and the latent steps, but not
    below half of what is left after the prompt; then ``max_latent_steps`` is cut to the rest. ``exit``: an
    ``ExitConfig`` whose probes need room past a row's last token (``probe_reserve``; ``reserve`` gives that
    room directly). When not even one token (and one latent step) fits after the prompt: a one-line
    ``PonderError``."""
    limit = position_limit(model)
    if limit is None:
        return max_new_tokens, max_latent_steps
    st = model.settings
    speeds = list(speeds) or [None]
    prompt_length = questions if isinstance(questions, int) else longest_prompt(model, questions, speeds)
    reserve = probe_reserve(model, exit) if reserve is None else reserve
    need = max(decoding_positions(st, prompt_length, s, max_new_tokens, max_latent_steps) for s in speeds) + reserve
    if need <= limit:
        return max_new_tokens, max_latent_steps
    stretch = max(latent_stretch(st, s) for s in speeds)
    fixed = prompt_length + reserve
    if st.reasoning in ("latent", "thoughts"):
        fixed += 1 + ((st.num_thoughts or 0) if st.reasoning == "thoughts" else 0)  # </think> (and the thoughts)
    latent = max_latent_steps * stretch if st.reasoning == "latent" else 0
    least = 1 + (stretch if latent else 0)  # one new token (and one latent step)
    if limit - fixed < least:
        what = ("the longest prompt" + (f" with {st.num_thoughts} continuous thoughts" if st.reasoning == "thoughts" else "")
                + (f" with a latent step of {stretch} positions" if latent else ""))
        check_positions(model, fixed + least, f"decoding {what} and one token",
                        "shorten the questions" + (" or ask at a lower --speed" if stretch > 1 else ""))
    room = limit - fixed  # for the latent steps and the new tokens together
    tokens = min(max_new_tokens, max(room - latent, room // 2))
    steps = min(max_latent_steps, (room - tokens) // stretch) if latent else max_latent_steps
    if latent and steps < 1:  # less than one latent step left: one step, the rest for the tokens
        steps, tokens = 1, min(max_new_tokens, room - stretch)
    if warn:
        cut = [f"{option} {old} -> {new}" for option, old, new in (
            ("--max-new-tokens", max_new_tokens, tokens), ("--max-latent-steps", max_latent_steps, steps)) if old != new]
        print(f"warning: decoding would pass the end of the {_table(model, limit)}: {', '.join(cut)}",
              file=sys.stderr, flush=True)
    return tokens, steps


def longest_prompt(model, questions, speeds) -> int:
    """Tokens of the longest prompt the decoder builds for ``questions`` at any of ``speeds`` (checked speeds:
    ``check_speed``'s values): question, speed marker, ``<think>`` (No-CoT's also ``</think>``)."""
    st, tok = model.settings, model.tokenizer
    if not questions:
        return 0
    question = max(len(st.layout.question_ids(tok, q)) for q in questions)
    marker = max(len(st.layout.speed_ids(tok, s)) for s in (list(speeds) or [None]))
    return question + marker + 1 + (1 if st.reasoning == "none" else 0)


def probe_reserve(model, exit) -> int:
    """Positions an exit policy's probe may use past a row's last token: the end of thinking, the answer cue
    and ``probe_tokens`` (0 without a policy)."""
    if exit is None or getattr(exit, "exit", "none") == "none":
        return 0
    from ponder.inference.exits import answer_cue

    st = model.settings
    return 1 + len(st.layout._ids(model.tokenizer, answer_cue(exit, st.layout))) + exit.probe_tokens
