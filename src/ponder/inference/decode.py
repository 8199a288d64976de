"""The one-shot decoder: a batch of questions in, their ``Generation`` out, through the shared engine.

``Decoder(model, ...).generate(questions, speed)`` submits every question to an ``Engine``
(``inference/engine.py``) at once and steps it until all are done: ``ponder eval``, ``ask``, ``bench`` and RL
rollouts decode this way, ``ponder serve`` steps the same engine with requests arriving over time, so the two
give the same tokens. Calls on one decoder continue one random stream (its ``seed``).
"""

from __future__ import annotations

from ponder.inference.engine import Engine, Generation, Request, check_request


class Decoder:
    def __init__(self, model, max_new_tokens: int = 256, max_latent_steps: int = 64, temperature: float = 0.0,
                 latent_temperature: float = 0.0, seed: int = 0, use_cache: bool = True, sample_stop: bool = False,
                 exit=None, top_p: float = 1.0, compile: bool = False):
        """``sample_stop``: a latent chain ends with probability p(``</think>``) at each step instead of when
        ``</think>`` is the LM's top token (RL rollouts, and the official CoLaR evaluation).
        ``exit``: an ``ExitConfig`` (or a policy name) whose policy may end a token reasoner's thinking early
        (``inference/exits.py``); ``top_p``: nucleus sampling of answer tokens (with ``temperature`` > 0).
        ``compile``: decode through ``torch.compile`` (``PonderModel.compile_decoding``; the model keeps it)."""
        self.model = model
        if compile:
            model.compile_decoding()
        self.settings = dict(max_new_tokens=max_new_tokens, max_latent_steps=max_latent_steps, temperature=temperature,
                             latent_temperature=latent_temperature, sample_stop=sample_stop, top_p=top_p)
        check_request(model, Request(question="", **self.settings))
        self.engine = Engine(model, seed=seed, use_cache=use_cache)
        self.controller = None
        if exit is not None:
            from ponder.inference.exits import ExitController, make_policy

            policy = make_policy(exit, model, max_new_tokens)  # None for "none": today's loop, unchanged
            self.controller = ExitController(policy, model) if policy else None

    def generate(self, questions: list[str], speed=None) -> list[Generation]:
        if not questions:
            return []
        self.engine.max_batch = len(questions)
        return self.engine.run([Request(question=q, speed=speed, **self.settings) for q in questions], self.controller)
