"""CoLaR-RL (arXiv 2505.16552, sec. 3.3): GRPO over sampled latent reasoning paths.

Because the latent head is a Gaussian, a CoLaR model can explore: sampled at temperature tau, the same
question yields different latent chains, some of which reach the right answer, some in fewer steps.
Exploration is only as good as that Gaussian's std: start from a model trained with the NLL latent loss
(the default); MSE leaves the std at its initial value, the same in every dimension.
Per optimizer step, for each question:

1. **rollout**: ``group_size`` samples through the shared batched, cached decoder (latents sampled at
   ``latent_temperature``, the answer greedy or sampled at ``answer_temperature``); no gradient;
2. **reward**: 1 if the evaluation's answer checker accepts the answer (malformed answers are simply
   wrong), optionally shaped by the chain length (``length_penalty``);
3. **advantage**: reward normalised within its group (a group whose rewards are all equal carries no
   signal: its advantage is 0, never NaN);
4. **loss**: the rollout is re-encoded in one teacher-forced pass with gradients, giving the Gaussian
   log-density of every sampled latent (by default its mean over the embedding's dimensions, so one latent
   weighs about as much as one answer token) and the log-probability of every answer token; PPO's clipped
   ratio against the rollout-time log-probabilities, plus an optional KL to the frozen starting model.

The end of thinking is an action too (``stop_policy``): in rollouts a chain ends with probability
p(``</think>``) at each step, and "go on" / "stop" are reinforced with the latents, so a length penalty
can teach the model to stop earlier. ``num_iterations`` > 1 reuses a rollout for several updates (then
the clipping matters); with 1 the ratio is exactly 1 and this is plain policy gradient.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

from ponder.errors import PonderError
from ponder.evaluation.answers import answers_match
from ponder.inference.decode import Decoder
from ponder.inference.engine import check_speed
from ponder.methods.trainer import CoTConfig, CoTTrainer
from ponder.model.latent_head import LatentHead

# How a latent's Gaussian log-density enters the objective (CoLaRRLConfig.latent_logprob says why).
LATENT_LOGPROBS = ("mean", "sum")


@dataclass
class CoLaRRLConfig(CoTConfig):
    """GRPO on a CoLaR model. ``per_device_train_batch_size`` counts questions; each gets ``group_size`` rollouts."""

    method: str = field(default="colar-rl", metadata={"help": "Always 'colar-rl'."})
    group_size: int = field(default=8, metadata={"help": "Rollouts per question (G); advantages are normalised in the group."})
    speeds: str = field(default="1", metadata={
        "help": "Thinking speed of the rollouts: one value (fixed) or a comma list, one drawn per group, e.g. 1,2,5."})
    latent_temperature: float = field(default=1.0, metadata={"help": "tau: latent samples are mean + tau * std * noise (> 0)."})
    answer_temperature: float = field(default=0.0, metadata={"help": "Answer tokens: 0 = greedy, else sampled at this temperature."})
    length_penalty: str = field(default="none", metadata={
        "help": "'none'; 'per-step': reward / latent steps; or a number lambda: reward - lambda * latent steps."})
    clip_eps: float = field(default=0.2, metadata={"help": "PPO clip range: the ratio is clipped to [1 - eps, 1 + eps]."})
    kl_coef: float = field(default=0.0, metadata={"help": "Weight of the KL to the frozen starting model (0: no reference copy)."})
    latent_policy: bool = field(default=True, metadata={"help": "Policy-gradient term on the latents' Gaussian log-densities."})
    latent_logprob: str = field(default="mean", metadata={
        "help": "A latent's log-density in the objective: 'mean' over its dimensions (as the paper's code) or the "
                "exact 'sum'. The sum's score grows with the embedding size and swamps the answer tokens' signal."})
    answer_policy: bool = field(default=True, metadata={"help": "Policy-gradient term on the answer tokens' log-probabilities."})
    num_iterations: int = field(default=1, metadata={"help": "Optimizer steps per rollout batch (PPO epochs, mu)."})
    stop_policy: bool = field(default=True, metadata={
        "help": "Sample the end of thinking with p(</think>) in rollouts and reinforce it; off: a chain ends where "
                "</think> is the LM's top token, and its length changes only through the latents."})
    max_latent_steps: int = field(default=64, metadata={"help": "Rollouts stop thinking after this many latent steps."})
    max_new_tokens: int = field(default=32, metadata={"help": "Longest answer decoded in a rollout."})

    def __post_init__(self):
        self.method = "colar-rl"
        self.speed_list = [s.strip() for s in str(self.speeds).split(",") if s.strip()]
        if not self.speed_list:
            raise PonderError(f"--speeds must list thinking speeds, e.g. 2 or 1,2,5; got '{self.speeds}'")
        if self.group_size < 2:
            raise PonderError(f"--group-size must be >= 2 (advantages compare samples of a group), got {self.group_size}")
        if self.latent_temperature <= 0:
            raise PonderError(f"--latent-temperature must be > 0 for RL (0 leaves nothing to explore), got {self.latent_temperature}")
        if self.answer_temperature < 0:
            raise PonderError(f"--answer-temperature must be >= 0, got {self.answer_temperature}")
        if self.clip_eps <= 0 or self.kl_coef < 0 or self.num_iterations < 1:
            raise PonderError("--clip-eps must be > 0, --kl-coef >= 0 and --num-iterations >= 1")
        if self.latent_logprob not in LATENT_LOGPROBS:
            raise PonderError(f"--latent-logprob must be one of {', '.join(LATENT_LOGPROBS)}, got '{self.latent_logprob}'")
        if not (self.latent_policy or self.answer_policy):
            raise PonderError("--no-latent-policy and --no-answer-policy together leave nothing to train")
        self.length_shaping = parse_length_penalty(self.length_penalty)
        super().__post_init__()


def parse_length_penalty(text) -> str | float | None:
    t = str(text).strip().lower()
    if t in ("none", "0", ""):
        return None
    if t == "per-step":
        return "per-step"
    try:
        value = float(t)
    except ValueError:
        raise PonderError(f"--length-penalty must be 'none', 'per-step' or a number, got '{text}'") from None
    if value < 0 or not math.isfinite(value):
        raise PonderError(f"--length-penalty must be >= 0, got {text}")
    return value


# -- the pieces of GRPO, each a pure function ---------------------------------------------------------
def rewards_for(answers: list[str], references: list[str], steps: list[int], shaping=None) -> torch.Tensor:
    """Correctness (the evaluation's checker; malformed answers score 0), shaped by the latent chain length."""
    return shape_rewards(correctness(answers, references), steps, shaping)


def correctness(answers: list[str], references: list[str]) -> torch.Tensor:
    return torch.tensor([float(answers_match(a, r)) for a, r in zip(answers, references)])


def shape_rewards(correct: torch.Tensor, steps: list[int], shaping=None) -> torch.Tensor:
    n = torch.tensor(steps, dtype=torch.float)
    if shaping == "per-step":
        return correct / n.clamp(min=1)
    if shaping:
        return correct - shaping * n
    return correct


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """(r - group mean) / group std, rows grouped consecutively. Equal rewards give 0 (std is 0, not NaN)."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    g = rewards.view(-1, group_size).float()
    std = g.std(-1, unbiased=False, keepdim=True)
    adv = (g - g.mean(-1, keepdim=True)) / std.clamp(min=eps)
    return torch.where(std > eps, adv, torch.zeros_like(adv)).view(-1)


def clipped_objective(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps: float) -> torch.Tensor:
    """PPO's per-action loss: -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)."""
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages)


def gaussian_kl(mean, log_std, ref_mean, ref_log_std) -> torch.Tensor:
    """KL(N(mean, std) || N(ref_mean, ref_std)) of diagonal Gaussians, summed over the last dimension."""
    var, ref_var = (2 * log_std).exp(), (2 * ref_log_std).exp()
    return (ref_log_std - log_std + (var + (mean - ref_mean).pow(2)) / (2 * ref_var) - 0.5).sum(-1)


# -- rollouts -----------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One micro-batch of sampled chains, laid out for the teacher-forced pass."""

    inputs_embeds: torch.Tensor  # (N, T, d) with the sampled latents at their slots
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    latent_at: torch.Tensor  # (N, T) True where the head's output at that index produced a sampled latent
    stop_at: torch.Tensor  # (N, T) True where the LM chose to end the chain (the index of the last latent)
    latent_values: torch.Tensor  # (N, T, d) the sampled latent (in units of embed_std) produced at that index
    token_at: torch.Tensor  # (N, T) True where the logits at that index produced a decoded answer token
    token_values: torch.Tensor  # (N, T) that token
    advantages: torch.Tensor  # (N,)
    old_latent_logp: torch.Tensor | None = None  # (N, T)
    old_token_logp: torch.Tensor | None = None
    ref_mean: torch.Tensor | None = None
    ref_log_std: torch.Tensor | None = None
    ref_token_logp: torch.Tensor | None = None


def layout_rollout(model, prompts: list[list[int]], latents: list[torch.Tensor], answers: list[list[int]],
                   stretches: list[int], stopped: list[bool] | None = None) -> dict[str, torch.Tensor]:
    """The sequences the decoder produced, re-laid with the decoder's own positions (see inference/decode.py):
    prompt 0..P-1, latent k at (P-1) + (k+1)*stretch, then </think> and the answer tokens one after another."""
    tok, device = model.tokenizer, model.device
    think_end = model.settings.layout.think_ids(tok)[1]
    ids, pos, lat_slot, lat_at, stop_at, tok_at, tok_val = [], [], [], [], [], [], []
    for p, z, a, s, stop in zip(prompts, latents, answers, stretches, stopped or [False] * len(prompts)):
        P, m = len(p), z.shape[0]
        ids.append(p + [0] * m + [think_end] + a)
        end = (P - 1) + m * s + 1
        pos.append(list(range(P)) + [(P - 1) + (k + 1) * s for k in range(m)] + list(range(end, end + 1 + len(a))))
        lat_slot.append([False] * P + [True] * m + [False] * (1 + len(a)))
        lat_at.append([False] * (P - 1) + [True] * m + [False] * (2 + len(a)))
        stop_at.append([False] * (P - 1 + m) + [bool(stop)] + [False] * (1 + len(a)))
        tok_at.append([False] * (P + m) + [True] * len(a) + [False])
        tok_val.append([0] * (P + m) + a + [0])

    def pad(rows, value, dtype=torch.long):
        return pad_sequence([torch.tensor(r, dtype=dtype) for r in rows], batch_first=True, padding_value=value).to(device)

    input_ids = pad(ids, tok.pad_token_id)
    slot, at = pad(lat_slot, False, torch.bool), pad(lat_at, False, torch.bool)
    embeds = model.embed(input_ids)
    z = torch.cat(list(latents)).to(device=device, dtype=embeds.dtype) if latents else embeds.new_zeros(0, embeds.shape[-1])
    embeds = embeds.masked_scatter(slot[..., None], z)  # the decoder fed latent * embed_std
    values = torch.zeros_like(embeds).masked_scatter(at[..., None], z / model.settings.embed_std)
    return {"inputs_embeds": embeds, "attention_mask": pad([[1] * len(r) for r in ids], 0),
            "position_ids": pad(pos, 0), "latent_at": at, "latent_values": values, "stop_at": pad(stop_at, False, torch.bool),
            "token_at": pad(tok_at, False, torch.bool), "token_values": pad(tok_val, 0)}


class CoLaRRLTrainer(CoTTrainer):
    progress_keys = ("reward", "accuracy", "latent_steps")

    def __init__(self, model, args: CoLaRRLConfig, train_dataset, **kw):
        if model.settings.reasoning != "latent" or model.latent_head is None:
            raise PonderError(f"--init: colar-rl starts from a CoLaR model directory, got a '{model.settings.method}' model")
        args.speed_list = [check_speed(model.settings, s) for s in args.speed_list]
        self.ref = None
        if args.kl_coef > 0:
            self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self._buffer: dict[int, Rollout] = {}
        super().__init__(model, args, train_dataset, **kw)

    def check_position_table(self, model, args, dataset, spans):
        """RL trains on its rollouts, not on the records' chains: the longest possible rollout (the longest
        question at each speed, every latent step, every new token) must fit the position table."""
        from ponder.model.positions import check_positions, decoding_positions, position_limit

        if position_limit(model) is None:
            return
        q = max(len(model.settings.layout.question_ids(model.tokenizer, r.question)) for r in dataset)
        need, speed = max((decoding_positions(model.settings, q + self.speed_length(model, s), s, args.max_new_tokens,
                                              args.max_latent_steps), str(s)) for s in args.speed_list)
        check_positions(model, need, f"a colar-rl rollout of the longest question ({args.max_latent_steps} latent steps "
                        f"at speed {speed}, then {args.max_new_tokens} tokens)",
                        "lower --max-latent-steps or --max-new-tokens")

    # -- sampling ----------------------------------------------------------------------------------
    def _seed(self, micro: int) -> int:
        return (((self.args.seed * 1_000_003 + self.state.global_step) * 64 + micro) * 1024 + self.args.process_index)

    @torch.no_grad()
    def rollout(self, records, micro: int) -> Rollout:
        a, model, G = self.args, self.ponder, self.args.group_size
        seed = self._seed(micro)
        rng = random.Random(seed)
        speeds = [rng.choice(a.speed_list) for _ in records]  # one speed per group
        lay, tok = model.settings.layout, model.tokenizer
        rows = [(i, j) for i in range(len(records)) for j in range(G)]
        gens = [None] * len(rows)
        if self.ref is not None and self.ref.device != model.device:
            self.ref.to(model.device)
        was_training = model.training
        model.eval()
        for k, speed in enumerate(sorted(set(speeds), key=str)):
            idx = [n for n, (i, _) in enumerate(rows) if speeds[i] == speed]
            dec = Decoder(model, max_new_tokens=a.max_new_tokens, max_latent_steps=a.max_latent_steps,
                          temperature=a.answer_temperature, latent_temperature=a.latent_temperature, seed=seed * 8 + k,
                          sample_stop=a.stop_policy)
            for n, g in zip(idx, dec.generate([records[rows[n][0]].question for n in idx], speed=speed)):
                gens[n] = g
        model.train(was_training)
        steps = [g.reasoning_length for g in gens]
        refs = [records[i].answer for i, _ in rows]
        correct = correctness([g.answer for g in gens], refs)
        rewards = shape_rewards(correct, steps, a.length_shaping)
        stretch = lambda s: s if (model.settings.latent_positions == "stretched" and s != "auto") else 1  # noqa: E731
        d = model.lm.get_input_embeddings().weight.shape[1]
        laid = layout_rollout(
            model, [lay.prompt_ids(tok, g.question, g.speed) for g in gens],
            [g.latents if g.latents is not None else torch.zeros(0, d) for g in gens],
            [g.token_ids + ([tok.eos_token_id] if g.ended else []) for g in gens], [stretch(g.speed) for g in gens],
            [a.stop_policy and n < a.max_latent_steps for n in steps])
        ro = Rollout(**laid, advantages=group_advantages(rewards, G).to(model.device))
        lp = self._log_probs(model, ro)
        ro.old_latent_logp, ro.old_token_logp = lp["latent"].detach(), lp["token"].detach()
        if self.ref is not None:
            ref = self._log_probs(self.ref, ro)
            ro.ref_mean, ro.ref_log_std, ro.ref_token_logp = ref["mean"], ref["log_std"], ref["token"]
        self._rollout_stats = {
            "reward": rewards.mean(), "accuracy": correct.mean(), "latent_steps": float(sum(steps)) / len(steps),
            "reward_std": rewards.std(unbiased=False), "answer_length": sum(map(len, (g.token_ids for g in gens))) / len(gens)}
        return ro

    def _log_probs(self, model, ro: Rollout) -> dict[str, torch.Tensor]:
        """Log-probabilities of the rollout's actions under ``model``'s sampling distributions."""
        out = model(inputs_embeds=ro.inputs_embeds, attention_mask=ro.attention_mask, position_ids=ro.position_ids)
        # The decoder sampled mean + tau * std * noise: a Gaussian with log-std shifted by log(tau).
        log_std = out.latent_log_std.float() + math.log(self.args.latent_temperature)
        mean = out.latent_mean.float()
        latent = LatentHead.log_prob(ro.latent_values.float(), mean, log_std)
        if self.args.latent_logprob == "mean":
            latent = latent / mean.shape[-1]
        logits = out.logits.float()
        if self.args.stop_policy:
            # One action per latent step: "go on" (1 - p(</think>)) and this latent; the chain's end: "stop".
            end = torch.log_softmax(logits, -1)[..., self.ponder.settings.layout.think_ids(self.ponder.tokenizer)[1]]
            go_on = torch.log(-torch.expm1(end.clamp(max=-1e-6)))
            latent = torch.where(ro.stop_at, end, latent + go_on)
        if self.args.answer_temperature > 0:
            logits = logits / self.args.answer_temperature
        token = torch.gather(F.log_softmax(logits, -1), -1, ro.token_values[..., None]).squeeze(-1)
        return {"latent": latent, "token": token, "mean": mean, "log_std": log_std}

    # -- the loss ----------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        micro = self._next_micro()
        if self.state.global_step % a.num_iterations == 0 or micro not in self._buffer:
            self._buffer[micro] = self.rollout(inputs["records"], micro)
            stats = self._rollout_stats
        else:
            stats = {}
        ro = self._buffer[micro]
        lp = self._log_probs(model, ro)
        adv = ro.advantages[:, None]
        thinking = ro.latent_at | ro.stop_at  # the latent actions: each step's latent (and go on), the stop
        masks = ([thinking] if a.latent_policy else []) + ([ro.token_at] if a.answer_policy else [])
        per_action = torch.zeros_like(lp["token"])
        if a.latent_policy:
            per_action = per_action + torch.where(
                thinking, clipped_objective(lp["latent"], ro.old_latent_logp, adv, a.clip_eps), 0.0)
        if a.answer_policy:
            per_action = per_action + torch.where(
                ro.token_at, clipped_objective(lp["token"], ro.old_token_logp, adv, a.clip_eps), 0.0)
        acting = torch.stack(masks).any(0)
        kl = torch.zeros((), device=per_action.device)
        if self.ref is not None:
            kl_latent = gaussian_kl(lp["mean"], lp["log_std"], ro.ref_mean, ro.ref_log_std)
            if a.latent_logprob == "mean":  # in the same units as the policy term
                kl_latent = kl_latent / lp["mean"].shape[-1]
            kl_latent = torch.where(ro.latent_at, kl_latent, 0.0)
            diff = ro.ref_token_logp - lp["token"]  # k3 estimator of the token KL: unbiased and >= 0
            kl_token = torch.where(ro.token_at, diff.exp() - diff - 1, 0.0)
            kl_rows = (kl_latent + kl_token).sum(-1) / acting.sum(-1).clamp(min=1)
            kl = kl_rows.mean()
        # GRPO's aggregation: the mean over a sequence's actions, then over sequences.
        policy = (per_action.sum(-1) / acting.sum(-1).clamp(min=1)).mean()
        loss = policy + a.kl_coef * kl
        with torch.no_grad():
            latent_n = ro.latent_at.sum()
            # Entropy of the sampling Gaussian per dimension (nats): falls as RL makes the latents surer.
            entropy = (lp["log_std"] + 0.5 * math.log(2 * math.pi * math.e)).mean(-1)
            log_ratio = torch.where(thinking, lp["latent"] - ro.old_latent_logp, lp["token"] - ro.old_token_logp)
            clipped = ((log_ratio.exp() - 1).abs() > a.clip_eps) & acting
            stats = {**stats, "policy_loss": policy, "kl": kl, "clip_fraction": clipped.sum() / acting.sum().clamp(min=1),
                     "latent_entropy": (entropy * ro.latent_at).sum() / latent_n.clamp(min=1)}
        for k, v in stats.items():
            self._metrics.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
        return (loss, None) if return_outputs else loss
