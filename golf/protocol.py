"""The challenge's contract in one place: the byte limit, the artifact's file names, the lines it
prints, the environment names and the exit codes (docs/DESIGN.md, "Artifact directory").

Every golf module imports these from here; none writes them again (tests/test_house_rules.py).
Shipped inside the generated ``train_gpt.py``: standard library only, constants only, one
assignment per name (the builder drops the ones the shipped code does not read).  Not to be
confused with :mod:`golf.verifier.scoring.protocol`, the golf-eval/2 wire format.
"""

# the cap on code bytes + compressed model bytes (decimal: 16 MB, not 16 MiB)
LIMIT_BYTES = 16_000_000
BOS_ID = 1  # every document of a token shard starts with this id (SPEC §1.2; no EOS)

# the artifact directory (`golf build` writes it; `golf verify` / `golf submit` read it)
CODE_NAME = "train_gpt.py"
BLOB_NAME = "final_model.int6.ptz"
REPORT_NAME = "build_report.json"
VERIFY_NAME = "verify.json"
# a records folder (`golf submit` writes it; `golf verify records` lints it): these + CODE_NAME + logs
SUBMISSION_NAME = "submission.json"
README_NAME = "README.md"

# what train_gpt.py prints when it evaluates, in this order (the sliding line when sliding is on)
LABEL_ROUNDTRIP = "final_int6_roundtrip"
LABEL_SLIDING = "final_int6_sliding_window"
LABEL_TRAINED = "final_model"  # the training run's own pre-quantization evaluation
EVAL_LINE = "{} val_loss:{:.8f} val_bpb:{:.8f} eval_time:{:.0f}ms"  # label, loss, bpb, ms
SIZE_LINES = ("Code size: {0} bytes\nSerialized model int6+{1}: {2} bytes\n"
              "Total submission size int6+{1}: {3} bytes")  # code, compressor, blob, total

# environment names read by train_gpt.py and the toolkit
ENV_MODE = "GOLF_MODE"  # eval | train
ENV_DEVICE = "GOLF_DEVICE"  # cpu | cuda | auto
ENV_RUN_DIR = "GOLF_RUN_DIR"  # GOLF_MODE=train: where train.log goes
ENV_DATA_DIR = "DATA_DIR"
ENV_VAL_MAX_TOKENS = "VAL_MAX_TOKENS"  # evaluate on a prefix of the validation set (0: all of it)
ENV_EVAL_PROTOCOL = "GOLF_EVAL_PROTOCOL"  # golf-eval/2: answer the verifier's windows instead of reading data
ENV_EVAL_IN = "GOLF_EVAL_IN"  # pipe fd the artifact reads requests from
ENV_EVAL_OUT = "GOLF_EVAL_OUT"  # pipe fd it writes answers to
ENV_SANDBOX_FORCE_NO_NS = "GOLF_SANDBOX_FORCE_NO_NS"  # "1": the verifier behaves as if namespaces were refused

# exit codes of train_gpt.py
EXIT_USAGE = 2  # bad GOLF_MODE, no training path shipped, or a device / precision / training-data problem
EXIT_BAD_BLOB = 3  # the blob is missing, truncated, corrupt or of an unknown version
EXIT_NO_DATA = 4  # validation shards / tokenizer not found
# exit codes of the toolkit's commands (1: a GolfError, printed as one `Error: ...` line)
EXIT_INTERRUPTED = 130  # Ctrl-C, the shell's status for SIGINT
# exit codes of `golf verify` (and `golf submit`'s lint): the one table `golf verify --help` and
# docs/cli-verify.md are built from
EXIT_OK = 0
EXIT_RECORDS = 3
EXIT_MALFORMED = 10
EXIT_SIZE = 11
EXIT_SCORE = 12
EXIT_RUNTIME = 13
EXIT_TIMEOUT = 14
EXIT_NETWORK = 15
EXIT_ACCESS = 16
EXIT_INVALID = 17
EXIT_CANNOT_ISOLATE = 18
EXIT_MEMORY = 19
EXIT_CPU_TIME = 20
EXIT_FILE_SIZE = 21
EXIT_PROCESSES = 22
EXIT_UNVERIFIED = 23
EXIT_TOKENIZER = 24
EXIT_NAMES = {
    EXIT_OK: "all checks passed",
    EXIT_RECORDS: "records lint: at least one folder failed",
    EXIT_MALFORMED: "malformed artifact (missing files, bad blob header, corrupt compression)",
    EXIT_SIZE: "size over the limit",
    EXIT_SCORE: "score mismatch beyond tolerance (claimed vs verified, or the artifact's answers vs the trusted path)",
    EXIT_RUNTIME: "runtime error in the artifact",
    EXIT_TIMEOUT: "evaluation ran past the time limit",
    EXIT_NETWORK: "network access attempted",
    EXIT_ACCESS: "forbidden file access (training shards, the original data dir, code outside the artifact)",
    EXIT_INVALID: "invalid scoring (protocol failure, too few targets, non-normalized, non-causal or stateful "
                  "answers caught by audits)",
    EXIT_CANNOT_ISOLATE: "cannot isolate: the OS refused user/mount/PID/network namespaces (see --weak-isolation)",
    EXIT_MEMORY: "memory limit exceeded",
    EXIT_CPU_TIME: "CPU-time limit exceeded",
    EXIT_FILE_SIZE: "file-size limit exceeded",
    EXIT_PROCESSES: "process limit exceeded, or processes survived the run",
    EXIT_UNVERIFIED: "unverified: the artifact does not speak golf-eval/2 (only printed a score); "
                     "--allow-unverified makes this a warning",
    EXIT_TOKENIZER: "tokenizer mismatch (vocabulary or sha256 differs from the model, the manifest or the build "
                    "report)",
}
