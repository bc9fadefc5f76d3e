"""Prepare what bench/gpu_check.py needs on the lent GPU machine, so a session lent one spends its few
device minutes on the check, not on finding out what the machine lacks.

That machine is bare and offline: its python3 has torch (CUDA), accelerate and tokenizers, but an older
transformers, no SQLAlchemy / Alembic (the worker check records a run) and no PEFT of our pin; and a call
carries at most 64 MiB, which SmolLM2's 98 MB GGUF does not fit. So this writes ``.gpu/`` (git-ignored):

    .gpu/whl/                      wheels of our pins of those packages, for the machine's Python 3.12
    .gpu/smollm2-135m-instruct/    the embedded model's config and tokenizer (no weights: gpu_check
                                   --random-weights builds the architecture with random ones there)
    .gpu/RUN.txt                   the command to give the device tool's ``run``, with ``carry: [".gpu"]``

    .venv/bin/python bench/gpu_bundle.py           # then: run(command=<RUN.txt>, carry=[".gpu"], timeout_s=600)

and copy the gpu.md / gpu.json that come back into bench/results/.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / ".gpu"
CARRY_LIMIT = 64 * 2 ** 20     # what one device call carries, the working tree included
# What the machine lacks or holds at another version (device/KINDS.md lists its packages): transformers
# 5.17 there (we pin 5.23, which checks regex >= 2025.10.22 at import; the machine's regex is not listed),
# no SQLAlchemy / Alembic / Mako. The rest of what gpu_check imports is there at versions transformers 5.23
# accepts (torch, accelerate 1.15, tokenizers 0.23.2, huggingface_hub 1.33, safetensors 0.8, numpy, pyyaml).
PACKAGES = ("transformers", "peft", "sqlalchemy", "alembic", "mako", "regex")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
RUN = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
       ".gpu/whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && set -o pipefail && "
       "python3 bench/gpu_check.py --random-weights .gpu/{model} --out $OUT 2>&1 | tee $OUT/log.txt")


def download_wheels(dest: Path) -> list[Path]:
    """Our installed version of each package (the pins requirements.txt gives, and their own deps'),
    as wheels for CPython 3.12 on x86-64 Linux."""
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in PACKAGES]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS), "-d", str(dest), *pins]
    subprocess.run(cmd, check=True)
    return sorted(dest.glob("*.whl"))


def model_files(dest: Path) -> Path:
    """The embedded model's config and tokenizer files (converted from its GGUF on first use)."""
    from backend.choices import DEFAULT_MODEL
    from backend.models.paths import default_cache_dir
    from backend.models.resolve import resolve_spec

    source = Path(resolve_spec(DEFAULT_MODEL, default_cache_dir()).location)
    target = dest / DEFAULT_MODEL
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(f, target / f.name)
    return target


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    wheels = download_wheels(OUT / "whl")
    model = model_files(OUT)
    command = RUN.format(model=model.name)
    (OUT / "RUN.txt").write_text(command + "\n")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum((ROOT / p).stat().st_size for p in tracked.decode().split("\0") if p and (ROOT / p).is_file())
    print(f"{len(wheels)} wheels: {', '.join(w.name.split('-')[0] + ' ' + w.name.split('-')[1] for w in wheels)}")
    print(f".gpu/ holds {size / 2 ** 20:.1f} MiB; with the tracked tree ({tree / 2 ** 20:.1f} MiB) a call carries "
          f"{(size + tree) / 2 ** 20:.1f} of its {CARRY_LIMIT // 2 ** 20} MiB")
    print(f"device run (carry [\".gpu\"], timeout_s 600; {len(command)} of 2000 characters):\n{command}")
    return 0 if size + tree < CARRY_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
