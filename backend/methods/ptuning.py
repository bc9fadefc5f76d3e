"""P-tuning (Liu et al. 2021): the template's soft tokens are produced by an LSTM or MLP encoder.

The whole encoder (input rows, LSTM, MLP) is a submodule of the PromptModel, so it is saved with the run
and training resumes exactly (PEFT saves only the encoder's output). With ``residual`` (default) the
encoder's last layer starts at zero, so step 0 sees the vocabulary-initialised rows — the frozen model
reads real tokens from the start and the reparameterisation only learns a correction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.errors import ConfigError
from backend.methods.base import HIDDEN, Method, MethodContext
from backend.methods.soft import INIT_TEXT, check_soft_init, init_option, init_rows, num_tokens_option, soft_prefix
from backend.schema import Option

if TYPE_CHECKING:
    from backend.prompt_model import PromptModel


class PTuning(Method):
    name = "p-tuning"
    label = "P-tuning (soft tokens from a small encoder)"
    description = "soft tokens produced by an LSTM / MLP encoder, saved whole with the run"
    trains_soft_tokens = True
    default_lr = 3e-3
    modifies_base = False
    serving = "shared"
    options = {
        "encoder": Option(str, "lstm", choices=("lstm", "mlp"), label="Encoder",
                          doc="lstm (the paper's) relates the tokens to each other; mlp is smaller and faster"),
        "hidden_size": Option(int | None, None, **HIDDEN, label="Encoder hidden size", advanced=True,
                              doc="empty: the model's hidden size; lower it to save memory (even for lstm)"),
        "residual": Option(bool, True, label="Residual (start at the initial rows)", advanced=True,
                           doc="on: the encoder learns a correction of vocabulary-initialised rows, so step 0 "
                               "reads real tokens; off: the paper's plain encoder"),
        "num_tokens": num_tokens_option(8),
        "init": init_option("vocab"),
        "init_text": INIT_TEXT,
    }

    def check_options(self, opts: dict[str, Any]) -> None:
        check_soft_init(opts)
        if opts["encoder"] == "lstm" and opts["hidden_size"] is not None and opts["hidden_size"] % 2:
            # a bidirectional LSTM of hidden_size // 2 per direction feeds an MLP expecting hidden_size
            raise ConfigError(f"method.hidden_size: must be even for the lstm encoder, got {opts['hidden_size']}")

    def template_text(self, text: str, opts: dict[str, Any]) -> str:
        """Templates without soft tokens get ``num_tokens`` prepended (P-tuning needs some to encode)."""
        from backend.prompts.template import parse_template

        return text if parse_template(text).has_soft else soft_prefix(opts["num_tokens"]) + text

    def prepare(self, pm: PromptModel, opts: dict[str, Any], ctx: MethodContext) -> None:
        assert pm.soft_embedding is not None  # template_text guarantees soft tokens
        ids = [i for i in range(1, pm.template.num_soft_tokens + 1) if i not in pm.template.soft_init]
        init_rows(pm, ids, opts["init"], opts["init_text"], ctx.tokenizer)
        rows = pm.soft_embedding.weight
        hidden = opts["hidden_size"] or rows.shape[1]
        from backend.methods.ptuning_encoder import PTuningEncoder

        enc = PTuningEncoder(rows, opts["encoder"], hidden, opts["residual"]).to(rows.device)
        pm.soft_embedding = enc  # type: ignore[assignment]  # same call contract as nn.Embedding
