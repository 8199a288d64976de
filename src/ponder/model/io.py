"""Build, load and save ponder models.

A ponder model directory is what ``AutoModelForCausalLM.from_pretrained`` reads (config, safetensors
weights, tokenizer, generation config) plus ``ponder.json`` (method, prompt layout, CoLaR settings) and,
for latent methods, ``latent_head.safetensors``. ``--init`` takes a preset name (``tiny``, ``small``,
``base``: Llama architecture, trained from scratch with a tokenizer built from the data), a local
Hugging Face causal-LM directory, or a ponder model directory (to continue training it).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import shutil
import tempfile
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from ponder import __version__
from ponder.data.records import current_umask
from ponder.errors import PonderError
from ponder.model.latent_head import LatentHead
from ponder.model.tokenizer import build_tokenizer, ensure_special_tokens
from ponder.prompt import THINK_END, THINK_START, PromptLayout

PONDER_FILE = "ponder.json"
HEAD_FILE = "latent_head.safetensors"

# What each method puts between <think> and </think>: nothing, tokens, latent vectors (a latent head samples
# them, the LM decides when to stop), or continuous thoughts (a fixed number of hidden-state feedbacks).
REASONING = {"nocot": "none", "cot": "tokens", "colar": "latent", "colar-rl": "latent",
             "coconut": "thoughts", "codi": "thoughts", "icot": "tokens"}

PRESETS = {
    # name: (hidden, layers, heads, intermediate, vocab)
    "tiny": (128, 4, 4, 512, 512),
    "small": (256, 6, 8, 1024, 1024),
    "base": (512, 8, 8, 2048, 2048),
}


@dataclass
class PonderSettings:
    """Everything besides the weights that inference needs to use a trained model as it was trained."""

    method: str = "cot"
    layout: PromptLayout = field(default_factory=PromptLayout)
    max_compression: int = 1
    latent_positions: str = "contiguous"
    embed_std: float | None = None
    latent_head: dict | None = None
    num_thoughts: int | None = None  # continuous thoughts at inference ("thoughts" methods: Coconut, CODI)
    init: str | None = None
    ponder_version: str = __version__

    @property
    def reasoning(self) -> str:
        return REASONING[self.method]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source="ponder.json") -> PonderSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PonderError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        d = dict(d)
        d["layout"] = PromptLayout(**d.get("layout", {}))
        s = cls(**d)
        if s.method not in REASONING:
            raise PonderError(f"{source}: unknown method '{s.method}'")
        return s


@dataclass
class PonderOutput:
    logits: torch.Tensor
    hidden: torch.Tensor
    latent_mean: torch.Tensor | None
    latent_log_std: torch.Tensor | None
    hidden_states: tuple | None = None  # every layer's output (embedding output excluded), with all_hidden=True


# Causal LMs of transformers whose logits are lm_head(last hidden state), nothing after it (PonderModel.lean).
LEAN_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral", "phi3", "gemma")


class PonderModel(nn.Module):
    """A causal LM, its tokenizer, its ponder settings and (for latent methods) its latent head."""

    def __init__(self, lm, tokenizer, settings: PonderSettings, latent_head: LatentHead | None = None):
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.settings = settings
        self.latent_head = latent_head
        # transformers 5.2x renamed forward's `past_key_values` to `cache`; remote-code models may lag.
        params = inspect.signature(lm.get_base_model().forward if hasattr(lm, "get_base_model") else lm.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        base_params = inspect.signature(lm.model.forward).parameters if self.lean else {}
        self._base_cache_kw = "cache" if "cache" in base_params else "past_key_values"

    @property
    def config(self):
        return self.lm.config

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(input_ids)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=False, last_only: bool = False, all_hidden: bool = False,
                latent: bool = True) -> PonderOutput:
        """``last_only``: logits and latent head for the last position only (decoding: with a 100k-token
        vocabulary, the prefill's logits for every prompt position would cost more than the model).
        ``all_hidden``: also return every layer's hidden states (CODI's distillation).
        ``latent=False`` skips the latent head (decoding the answer needs no next latent)."""
        # The latent head runs inside forward so that DDP sees every trained parameter used in it.
        inputs = dict(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                      position_ids=position_ids, use_cache=use_cache, past_key_values=past_key_values)
        decoding = last_only and not all_hidden
        # The compiled pass (compile_decoding) serves decoding passes without gradients only.
        compiled = self.__dict__.get("_compiled") if decoding and not torch.is_grad_enabled() else None
        layers = None
        if decoding and self.lean:
            logits, hidden = (compiled or self._lean_pass)(**inputs)
        else:
            logits, hidden, layers = (compiled or self._full_pass)(**inputs, last_only=last_only)
        mean = log_std = None
        if self.latent_head is not None and latent:
            mean, log_std = self.latent_head(hidden)
        return PonderOutput(logits, hidden, mean, log_std, layers if all_hidden else None)

    @property
    def lean(self) -> bool:
        """Decoding passes skip ``output_hidden_states`` (which hooks every layer and keeps all their states)
        and read the last position of the base model: only for transformers' causal LMs whose logits are
        exactly ``lm_head(last hidden state)``; Gemma 2's soft-capping, Cohere's logit scale, GPT-2's
        ``transformer``, PEFT wrappers and remote code take the full pass."""
        lm = self.lm
        return (getattr(lm.config, "model_type", None) in LEAN_MODEL_TYPES
                and type(lm).__module__.startswith("transformers.models.")
                and isinstance(getattr(lm, "lm_head", None), nn.Linear) and hasattr(lm, "model"))

    def _lean_pass(self, past_key_values=None, **inputs):
        cache_kw = {self._base_cache_kw: past_key_values} if past_key_values is not None else {}
        hidden = self.lm.model(**inputs, **cache_kw).last_hidden_state[:, -1:]
        return self.lm.lm_head(hidden), hidden

    def _full_pass(self, past_key_values=None, last_only=False, **inputs):
        cache_kw = {self._cache_kw: past_key_values} if past_key_values is not None else {}
        keep = {"logits_to_keep": 1} if last_only else {}
        out = self.lm(**inputs, output_hidden_states=True, **cache_kw, **keep)
        hidden = out.hidden_states[-1][:, -1:] if last_only else out.hidden_states[-1]
        return out.logits, hidden, tuple(out.hidden_states[1:])

    def compile_decoding(self) -> None:
        """Run decoding passes (last position only, no gradients) through ``torch.compile(..., dynamic=True)``
        of the LM's pass (the lean one where it applies); training keeps the eager module. Dynamic shapes
        because batch size and length change at every step of a continuous batch: one graph serves them (a
        few recompiles, e.g. prefill against decode, happen on first use). Same weights: the compiled pass
        calls ``lm``, and it is not registered as a submodule, so state dicts are unchanged.
        benchmarks/decode measures where it wins and its compile time."""
        if self.__dict__.get("_compiled") is None:
            self.__dict__["_compiled"] = compile_own(self._lean_pass if self.lean else self._full_pass, dynamic=True)

    @property
    def decoding_mode(self) -> str:
        """'compiled' or 'eager': how decoding passes run (reports name it next to their timings)."""
        return "eager" if self.__dict__.get("_compiled") is None else "compiled"

    def thought_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """The next input embedding of a continuous thought, from last-layer hidden state(s) (..., hidden).

        Coconut feeds the hidden state back as it is; CODI through a learned projection, which is the latent
        head's mean (in units of ``embed_std``, as CoLaR's) so it is saved and loaded with the latent head."""
        if self.settings.method == "codi":
            if self.latent_head is None:
                raise PonderError("a CODI model needs its projection (latent head); none is loaded")
            return self.latent_head(hidden)[0] * self.settings.embed_std
        return hidden

    @torch.no_grad()
    def measure_embed_std(self) -> float:
        """The standard deviation of what the input embedding *returns* over the whole vocabulary: the scale
        CoLaR's latent targets are measured in. Not the raw weight's: Gemma's embedding layer multiplies its
        rows by sqrt(hidden) (``embed_scale``), which would leave the targets ~sqrt(hidden) too large."""
        layer = self.lm.get_input_embeddings()
        rows = layer.weight.shape[0]
        total = squares = 0.0
        for start in range(0, rows, 8192):  # in chunks: a 150k-token vocabulary is not copied at once
            out = layer(torch.arange(start, min(rows, start + 8192), device=layer.weight.device)).double()
            total, squares = total + float(out.sum()), squares + float(out.pow(2).sum())
        n = rows * layer.weight.shape[1]
        return max(squares - total * total / n, 0.0) ** 0.5 / max(n - 1, 1) ** 0.5

    def add_latent_head(self, style: str = "ponder") -> None:
        """Attach a fresh latent head (``style``: latent_head.py) and measure the embedding scale (once: it
        is then kept). A model that already has a head keeps it, whatever its style."""
        emb = self.lm.get_input_embeddings().weight
        if self.settings.embed_std is None:
            self.settings.embed_std = self.measure_embed_std()
        if self.latent_head is None:
            hidden = self.lm.config.hidden_size
            self.latent_head = LatentHead(hidden, emb.shape[1], style=style).to(emb.device)
            self.settings.latent_head = self.latent_head.config

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, out_dir) -> None:
        """Atomically write the model directory (a tmp dir renamed into place)."""
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; the model dir is a normal dir
        try:
            lm, state = _plain_lm(self.lm)
            with _quiet_progress():
                lm.save_pretrained(tmp, state_dict=state)
            self.tokenizer.save_pretrained(tmp)
            if self.latent_head is not None:
                save_file({k: v.detach().contiguous().cpu() for k, v in self.latent_head.state_dict().items()},
                          str(tmp / HEAD_FILE))
            (tmp / PONDER_FILE).write_text(json.dumps(self.settings.to_dict(), indent=2) + "\n")
            _swap_into_place(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def compile_own(fn, **options):
    """``torch.compile`` of a private copy of ``fn``'s code (a bound method stays bound). Dynamo keeps its
    graphs, and its limit of 8 recompiles, per code object: every model compiling the same method would share
    them, and a process that decodes with several models (``bench``, benchmarks/decode) would exhaust the
    limit and fall back to eager (or fail, under ``fullgraph``)."""
    f = getattr(fn, "__func__", fn)
    own = types.FunctionType(f.__code__.replace(), f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    own.__kwdefaults__ = f.__kwdefaults__
    bound = types.MethodType(own, fn.__self__) if hasattr(fn, "__self__") else own
    return torch.compile(bound, **options)


@contextlib.contextmanager
def _quiet_progress():
    """No "Loading weights" / "Writing model shards" bars for our small, frequent loads and saves."""
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _plain_lm(lm):
    """The LM to save and its state dict, with any LoRA adapter merged in: from_pretrained reads the result.

    The merge is undone afterwards so training can go on (checkpoints are saved mid-run)."""
    if not hasattr(lm, "peft_config"):
        return lm, None
    lm.merge_adapter()
    try:
        base = lm.get_base_model()
        # peft wraps adapted modules (LoRA layers, trainable new-token embeddings); once merged, the
        # wrapped module's own weight is the plain weight: drop the wrapper's name and the adapter tensors.
        state = {re.sub(r"(\.(base_layer|token_adapter))+\.", ".", k): v.detach().clone()
                 for k, v in base.state_dict().items() if "lora_" not in k and "trainable_tokens_" not in k}
    finally:
        lm.unmerge_adapter()
    with torch.device("meta"):
        expected = set(type(base)(base.config).state_dict())
    if set(state) != expected:
        raise PonderError(f"cannot merge the LoRA adapter for saving: unexpected keys {sorted(set(state) ^ expected)[:4]}")
    return base, state


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace out_dir by tmp; a training run's ``checkpoints/`` inside out_dir survives the swap."""
    if out_dir.exists():
        if (out_dir / "checkpoints").is_dir():
            os.replace(out_dir / "checkpoints", tmp / "checkpoints")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def is_ponder_dir(path) -> bool:
    return (Path(path) / PONDER_FILE).is_file()


def _dtype(dtype: str | torch.dtype | None):
    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise PonderError(f"unknown dtype '{dtype}' (choose from auto, {', '.join(table)})")
    return table[dtype]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What a model needs from a hub repository (not its other weight formats: .bin, .onnx, .gguf, ...).
_MODEL_FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.tiktoken", "*.txt"]


def resolve_model(name, revision: str | None = None, weights: bool = True) -> Path:
    """A model directory: ``name`` itself when it is a local path, else the snapshot of hub repository
    ``name`` (``revision``: a branch, tag or commit) in the Hugging Face cache, downloaded if needed. The
    usual variables apply (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1`` to use the cache only)."""
    path = Path(name)
    if path.exists() or not _HUB_ID.match(str(name)):
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # our one-line error says what failed
    try:
        with _quiet_progress():
            files = _MODEL_FILES if weights else [f for f in _MODEL_FILES if "safetensors" not in f and "bin" not in f]
            return Path(snapshot_download(str(name), revision=revision, allow_patterns=files))
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: all end the same way for the user
        raise PonderError(f"{name}: not a local directory, and the Hugging Face hub gave no copy ({type(e).__name__}); "
                          f"download it (hf download {name} --local-dir DIR) and pass DIR") from None


def load_model(path, device: str | None = None, dtype=None, trust_remote_code: bool = False,
               chat_template: bool | None = False, think_start: str | None = None,
               think_end: str | None = None, revision: str | None = None, reasoner: bool = False) -> PonderModel:
    """Load a ponder model directory, or a plain Hugging Face causal-LM directory as a CoT model.

    For a Hugging Face directory: ``chat_template`` prompts through its tokenizer's chat template (None:
    when it has one), ``think_start`` / ``think_end`` name its thinking delimiters (default ``<think>`` /
    ``</think>``, added as tokens when missing), and ``reasoner`` asks it as the explicit reasoner it
    already is (no speed marker, a free-form answer) rather than as a model about to be trained.
    ``path`` may also be a hub id (see ``resolve_model``)."""
    path = resolve_model(path, revision)
    if not path.is_dir():
        raise PonderError(f"{path}: no such model directory")
    if not (path / "config.json").is_file():
        raise PonderError(f"{path}: not a model directory (no config.json)")
    settings = PonderSettings()
    if is_ponder_dir(path):
        try:
            settings = PonderSettings.from_dict(json.loads((path / PONDER_FILE).read_text()), source=str(path / PONDER_FILE))
        except (json.JSONDecodeError, TypeError) as e:
            raise PonderError(f"{path / PONDER_FILE}: invalid ({e})") from None
    tokenizer = _load_tokenizer(path, trust_remote_code)
    try:
        with _quiet_progress():
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype), trust_remote_code=trust_remote_code)
    except SafetensorError as e:
        raise PonderError(f"{path}: cannot load model: {_unreadable_weights(path) or 'its weights'} cannot be read, "
                          f"truncated or corrupt ({_one_line(e)}); save or download it again") from None
    except (OSError, ValueError) as e:
        raise PonderError(f"{path}: cannot load model: {_one_line(e)}") from None
    if is_ponder_dir(path) and (chat_template or think_start or think_end):
        raise PonderError(f"{path}: a ponder model is asked in the layout it was trained with; --chat-template, "
                          "--think-start and --think-end are for Hugging Face reasoners")
    if not is_ponder_dir(path):
        settings.init = str(path)
        settings.layout = _hf_layout(path, tokenizer, chat_template, think_start, think_end, reasoner)
        if ensure_special_tokens(tokenizer):
            _grow_embeddings(lm, len(tokenizer))
        _sync_generation_config(lm, tokenizer)
    head = None
    if settings.latent_head is not None:
        head_file = path / HEAD_FILE
        if not head_file.is_file():
            raise PonderError(f"{path}: ponder.json names a latent head but {HEAD_FILE} is missing")
        head = LatentHead(**settings.latent_head)
        try:
            head.load_state_dict(load_file(str(head_file)))
        except (SafetensorError, OSError, RuntimeError) as e:
            raise PonderError(f"{path}: cannot load model: {HEAD_FILE} cannot be read, truncated or corrupt "
                              f"({_one_line(e)[:200]})") from None
        head.to(dtype=lm.dtype)
    model = PonderModel(lm, tokenizer, settings, head)
    if device:
        model.to(device)
    return model


class Front:
    """A reasoner without its weights -- its tokenizer, prompt layout and config -- for one served elsewhere
    (``inference/remote.py``): what prompts it, parses it and the exit policies need."""

    def __init__(self, tokenizer, settings: PonderSettings, config):
        self.tokenizer, self.settings, self.config = tokenizer, settings, config
        self.device = torch.device("cpu")


def load_front(path, chat_template: bool | None = None, think_start: str | None = None, think_end: str | None = None,
               revision: str | None = None, trust_remote_code: bool = False) -> Front:
    """``load_model``'s view of a model directory or hub id, without loading weights. The thinking delimiters
    must already be tokens of its tokenizer: the model that serves it cannot learn new ones."""
    from transformers import AutoConfig

    path = resolve_model(path, revision, weights=False)
    if not (path / "config.json").is_file():
        raise PonderError(f"{path}: not a model directory (no config.json)")
    tokenizer = _load_tokenizer(path, trust_remote_code)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if is_ponder_dir(path):
        settings = PonderSettings.from_dict(json.loads((path / PONDER_FILE).read_text()), source=str(path / PONDER_FILE))
    else:
        settings = PonderSettings(init=str(path))
        settings.layout = _hf_layout(path, tokenizer, chat_template, think_start, think_end, reasoner=True)
    missing = [t for t in (settings.layout.think_start, settings.layout.think_end) if t not in tokenizer.get_vocab()]
    if missing:
        raise PonderError(f"{path}: '{missing[0]}' is not a token of this tokenizer: name the model's own thinking "
                          "delimiters with --think-start / --think-end")
    if tokenizer.pad_token is None:  # prompts are sent one by one: a pad id is never fed
        tokenizer.pad_token = tokenizer.eos_token
    return Front(tokenizer, settings, config)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                    "spiece.model", "sentencepiece.bpe.model")


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (transformers' span several)."""
    return " ".join(str(e).split()) or type(e).__name__


def _load_tokenizer(path: Path, trust_remote_code: bool):
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        if not any((path / f).is_file() for f in _TOKENIZER_FILES) and not list(path.glob("*.tiktoken")):
            raise PonderError(f"{path}: has no tokenizer (no tokenizer.json or tokenizer_config.json): save the "
                              "tokenizer beside the weights (tokenizer.save_pretrained(DIR))") from None
        raise PonderError(f"{path}: cannot load its tokenizer: {_one_line(e)}") from None


def _unreadable_weights(path: Path) -> str | None:
    """The first ``*.safetensors`` file of a directory whose header cannot be read, by name."""
    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except (SafetensorError, OSError):
            return f.name
    return None


def _hf_layout(path: Path, tokenizer, chat_template: bool | None, think_start: str | None, think_end: str | None,
               reasoner: bool) -> PromptLayout:
    """The prompt layout of a Hugging Face model: its chat template if asked (or, with None, if it has
    one), and its thinking delimiters, which must be single tokens so the decoder can watch for them."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat_template and not has_template:
        raise PonderError(f"{path}: --chat-template: the tokenizer has no chat template")
    vocab = tokenizer.get_vocab()
    for option, token in (("--think-start", think_start), ("--think-end", think_end)):
        if token is not None and token not in vocab:
            raise PonderError(f"{path}: {option} '{token}' is not one token of this tokenizer")
    chat = has_template if chat_template is None else chat_template
    outside = {"speed_template": "", "answer_template": "{answer}"} if reasoner and chat else {}
    return PromptLayout(chat_template=chat, think_start=think_start or THINK_START, think_end=think_end or THINK_END,
                        **outside)


def _grow_embeddings(lm, size: int) -> None:
    """Make room for ``size`` token ids. Only ever grow: a vocabulary padded beyond its tokenizer (Qwen's
    151,936 rows for 151,669 tokens) keeps its rows. New rows are drawn around the old ones' mean and
    covariance (transformers' ``mean_resizing``), without its two notices on stderr."""
    if size <= lm.get_input_embeddings().weight.shape[0]:
        return
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        lm.resize_token_embeddings(size, mean_resizing=True)
    finally:
        hf_logging.set_verbosity(verbosity)


def _sync_generation_config(lm, tokenizer) -> None:
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(lm.config, name, getattr(tokenizer, name))
        setattr(lm.generation_config, name, getattr(tokenizer, name))


def build_model(preset: str, texts, seed: int = 0) -> PonderModel:
    """A Llama-architecture model from scratch, with a BPE tokenizer trained on ``texts``."""
    if preset not in PRESETS:
        raise PonderError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)}, or give a model directory)")
    hidden, layers, heads, inner, vocab = PRESETS[preset]
    tokenizer = build_tokenizer(texts, vocab_size=vocab)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inner, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(config)
    _sync_generation_config(lm, tokenizer)
    return PonderModel(lm, tokenizer, PonderSettings(init=preset))


def init_model(init: str, texts, seed: int = 0, trust_remote_code: bool = False, dtype=None,
               revision: str | None = None, chat_template: bool | None = None) -> PonderModel:
    """``--init``: a preset name builds from scratch; a path or a hub id loads a ponder or Hugging Face model."""
    if init in PRESETS:
        if chat_template:
            raise PonderError("--chat-template: a preset has no chat template (it is built from scratch)")
        return build_model(init, texts, seed=seed)
    if not Path(init).exists() and not _HUB_ID.match(init):
        raise PonderError(f"--init: '{init}' is neither a preset ({', '.join(PRESETS)}), an existing directory "
                          "nor a hub id (org/name)")
    # A ponder model goes on in the layout it was trained with (load_model refuses a --chat-template for it).
    return load_model(init, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision,
                      chat_template=chat_template if chat_template or not is_ponder_dir(init) else False)
