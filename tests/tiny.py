"""Overrides that make any experiment config train in seconds: a one-layer ALBERT of width 16
(in place of the experiment's model, e.g. the demo's MiniLM) on a few dozen generated questions
(shared by the tests that run whole configs)."""

TINY_MODEL = [
    "model=albert_tiny", "model.tokenizer.vocab_size=400", "model.config.hidden_size=16",
    "model.config.embedding_size=16", "model.config.intermediate_size=32",
    "model.config.num_hidden_layers=1", "model.config.num_hidden_groups=1",
    "model.config.num_attention_heads=1", "model.config.max_position_embeddings=96",
]
TINY = [
    "logger=none", "trainer.progress=false", "data.num_train=24", "data.num_validation=8",
    "data.max_length=96", "data.doc_stride=32", "data.max_question_length=32", *TINY_MODEL,
    "trainer.batch_size=12", "trainer.log_every_steps=1", "eval.batch_size=8",
]
