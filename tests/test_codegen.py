"""Generation of train_gpt.py: safe stripping, shippable-rule checks, the one flat module, its error paths."""
from __future__ import annotations

import ast
import base64
import lzma
import subprocess
import sys
import sysconfig

import pytest

from golf.builder import codegen
from golf.config import GolfConfig


def test_strip_source_keeps_semantics():
    src = '''"""module doc"""
from __future__ import annotations
# a comment
def f(a: int, *args: str, b: "float" = 2.0, **kw: dict) -> int:
    """doc"""
    s = """plain string
    keeps    its spaces"""
    return a + len(args) + int(b) + len(kw) + len(s)


class C:
    """only a docstring"""


class D:
    x: int = 3  # annotation kept: dataclasses need it
'''
    out = codegen.strip_source(src)
    assert "doc" not in out and "comment" not in out and "-> int" not in out
    assert "x: int = 3" in out
    ns1, ns2 = {}, {}
    exec(compile(src, "a", "exec"), ns1)
    exec(compile(out, "b", "exec"), ns2)
    assert ns1["f"](1, "x", b=3.0, k=1) == ns2["f"](1, "x", b=3.0, k=1)
    assert ns2["D"].x == 3 and ns2["C"].__doc__ is None


def test_shipped_config_behaves_the_same():
    """The config code inside train_gpt.py (merged, minified: annotation names renamed) parses the
    embedded config and env-var strings exactly as golf does."""
    import dataclasses

    import golf.config as real

    src, _, _ = codegen.shipped_source(True)
    mod = type(sys)("shipped_train_gpt")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(src, "train_gpt", "exec"), mod.__dict__)
    finally:
        del sys.modules[mod.__name__]
    shipped = [v for v in vars(mod).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
               and {f.name for f in dataclasses.fields(v)} >= {"model", "train", "eval", "quant"}]
    assert len(shipped) == 1
    delta = {"model": {"ve_layers": "9,10", "mlp_mult": "3.5", "skip_gates": "off", "num_layers": "1e1",
                       "parallel_mode": "add"},
             "train": {"iterations": 7.0, "ema_decay": "0.99"}, "quant": {"prune": 0}, "preset": "x"}
    got = shipped[0].from_dict(delta).to_dict()
    want = real.GolfConfig.from_dict(delta).to_dict()
    assert got == want and want["model"]["ve_layers"] == (9, 10) and want["model"]["num_layers"] == 10
    assert want["model"]["skip_gates"] is False and want["quant"]["prune"] is False


def test_config_defaults_have_their_annotated_types():
    """set_field coerces by the default's type (annotations are renamed in train_gpt.py): they must agree."""
    import dataclasses

    for section in dataclasses.fields(GolfConfig):
        if section.name == "preset":
            continue
        for f in dataclasses.fields(section.default_factory):
            assert type(f.default).__name__ == str(f.type).split("[")[0], f"{section.name}.{f.name}"


def test_check_shippable_flags_bad_imports():
    shipped = {"golf.config", "golf.metric"}
    assert codegen.check_shippable("m", "import os\nimport torch\nfrom golf.config import GolfConfig\n", shipped) == []
    probs = codegen.check_shippable("m", "import tqdm\nfrom golf.verifier import x\nfrom . import y\n", shipped)
    assert len(probs) == 3 and "tqdm" in probs[0] and "golf.verifier" in probs[1] and "relative" in probs[2]
    # lazy imports inside functions are allowed
    assert codegen.check_shippable("m", "def f():\n    import brotli\n", shipped) == []


def test_generated_wrapper_is_one_flat_module():
    text, info = codegen.generate(GolfConfig(), "lzma")
    assert info["bytes"] == len(text.encode())
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0] == "import lzma as L,base64 as B"
    b85 = lines[1].split('b85decode("', 1)[1].split('")', 1)[0]
    payload = lzma.decompress(base64.b85decode(b85), format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2}]).decode()
    tree = ast.parse(payload)
    # no import machinery and no golf imports: the modules share one namespace
    assert "meta_path" not in payload and "golf." not in payload
    assert not any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("golf") for n in ast.walk(tree))
    assert payload.rstrip().splitlines()[-1].startswith("main(__file__,")
    assert {"golf.model.gpt", "golf.metric", "golf.builder.container", "golf.builder.entry",
            "golf.config", "golf.trainer.loop", "golf.builder.quant"} <= set(info["modules"])
    # golf's own shippable list must itself be clean (else generate raises CodegenError)
    # (of the verifier, only the golf-eval/2 wire format ships: the artifact answers the verifier with it)
    assert "golf.verifier.scoring.protocol" in info["modules"]
    assert not any(m.startswith("golf.verifier") and m != "golf.verifier.scoring.protocol" or m == "golf.builder.build"
                   for m in info["modules"])
    _, eval_info = codegen.generate(GolfConfig(), "lzma", include_train=False)
    assert "golf.trainer.loop" not in eval_info["modules"] and eval_info["bytes"] < 0.7 * info["bytes"]


def test_wrapper_runs_without_golf_and_reports_missing_blob(tmp_path):
    text, _ = codegen.generate(GolfConfig(), "lzma")
    (tmp_path / "train_gpt.py").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": sysconfig.get_paths()["purelib"], "GOLF_MODE": "eval"}
    p = subprocess.run([sys.executable, "-S", "-s", "train_gpt.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0 and "no model blob" in p.stderr and "Traceback" not in p.stderr


def _run_wrapper(tmp_path, text: str, **env) -> subprocess.CompletedProcess:
    (tmp_path / "train_gpt.py").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": sysconfig.get_paths()["purelib"], **env}
    return subprocess.run([sys.executable, "-S", "-s", "train_gpt.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_eval_only_wrapper_refuses_train_mode_cleanly(tmp_path):
    text, info = codegen.generate(GolfConfig(), "lzma", include_train=False)
    assert not {"golf.trainer.loop", "golf.trainer.optim", "golf.builder.quant"} & set(info["modules"])
    p = _run_wrapper(tmp_path, text, GOLF_MODE="train")
    assert p.returncode == 2 and "ships no training path" in p.stderr and "Traceback" not in p.stderr


def test_wrapper_reports_an_unavailable_device_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    text, _ = codegen.generate(GolfConfig(), "lzma")
    p = _run_wrapper(tmp_path, text, GOLF_MODE="train", GOLF_DEVICE="cuda")
    assert p.returncode == 2 and "no CUDA GPU" in p.stderr and "Traceback" not in p.stderr


def test_seed_wrapper_fits_its_budget():
    """train_gpt.py for the seed config, training path included, within its budget: 24,000 bytes when set,
    24,500 since the frontier branches (the document-mask argument threaded through the model and the
    Stepper, +151 B with the frontier code folded out by FEATURE_FLAGS) and the byte sidecar the artifact
    reads (issue 27).  Shipping more code must either stay inside this budget or move toolkit-only code
    under TOOLKIT or a feature flag."""
    from golf.presets import preset_config

    pytest.importorskip("brotli")
    text, info = codegen.generate(preset_config("seed"), "auto")
    assert info["code_compressor"] == "brotli" and "golf.trainer.loop" in info["modules"]
    assert len(text.encode()) <= 24_500, len(text.encode())


def test_feature_flags_ship_only_what_the_config_runs():
    """codegen.FEATURE_FLAGS: the final record's Muon and storage routes are in the frontier preset's
    train_gpt.py and not in the seed's (its budget); the toolkit keeps them all."""
    from golf.presets import preset_config

    assert codegen.feature_flags() == {k: True for k in codegen.FEATURE_FLAGS}
    assert codegen.feature_flags(preset_config("seed")) == {k: False for k in codegen.FEATURE_FLAGS}
    # frontier keeps brotli (grouped is not the default until the full-size measurement says so)
    assert codegen.feature_flags(preset_config("frontier")) == {k: k != "TTT_CODE" for k in codegen.FEATURE_FLAGS}
    seed, _, _ = codegen.payload_source(preset_config("seed"), minify=False)
    frontier, _, _ = codegen.payload_source(preset_config("frontier"), minify=False)
    for marker in ("8.156554524902461", "zeropower_polar_express", "gate_int8_rows", "attn_gate"):
        assert marker in frontier, marker
    for marker in ("8.156554524902461", "zeropower_polar_express", "gate_int8_rows", "int8 row max", "ttt_"):
        assert marker not in seed, marker
    assert "ttt_" not in frontier  # until the artifact runs TTT (issue 24)


def test_design_md_lists_the_shipped_modules_as_declared():
    """docs/DESIGN.md's shipped-modules block is generated from SHIPPABLE / TRAIN_PATH and must be current."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    assert codegen.design_text(doc) == doc, f"docs/DESIGN.md is stale: regenerate it with `{codegen.DESIGN_REGENERATE}`"
    block = codegen.design_block()
    for p in codegen.SHIPPABLE + codegen.TRAIN_PATH:
        assert f"`golf/{p}`" in block
    evaluation, training = block.split("\n\n")
    assert "`golf/trainer/loop.py`" in training and "`golf/trainer/loop.py`" not in evaluation
    assert "`golf/metric.py`" in evaluation and "`golf/metric.py`" not in training
    with pytest.raises(codegen.CodegenError, match="no shipped-modules block"):
        codegen.design_text(doc.replace(codegen.DESIGN_END, ""))
