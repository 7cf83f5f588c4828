"""golf: train, pack, verify and submit Parameter Golf entries."""
__version__ = "0.1.0"

# True in the installed toolkit.  Code under `if TOOLKIT:` is only for the toolkit (resume,
# periodic checkpoints, Hub sync, progress bars, metrics.jsonl, long config checks); the
# builder removes it from the generated train_gpt.py, where TOOLKIT is False
# (golf/builder/slim.py).
TOOLKIT = True
# Build flags like TOOLKIT, True in the toolkit: in a train_gpt.py, GROUPED_CODE is True only when its
# blob uses the grouped compressor and LQER_CODE only when LQER is on (golf/builder/codegen.py folds
# them), so the grouped coder and the LQER code ship only where they are used.
GROUPED_CODE = True
LQER_CODE = True
