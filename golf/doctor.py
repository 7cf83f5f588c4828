"""``golf doctor``: a preflight for the machine a run is about to use.

:func:`collect_facts` looks (versions, GPUs, bf16/fp16, FlashAttention-3, torch.compile,
NCCL, disk, RAM, Hub reachability, platform); :func:`diagnose` judges the facts against a
preset with the planner's memory estimate and returns problems (the run cannot work here)
and warnings (it can, worse), each one line saying what to do.  Facts are plain JSON, so a
report saved on one machine (``--json``) can be re-judged on another (``--facts``).
Nothing here waits longer than a few seconds: the network probe is one DNS lookup and one
TCP connect under a hard deadline, no retries.
"""
from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from golf.config import GolfConfig
from golf.plan import PRESET_HARDWARE, GiB, GpuSpec, detected_spec, make_plan, precision_label

NET_TIMEOUT_S = 3.0  # the whole Hub probe (DNS + connect)
SHARD_BYTES = 1024 + 2 * 100_000_000  # header + uint16 tokens of one official shard


# -- facts -------------------------------------------------------------------------------------------
def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def gpu_facts() -> list[dict]:
    import torch
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"name": p.name, "memory_gib": round(p.total_memory / GiB, 2),
                    "capability": [p.major, p.minor], "bf16": p.major >= 8, "fp16": p.major >= 6})
    return out


def fa3_facts() -> dict:
    """Is ``flash_attn_interface`` importable (the model's FA3 path), and why not."""
    try:
        importlib.import_module("flash_attn_interface")
        return {"importable": True, "error": None}
    except Exception as e:  # ImportError, or a broken build raising anything
        return {"importable": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


def compile_facts(cuda: bool, try_compile: bool = False) -> dict:
    """torch.compile's pieces: inductor, triton (GPU) or a C++ compiler (CPU); optionally a real compile."""
    out: dict = {}
    try:
        importlib.import_module("torch._inductor")
        out["inductor"] = True
    except Exception as e:
        out["inductor"], out["inductor_error"] = False, str(e).splitlines()[0]
    try:
        triton = importlib.import_module("triton")
        out["triton"] = getattr(triton, "__version__", "yes")
    except Exception:
        out["triton"] = None
    cxx = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
    out["cxx"] = shutil.which(cxx) if cxx else None
    out["works"] = bool(out["inductor"] and (out["triton"] if cuda else out["cxx"]))
    if try_compile and out["works"]:
        out.update(_try_compile(cuda))
    return out


def _try_compile(cuda: bool) -> dict:
    import torch
    dev = "cuda" if cuda else "cpu"
    t0 = time.perf_counter()
    try:
        torch._dynamo.reset()
        fn = torch.compile(lambda x: torch.nn.functional.gelu(x) * 2 + 1)
        x = torch.randn(64, device=dev)
        ok = torch.allclose(fn(x), torch.nn.functional.gelu(x) * 2 + 1, atol=1e-5)
        return {"tried": True, "works": bool(ok), "seconds": round(time.perf_counter() - t0, 2)}
    except Exception as e:
        return {"tried": True, "works": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}


def nccl_facts(cuda: bool) -> dict:
    import torch
    import torch.distributed as dist
    out = {"available": bool(dist.is_available() and dist.is_nccl_available()), "version": None}
    if cuda and out["available"]:
        try:
            out["version"] = ".".join(str(v) for v in torch.cuda.nccl.version())
        except Exception:
            pass
    return out


def memory_facts() -> dict:
    """Host RAM in GiB from /proc/meminfo (total, available); None where unknown."""
    info = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            info[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    total = info.get("MemTotal")
    if total is None and hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total = None
    avail = info.get("MemAvailable")
    return {"total_gib": round(total / GiB, 2) if total else None,
            "available_gib": round(avail / GiB, 2) if avail else None}


def disk_facts(path: str) -> dict:
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    u = shutil.disk_usage(p)
    return {"path": str(p), "free_gib": round(u.free / GiB, 2)}


def probe_network(url: str | None = None, timeout: float = NET_TIMEOUT_S) -> dict:
    """Does the Hub (``HF_ENDPOINT`` or huggingface.co) answer an HTTP HEAD request?

    One request (DNS, connect, TLS, response) in a daemon thread joined for at most ``timeout``
    seconds, never retried.  Reachable means an answer below 400: a TCP connect alone is not
    proof (sandboxes and captive proxies accept every connection and answer 4xx themselves).
    """
    import urllib.error
    import urllib.request
    url = url or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    t0 = time.perf_counter()
    box: dict = {}

    def head():
        try:
            req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "golf-doctor"})
            with urllib.request.urlopen(req, timeout=timeout) as r:
                box["status"] = r.status
        except urllib.error.HTTPError as e:
            box["status"] = e.code
        except Exception as e:  # URLError (DNS, refused, TLS), timeouts, bad URLs
            box["error"] = f"{type(e).__name__}: {getattr(e, 'reason', e)}"

    th = threading.Thread(target=head, daemon=True)
    th.start()
    th.join(timeout)
    out = {"url": url, "reachable": False, "status": box.get("status")}
    if "status" in box:
        out["reachable"] = box["status"] < 400
        if not out["reachable"]:
            out["error"] = f"HTTP {box['status']} (a proxy or firewall in between?)"
    else:
        out["error"] = box.get("error", f"no answer within {timeout:.0f} s")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def detect_platform(gpus: list[dict], environ=None) -> str:
    """kaggle | colab | 8xH100 | 1xH100 | GPU | cpu (what the machine looks like)."""
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_KERNEL_RUN_TYPE") or env.get("KAGGLE_URL_BASE"):
        return "kaggle"
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU") is not None or "google.colab" in sys.modules:
        return "colab"
    hopper = [g for g in gpus if "H100" in g["name"] or "H200" in g["name"]]
    if hopper and len(hopper) == len(gpus):
        return "8xH100" if len(gpus) >= 8 else "1xH100"
    return "GPU" if gpus else "cpu"


def suggest_preset(facts: dict) -> str:
    """The preset sized for this machine."""
    gpus, plat = facts["gpus"], facts["platform"]
    t4 = gpus and all("T4" in g["name"] for g in gpus)
    if plat == "kaggle" or (t4 and len(gpus) >= 2):
        return "kaggle-1h"
    if plat == "colab" or t4:
        return "colab-1h"
    if plat == "8xH100":
        return "8xh100"
    return "seed" if gpus else "tiny"


def collect_facts(data_dir: str = ".", try_compile: bool = False, net_url: str | None = None) -> dict:
    """Everything ``golf doctor`` reports about this machine, as JSON-able data."""
    import torch
    cuda = torch.cuda.is_available()
    gpus = gpu_facts()
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]) if cuda else None
    facts = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "driver": driver.splitlines()[0] if driver else None, "gpus": gpus,
        "cpu_bf16_autocast": True, "fa3": fa3_facts(), "compile": compile_facts(cuda, try_compile),
        "nccl": nccl_facts(cuda), "ram": memory_facts(), "disk": disk_facts(data_dir), "data_dir": data_dir,
        "network": probe_network(net_url), "cpus": os.cpu_count(),
    }
    facts["platform"] = detect_platform(gpus)
    facts["suggested_preset"] = suggest_preset(facts)
    return facts


# -- judgement --------------------------------------------------------------------------------------
def attention_backend(facts: dict, label: str) -> tuple[str, str]:
    """(FA3 | SDPA, why) as ``golf.model.gpt.attend`` will decide it."""
    gpus = facts["gpus"]
    if not gpus:
        return "SDPA", "no CUDA GPU"
    if gpus[0]["capability"][0] != 9:
        sm = "".join(map(str, gpus[0]["capability"]))
        return "SDPA", f"FA3 needs a Hopper GPU (sm_90); {gpus[0]['name']} is sm_{sm}"
    if not facts["fa3"]["importable"]:
        return "SDPA", f"flash_attn_interface is not importable ({facts['fa3']['error']})"
    if label != "bf16":
        return "SDPA", f"FA3 runs only in bf16; this run is {label}"
    return "FA3", "Hopper GPU, flash_attn_interface importable, bf16"


def _spec(facts: dict) -> GpuSpec | None:
    g = facts["gpus"][0] if facts["gpus"] else None
    return detected_spec(g["name"], g["memory_gib"], tuple(g["capability"])) if g else None


def diagnose(facts: dict, cfg: GolfConfig) -> dict:
    """``{"problems": [...], "warnings": [...], "plan": ..., "attention": ...}`` for running ``cfg`` here."""
    problems, warnings = [], []
    gpus, spec = facts["gpus"], _spec(facts)
    t = cfg.train
    want_gpu, want_n = PRESET_HARDWARE.get(cfg.preset, ("H100", 1))
    label = precision_label(t.dtype, spec)
    if not gpus and want_gpu:
        problems.append(f"no CUDA GPU: preset {cfg.preset} is sized for {want_n}x{want_gpu}; "
                        "run it on a GPU machine, or use --preset tiny here")
    if gpus and t.dtype == "bf16" and not gpus[0]["bf16"]:
        problems.append(f"preset {cfg.preset} trains in bf16 but {gpus[0]['name']} has no bf16: "
                        f"use --preset {suggest_preset(facts)} or --dtype fp16")
    if not gpus and t.dtype == "fp16":
        problems.append("fp16 training needs a CUDA GPU: use --dtype fp32 or bf16 on the CPU")
    world = len(gpus) if gpus else 1
    if gpus and want_n > len(gpus):
        warnings.append(f"preset {cfg.preset} is sized for {want_n} GPUs, {len(gpus)} visible: it runs with "
                        f"{want_n // max(len(gpus), 1)}x the gradient accumulation and fewer steps in the cap; "
                        f"consider --preset {suggest_preset(facts)}")
    plan = make_plan(cfg, spec, world if gpus else 1, data_dir=facts.get("data_dir"),
                     source="detected" if gpus else "cpu")
    if spec is not None and not plan["fits_memory"]:
        fix = (f"lower --micro-batch-seqs to {plan['max_micro_batch_seqs']}" if plan["max_micro_batch_seqs"]
               else "use a smaller model or a bigger GPU")
        problems.append(f"estimated peak memory {plan['memory']['total'] / GiB:.1f} GiB per GPU exceeds "
                        f"{spec.memory_gib:.0f} GiB on {spec.name} at micro-batch {plan['micro_batch_seqs']}: {fix}")
    comp = facts["compile"]
    if t.compile and not comp["works"]:
        need = "triton (pip install triton)" if gpus else "a C++ compiler (g++)"
        problems.append(f"train.compile is on but torch.compile cannot work here: needs {need}; or use --no-compile")
    if gpus and world > 1 and not facts["nccl"]["available"]:
        problems.append(f"{world} GPUs but NCCL is not available in this torch build: install a CUDA torch "
                        "wheel with NCCL, or train with --nproc 1")
    backend, why = attention_backend(facts, label)
    if backend == "SDPA" and gpus and gpus[0]["capability"][0] == 9:
        warnings.append(f"attention falls back to SDPA ({why}): install FlashAttention-3 for the record's speed")
    _data_checks(facts, plan, problems, warnings)
    return {"preset": cfg.preset, "problems": problems, "warnings": warnings, "plan": plan,
            "attention": {"backend": backend, "why": why}, "dtype": label}


def _data_checks(facts: dict, plan: dict, problems: list, warnings: list) -> None:
    """Shards present or downloadable, disk for the missing ones, host RAM."""
    s = plan["shards"]
    if "dataset_dir" not in s:
        return
    missing = max(0, s["shards_needed"] - s["train_shards_present"]) + (0 if s["val_present"] else 1)
    need_gib = missing * SHARD_BYTES / GiB
    if missing and facts["disk"]["free_gib"] < need_gib:
        problems.append(f"{missing} shards missing ({need_gib:.1f} GiB) but only {facts['disk']['free_gib']:.1f} "
                        f"GiB free at {facts['disk']['path']}: free disk or pass --data on a bigger volume")
    if missing and not facts["network"]["reachable"]:
        problems.append(f"{missing} shards missing under {s['dataset_dir']} and the Hub is unreachable "
                        f"({facts['network'].get('error')}): copy the data there, or set HF_ENDPOINT to a mirror")
    elif missing:
        warnings.append(f"{missing} shards missing under {s['dataset_dir']}: "
                        f"golf data download --train-shards {s['shards_needed']}")
    ram = facts["ram"].get("available_gib")
    if ram is not None and ram < 4:
        warnings.append(f"only {ram:.1f} GiB RAM available: validation tokens and checkpoints need a few GiB")


def report_lines(facts: dict, verdict: dict) -> list[str]:
    """The human-readable report: one line per fact, then OK / WARN / FAIL lines."""
    g = facts["gpus"]
    gpu_line = ", ".join(f"{x['name']} {x['memory_gib']:.0f} GiB sm_{x['capability'][0]}{x['capability'][1]}"
                         for x in g) or "none"
    comp, net, fa3 = facts["compile"], facts["network"], facts["fa3"]
    lines = [
        f"python {facts['python']}  torch {facts['torch']}  cuda {facts['cuda'] or '-'}  "
        f"driver {facts['driver'] or '-'}",
        f"gpus: {len(g)} ({gpu_line})",
        f"precision: bf16 {'yes' if g and all(x['bf16'] for x in g) else ('cpu autocast' if not g else 'no')}, "
        f"fp16 {'yes' if g and all(x['fp16'] for x in g) else 'no'}; this run: {verdict['dtype']}",
        f"attention: {verdict['attention']['backend']} ({verdict['attention']['why']}); FlashAttention-3 "
        f"{'importable' if fa3['importable'] else 'not importable'}",
        f"torch.compile: {'works' if comp['works'] else 'unavailable'} (inductor {comp['inductor']}, triton "
        f"{comp['triton'] or '-'}, c++ {comp['cxx'] or '-'}"
        f"{', test compile ' + ('ok' if comp.get('works') else 'failed') if comp.get('tried') else ''})",
        f"nccl: {'yes ' + (facts['nccl']['version'] or '') if facts['nccl']['available'] else 'no'}",
        f"ram: {facts['ram']['total_gib']} GiB total, {facts['ram']['available_gib']} GiB available; "
        f"disk: {facts['disk']['free_gib']} GiB free at {facts['disk']['path']}",
        f"network: {net['url']} {'reachable' if net['reachable'] else 'unreachable'} in {net['seconds']} s"
        f"{'' if net['reachable'] else ' (' + str(net.get('error')) + ')'}",
        f"platform: {facts['platform']}; suggested preset: {facts['suggested_preset']}",
    ]
    p = verdict["plan"]
    lines.append(f"preset {verdict['preset']}: ~{p['memory']['total'] / GiB:.1f} GiB per "
                 f"{'GPU' if p.get('run') else 'process'} at micro-batch "
                 f"{p['micro_batch_seqs']}, {p['grad_accum_steps']} accum steps"
                 + (f", ~{p['run']['steps']:,} steps in the cap" if p.get("run") else ""))
    lines += [f"WARN {w}" for w in verdict["warnings"]]
    lines += [f"FAIL {x}" for x in verdict["problems"]]
    lines.append("OK: ready to run" if not verdict["problems"] else
                 f"NOT READY: {len(verdict['problems'])} problem(s) above")
    return lines


def _doctor_command():
    import json

    import click

    from golf.fsutil import atomic_write_json
    from golf.presets import PRESETS, preset_config

    @click.command("doctor")
    @click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
                  help="Judge this preset on this machine (default: the suggested one).")
    @click.option("--data", "data_dir", default="./data", show_default=True,
                  help="Data root to check for shards and free disk.")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write facts + verdict as JSON.")
    @click.option("--try-compile", is_flag=True, help="Also torch.compile a small function for real (seconds on a GPU, "
                  "up to a minute on a CPU).")
    @click.option("--facts", "facts_in", type=click.Path(exists=True, dir_okay=False),
                  help="Judge the facts of a saved report (`golf doctor --json`) instead of this machine.")
    def doctor(preset, data_dir, json_out, try_compile, facts_in):
        """Preflight: versions, GPUs, bf16/fp16, FlashAttention-3 vs SDPA, torch.compile, NCCL,
        disk, RAM and Hub reachability, then whether PRESET can run here.

        Exits 1 when the preset cannot run on this machine (each problem is one FAIL line saying
        what to do), 0 otherwise.  Recognises Kaggle 2xT4, Colab T4 and 1x/8xH100 and suggests
        the matching preset.

        \b
        Examples:
          golf doctor
          golf doctor --preset kaggle-1h --data ./data --json doctor.json
          golf doctor --facts doctor.json --preset seed     # re-judge a saved report
        """
        if facts_in:
            try:
                saved = json.loads(Path(facts_in).read_text(encoding="utf-8"))
                facts = saved.get("facts", saved)
                facts["gpus"], facts["platform"]  # noqa: B018 - the keys every check reads
            except (OSError, ValueError, KeyError, AttributeError) as e:
                raise click.UsageError(f"--facts {facts_in}: not a golf doctor report ({e})") from None
        else:
            facts = collect_facts(data_dir, try_compile)
        cfg = preset_config(preset or facts["suggested_preset"])
        cfg.train.data_dir = facts.get("data_dir", data_dir)
        verdict = diagnose(facts, cfg)
        for line in report_lines(facts, verdict):
            click.echo(line)
        if json_out:
            atomic_write_json(json_out, {"facts": facts, "verdict": verdict}, sort_keys=True)
        if verdict["problems"]:
            sys.exit(1)

    return doctor


doctor_command = _doctor_command()
__all__ = ["collect_facts", "diagnose", "probe_network", "doctor_command"]
