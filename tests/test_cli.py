"""Every command-line entry point follows the shared conventions of e2ed2/cli.py.

- ``python -m M --help`` starts with ``usage: python -m M`` and every option, positional and
  sub-command of M's parser (walked recursively, sub-commands included) has a help text.
- A bad argument exits with 2, without a traceback, in one of exactly two shapes on stderr:
  * an input error caught by ``cli.run`` (a missing file, a bad value found after parsing):
    exactly ONE line, starting with ``error: ``;
  * an argparse usage error (an invalid value of a typed or choices option): the usage block —
    a first line ``usage: python -m M…`` and indented continuation lines — then exactly one
    last line ``python -m M…: error: …``; no other line mentions ``error:``.
  Missing inputs run as subprocesses (the ``__main__`` wiring is part of what is tested);
  invalid values run in-process through ``cli.run(main, argv)`` (the parser is the same).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2ed2 import cli

REPO = Path(__file__).resolve().parents[1]

# module run with `python -m` → module holding build_parser() / main()
CLIS = {
    "e2ed2.train": "e2ed2.train",
    "e2ed2.sample": "e2ed2.sample",
    "e2ed2.data": "e2ed2.data",
    "e2ed2.diagnose": "e2ed2.diagnose",
    "e2ed2.metrics.fid": "e2ed2.metrics.fid",
    "e2ed2.metrics.clip": "e2ed2.metrics.clip",
    "e2ed2.metrics.train_clip": "e2ed2.metrics.train_clip",
    "e2ed2.report": "e2ed2.report.cli",
    "e2ed2.assets": "e2ed2.assets.command",
    "e2ed2.latent": "e2ed2.latent",
    "e2ed2.datasets_remote": "e2ed2.datasets_remote",
}



def env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def run_module(module: str, *args: str, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env(**extra_env),
                          capture_output=True, text=True, timeout=300, check=False)


def parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The module's parser (every CLI module has build_parser())."""
    return importlib.import_module(CLIS[module]).build_parser()


def undocumented(parser: argparse.ArgumentParser, where: str) -> list[str]:
    """Every action without help, recursing into sub-commands; a sub-command needs its own help line
    (the sub-parsers action itself is described by those lines)."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not (helps.get(name) or "").strip():
                    missing.append(f"{where} {name} (sub-command)")
                missing += undocumented(sub, f"{where} {name}")
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    return missing


def assert_one_error(module: str, code: int, stdout: str, stderr: str) -> None:
    """Exit 2, no traceback, and stderr in one of the two shapes of the module docstring."""
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    assert code == 2, (code, stderr[-3000:])
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    if lines[0].startswith("usage:"):
        assert lines[0].startswith(f"usage: python -m {module}"), lines[0]
        assert lines[-1].startswith(f"python -m {module}") and ": error: " in lines[-1], lines[-1]
        assert all(line.startswith(" ") for line in lines[1:-1]), lines
        assert sum("error:" in line for line in lines) == 1, lines
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines


# ---- --help ---------------------------------------------------------------------------------
@pytest.mark.parametrize("module", list(CLIS))
def test_help_names_the_module(module):
    proc = run_module(module, "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: python -m {module}"), proc.stdout[:300]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("module", CLIS)
def test_every_option_has_help(module, monkeypatch):
    parser = parser_of(module, monkeypatch)
    assert parser.prog == f"python -m {module}"
    assert undocumented(parser, module) == []


# ---- bad arguments --------------------------------------------------------------------------
def missing_input_args(module: str, tmp: Path) -> list[str]:
    """Arguments that are complete but name an input that does not exist."""
    nope = tmp / "does-not-exist"
    return {
        "e2ed2.train": ["--config", f"{nope}.yaml", "--out", str(tmp / "run")],
        "e2ed2.sample": ["--ckpt", f"{nope}.pt", "--steps", "2", "--out", str(tmp / "samples")],
        "e2ed2.data": [f"{nope}.npz", "--out", str(tmp / "data.npz")],
        "e2ed2.diagnose": ["sigma-error", "--ckpt", f"{nope}.pt", "--data", "mnist5k", "--out", str(tmp / "e.csv")],
        "e2ed2.metrics.fid": ["calc", "--ref", f"{nope}.npz", "--data", "mnist5k", "--out", str(tmp / "fid.json")],
        "e2ed2.metrics.clip": ["calc", "--clip", f"small:{nope}.pt", "--data", "mnist5k", "--out", str(tmp / "c.json")],
        "e2ed2.metrics.train_clip": ["--data", f"{nope}.npz", "--out", str(tmp / "clip.pt")],
        "e2ed2.report": ["tables", "--table", f"{nope}.csv", "--out", str(tmp / "tables")],
        "e2ed2.assets": ["check", "--configfile", f"{nope}.yaml"],
        "e2ed2.latent": ["encode", "--data", f"{nope}.npz", "--out", str(tmp / "latents.npz")],
        "e2ed2.datasets_remote": ["cifar10", "--root", str(nope), "--out", str(tmp / "cifar10.npz")],
    }[module]


INVALID_VALUE_ARGS = {  # argparse rejects these values (a type or a choices check)
    "e2ed2.train": ["--watch-pid", "not-a-pid"],
    "e2ed2.sample": ["--ckpt", "x.pt", "--steps", "2", "--out", "o", "--sampler", "nope"],
    "e2ed2.data": ["mnist5k"],  # --out is required
    "e2ed2.diagnose": ["sigma-error", "--ckpt", "x.pt", "--data", "mnist5k", "--out", "o.csv", "--n", "many"],
    "e2ed2.metrics.fid": ["ref", "--data", "mnist5k", "--out", "o.npz", "--split", "nope"],
    "e2ed2.metrics.clip": ["ref", "--clip", "small:x.pt", "--out", "o.npz", "--split", "nope"],
    "e2ed2.metrics.train_clip": ["--data", "mnist5k", "--out", "o.pt", "--steps", "0"],
    "e2ed2.report": ["no-such-stage"],
    "e2ed2.assets": ["check", "--no-such-option"],
    "e2ed2.latent": ["encode", "--data", "mnist5k", "--out", "o.npz", "--mode", "nope"],
    "e2ed2.datasets_remote": ["coco30k", "--images", "i", "--captions", "c.json", "--out", "o.npz", "--n", "0"],
}


@pytest.mark.parametrize("module", CLIS)
def test_missing_input_is_one_error_line(module, tmp_path):
    proc = run_module(module, *missing_input_args(module, tmp_path))
    assert_one_error(module, proc.returncode, proc.stdout, proc.stderr)
    assert str(tmp_path / "does-not-exist") in proc.stderr  # the message names the input


@pytest.mark.parametrize("module", list(CLIS))
def test_invalid_value_is_a_usage_error(module, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    main = importlib.import_module(CLIS[module]).main
    with pytest.raises(SystemExit) as exit_:
        cli.run(main, INVALID_VALUE_ARGS[module])
    out = capsys.readouterr()
    assert_one_error(module, exit_.value.code, out.out, out.err)
    assert out.err.splitlines()[0].startswith("usage:")


# ---- --out that cannot be written: refused when the arguments are parsed, before any work --------
OUT_CASES = [  # (module, its arguments before --out, kind of --out)
    ("e2ed2.sample", ["--ckpt", "c.pt", "--steps", "1"], "folder"),
    ("e2ed2.train", ["--config", "c.yaml"], "folder"),
    ("e2ed2.metrics.fid", ["calc", "--ref", "r.npz", "--samples", "s"], "file"),
    ("e2ed2.metrics.clip", ["calc", "--clip", "small:c.pt", "--ref", "r.npz", "--samples", "s"], "file"),
]


@pytest.mark.parametrize("module,args,kind", OUT_CASES)
def test_out_that_cannot_be_written_is_a_usage_error(module, args, kind, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    main = importlib.import_module(CLIS[module]).main
    outs = [str(taken / "x.json"), str(taken) if kind == "folder" else str(tmp_path)]
    for out in outs:
        with pytest.raises(SystemExit) as exit_:
            cli.run(main, [*args, "--out", out])
        err = capsys.readouterr()
        assert_one_error(module, exit_.value.code, err.out, err.err)
        assert "argument --out" in err.err and out in err.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing written


# ---- python -m e2ed2.assets check --configfile ----------------------------------------------
def test_assets_check_default_config_passes_offline():
    proc = run_module("e2ed2.assets", "check", "--configfile", "workflows/config/default.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "REQUIRED" in out and "OPTIONAL" in out and "MISSING" not in out
    required = out.split("OPTIONAL")[0]
    assert "FID Inception" in required and "lpips" not in required and "VAE" not in required


def test_assets_check_names_the_missing_lpips_backbone(tmp_path):
    cfg = tmp_path / "lpips.yaml"
    cfg.write_text("models:\n  e2ed2:\n    method: {perceptual: lpips}\n")  # a partial override of the default
    torch_home = tmp_path / "torch"
    torch_home.mkdir()
    proc = run_module("e2ed2.assets", "check", "--configfile", str(cfg), TORCH_HOME=str(torch_home))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    required = proc.stdout.split("OPTIONAL")[0]
    missing = [line for line in required.splitlines() if "MISSING" in line]
    assert len(missing) == 1 and "lpips-alex" in missing[0], required
    assert str(torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in missing[0]
    assert "python -m e2ed2.assets fetch lpips-alex" in missing[0]


def test_latent_cli_imports_without_diffusers():
    """diffusers is the optional `latent` extra: the module and its --help work without it."""
    code = ("import sys; sys.modules['diffusers'] = None\n"
            "from e2ed2 import latent\n"
            "assert latent.build_parser().prog == 'python -m e2ed2.latent'\n"
            "try:\n    latent.load_vae('sd-vae-ft-mse')\n"
            "except ImportError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pip install 'e2ed2-harness[latent]'" in proc.stdout
