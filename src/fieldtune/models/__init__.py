"""Loading pretrained models, one loader per kind of network: a causal LM (``causal_lm``) and a
sentence embedder (``embedder``). Names are resolved through :mod:`fieldtune.zoo`; nothing here
knows about artifacts, tasks or training."""
