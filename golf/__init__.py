"""golf: train, pack, verify and submit Parameter Golf entries."""
__version__ = "0.1.0"

# True in the installed toolkit.  Code under `if TOOLKIT:` is only for the toolkit (resume,
# periodic checkpoints, Hub sync, progress bars, metrics.jsonl, long config checks); the
# builder removes it from the generated train_gpt.py, where TOOLKIT is False
# (golf/builder/slim.py).
TOOLKIT = True

# Build flags of features a config may leave off (golf.builder.codegen.FEATURE_FLAGS): True in the
# toolkit; in a generated train_gpt.py each is folded to its config's value like TOOLKIT, so code the
# run never uses is not shipped (the seed's code budget).
TOP_CODE = True  # the final record's model: document-bounded attention, SparseAttnGate, SmearGate, lane layout
POLAR_EXPRESS = True  # the final record's Muon: Polar-Express Newton-Schulz, bf16 momentum
FRONTIER_QUANT = True  # the final record's storage routes: int8 per-row gates, fp16 control tensors
GROUPED_CODE = True  # the grouped blob compressor (golf.builder.grouped)
LQER_CODE = True  # the LQER correction (golf.builder.lqer)
TTT_CODE = True  # score-first test-time training settings (golf.eval.ttt; eval.ttt_enabled)
