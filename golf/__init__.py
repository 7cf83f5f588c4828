"""golf: train, pack, verify and submit Parameter Golf entries."""
__version__ = "0.1.0"

# True in the installed toolkit.  Code under `if TOOLKIT:` is only for the toolkit (resume,
# periodic checkpoints, Hub sync, progress bars, metrics.jsonl, long config checks); the
# builder removes it from the generated train_gpt.py, where TOOLKIT is False
# (golf/builder/slim.py).
TOOLKIT = True
