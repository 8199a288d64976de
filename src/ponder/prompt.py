"""The prompt layout: the one place that decides which tokens a model sees, for training and inference.

    [bos] "Question: {question}\n" ["Speed: {c}\n"] <think> reasoning </think> "Answer: {answer}" <eos>

* ``<think>`` / ``</think>`` are the thinking separators (added as special tokens to every model).
* The speed marker is CoLaR's thinking speed, the compression factor ``c`` (or ``auto``). CoT fills it
  with speed 1, as the CoLaR codebase does: a CoT model *is* CoLaR at ``c = 1``, so CoLaR training can
  continue from it without a jump. No-CoT leaves it out and its prompt already ends with ``</think>``.
* The reasoning is the steps joined by spaces. CoLaR replaces its token embeddings by compressed vectors.

A model whose tokenizer has a chat template is trained and asked through it (``chat_template``): the
question is the user turn, rendered by the template with its generation prompt; the speed marker, the
thinking between the model's own delimiters (``think_start`` / ``think_end``) and the answer then form
the assistant turn, ended by the tokenizer's end of turn. So an instruct model fine-tuned by ponder sees
the prompt it will get from vLLM. An explicit reasoner from outside ponder (Qwen3, R1-distill) is asked the
same way with no speed marker and a free-form answer (``speed_template`` and ``answer_template`` reduced).

Every piece is encoded on its own and concatenated, so training sequences and inference prompts share
their tokens exactly (a BPE merge can never cross a separator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass
class PromptLayout:
    question_template: str = "Question: {question}\n"
    speed_template: str = "Speed: {speed}\n"
    answer_template: str = "Answer: {answer}"
    step_separator: str = " "
    chat_template: bool = False  # the question through the tokenizer's chat template
    think_start: str = THINK_START
    think_end: str = THINK_END

    def to_dict(self) -> dict:
        return asdict(self)

    def words(self) -> str:
        """The layout's own text, for a tokenizer built from scratch to learn ("Question:" as one token, not 9)."""
        return "\n".join([self.question_template, self.speed_template, self.answer_template, self.step_separator])

    # -- pieces ---------------------------------------------------------------------------------------
    def _ids(self, tokenizer, text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def question_ids(self, tokenizer, question: str) -> list[int]:
        if self.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                 tokenize=False, enable_thinking=True)
            # A template that opens the thinking itself (R1-distill) ends with think_start: the layout adds it
            # after the speed marker instead, the same token either way.
            if text.rstrip().endswith(self.think_start):
                text = text.rstrip()[: -len(self.think_start)]
            return self._ids(tokenizer, text)
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return bos + self._ids(tokenizer, self.question_template.format(question=question))

    def speed_ids(self, tokenizer, speed: int | str | None) -> list[int]:
        """The thinking-speed marker; encoded on its own so training can swap it per batch."""
        return [] if speed is None or not self.speed_template else self._ids(tokenizer, self.speed_template.format(speed=speed))

    def prompt_ids(self, tokenizer, question: str, speed: int | str | None) -> list[int]:
        """Question and speed marker, ending with ``<think>``: where reasoning (tokens or latents) starts."""
        return self.question_ids(tokenizer, question) + self.speed_ids(tokenizer, speed) + [self.think_ids(tokenizer)[0]]

    def reasoning_ids(self, tokenizer, steps: list[str]) -> list[int]:
        return self._ids(tokenizer, self.step_separator.join(steps))

    def answer_ids(self, tokenizer, answer: str) -> list[int]:
        """``</think>``, the answer, ``<eos>``: what every method must produce after its reasoning."""
        end = self.think_ids(tokenizer)[1]
        return [end] + self._ids(tokenizer, self.answer_template.format(answer=answer)) + [tokenizer.eos_token_id]

    def think_ids(self, tokenizer) -> tuple[int, int]:
        """The token ids of the thinking delimiters (each is one token: ``load_model`` checks it)."""
        return tokenizer.convert_tokens_to_ids(self.think_start), tokenizer.convert_tokens_to_ids(self.think_end)

    # -- inference ------------------------------------------------------------------------------------
    def generation_prompt(self, tokenizer, question: str, speed: int | str | None, think: bool) -> list[int]:
        """The prompt a model continues at inference. Without thinking (No-CoT) it ends with ``</think>``."""
        ids = self.prompt_ids(tokenizer, question, speed)
        return ids if think else ids + [self.think_ids(tokenizer)[1]]

    def parse_answer(self, text: str) -> str:
        """The answer from the text decoded after ``</think>`` (the answer template stripped)."""
        prefix, _, suffix = self.answer_template.partition("{answer}")
        text = text.strip()
        if prefix.strip() and text.startswith(prefix.strip()):
            text = text[len(prefix.strip()):]
        if suffix.strip() and text.endswith(suffix.strip()):
            text = text[: -len(suffix.strip())]
        return text.strip()
