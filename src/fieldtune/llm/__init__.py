"""Decoder LLMs (causal LMs): prompting, classification as generation, instruction tuning.

model       the chat template, prompt/response encoding with the loss on response tokens only
            (loading the model: fieldtune.models.causal_lm; the predictors: fieldtune.predict)

run         train_llm: the runner `fieldtune train` calls for a decoder
classify    classification: label scoring (zero_shot, in_context) and training to emit the label
instruct    task causal_lm: instruction tuning, generation
ner         zero-shot NER: entities as JSON, parsed strictly, mapped to character offsets
"""
