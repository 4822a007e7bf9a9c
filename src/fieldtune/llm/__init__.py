"""Decoder LLMs (causal LMs): prompting, classification as generation, instruction tuning.

model       loading a causal LM + tokenizer, the chat template, prompt/response encoding with the
            loss on response tokens only

run         train_llm: the runner `fieldtune train` calls for a decoder
predictor   LLMPredictor: the Predictor of a `kind: llm` artifact
classify    classification: label scoring (zero_shot, in_context) and training to emit the label
instruct    task causal_lm: instruction tuning, generation, ChatPredictor (/v1/chat/completions)
ner         zero-shot NER: entities as JSON, parsed strictly, mapped to character offsets
"""
