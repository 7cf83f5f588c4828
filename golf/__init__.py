"""golf: train, pack, verify and submit Parameter Golf entries."""
__version__ = "0.1.0"

# True in the installed toolkit.  Code under `if TOOLKIT:` is only for the toolkit (resume,
# periodic checkpoints, Hub sync, progress bars, metrics.jsonl, long config checks); the
# builder removes it from the generated train_gpt.py, where TOOLKIT is False
# (golf/builder/slim.py).
TOOLKIT = True

# True in the toolkit.  Code under `if TOP_CODE:` serves only the 2026-04-27 record's features
# (document-bounded attention, SparseAttnGate, SmearGate, model-level lane weights, the skip after
# the lane split); the builder removes it from a train_gpt.py whose config uses none of them
# (golf.builder.codegen.top_code), so older presets ship the code they shipped before.
TOP_CODE = True
