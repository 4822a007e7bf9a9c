"""Decoder LLMs (causal LMs) as components the recipes and predictors share.

classify    label scoring: each label's answer scored after the prompt (a token trie, a cached shared
            prefix, a calibration shift), in-context shot selection, LLMClassifier
calibration which calibration (none / batch / content-free, + the label prior) dev chooses
generation  answer perplexity and generation (greedy / sampled, batched, streamed, cancellable)
ner         NER by prompting: entities as JSON, parsed strictly, mapped to words and character offsets

Chat encoding is in fieldtune.data.chat, loading in fieldtune.models.causal_lm, the runs in
fieldtune.recipes (llm_classify, instruct, llm_ner), the predictors in fieldtune.predict.
"""
