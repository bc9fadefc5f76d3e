"""A PromptModel lives on its model's device: every scoring loop sends its batches to ``label_rows.device``,
and outside training nothing moves the PromptModel as a whole, so a buffer left on the CPU sent a GPU
model CPU batches (no GPU had run an evaluation yet). Checked on PyTorch's "meta" device, which stands in
for any device that is not the CPU."""
from __future__ import annotations

from backend.prompt_model import PromptModel
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer, parse_verbalizer
from tests.tiny import tiny_model


def test_every_tensor_of_a_prompt_model_is_on_its_models_device(smol_tok):
    lm = tiny_model("causal", smol_tok)
    model = lm.model.to("meta")
    template = compile_template("{text_a} It was {mask}.", smol_tok)
    verb = compile_verbalizer(parse_verbalizer({"negative": ["bad", "awful"], "positive": ["good"]}), smol_tok)
    pm = PromptModel(model, "causal", template, verb)
    tensors = dict(pm.named_buffers()) | dict(pm.named_parameters())
    assert {"label_rows", "sub_index", "sub_mask", "word_mask"} <= set(tensors)
    assert {name: t.device.type for name, t in tensors.items() if t.device.type != "meta"} == {}

