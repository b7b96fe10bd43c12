"""``python -m e2ed2.train``: train one method with the shared loop (``e2ed2.trainer``) from a run
config; a rerun resumes from <out>/latest.pt when the config is unchanged.

The library API keeps its names here: ``from e2ed2.train import train, TrainConfig`` (the loop
lives in ``e2ed2.trainer``, the knobs in ``e2ed2.train_config``).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

from . import cli, distributed, methods
from .config import describe, load_run_config
from .data import peek_shape
from .train_config import EMADecayUnusedWarning, TrainConfig, ema_decay_at, ema_reached_at
from .trainer import Interrupted, NonFiniteLossError, Progress, Trainer, check_data_fits_net, train

# the library API, importable from here as before the loop moved to e2ed2.trainer
__all__ = ["EMADecayUnusedWarning", "Interrupted", "NonFiniteLossError", "Progress", "ProgressReport", "TrainConfig",
           "Trainer", "build_parser", "ema_decay_at", "ema_reached_at", "main", "train"]

EPILOG = """\
run config (YAML/JSON): {data, method: {name, knobs...}, net: {...}, train: {...}[, latent]}
  data     built-in name (mnist5k, digits), a harness .npz, or an image folder
  method   one of: %s  (knobs: python -m e2ed2.train --list-knobs NAME)
  net      e2ed2.nets.UNetConfig;  train: e2ed2.train_config.TrainConfig
example: docs/run.example.yaml
  python -m e2ed2.train --config docs/run.example.yaml --out results/try/edm --set train.steps=200
"""


def build_parser():
    p = cli.parser("e2ed2.train", "Train one method with the shared loop; a rerun resumes from <out>/latest.pt "
                   "when the config is unchanged.", epilog=EPILOG % ", ".join(methods.method_names()),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML/JSON run config (see below)")
    p.add_argument("--config-json", help="the same config as a JSON string (used by the workflow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. train.steps=100 (repeatable)")
    p.add_argument("--out", type=cli.out_path("folder"),
                   help="run folder: final.pt, latest.pt, stats.jsonl, config.json")
    p.add_argument("--restart", action="store_true",
                   help="if --out holds a run of another config, delete it and start afresh (default: refuse)")
    p.add_argument("--watch-pid", type=int, default=None, metavar="PID",
                   help="stop (keeping latest.pt) when process PID exits: the workflow passes its own pid")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (a bar on a terminal; in a log, a line every log_every steps and ≥ every 30 s)")
    p.add_argument("--list-knobs", metavar="METHOD",
                   help="print METHOD's knobs (library defaults, types, bounds) and exit")
    return p


class ProgressReport:
    """The CLI's view of a run (``train(on_step=...)``), on stderr: a tqdm bar on a terminal;
    otherwise (a log file) one plain, flushed line on the first step, every ``every`` steps, at the
    last step and at least every ``interval_s`` seconds:
    ``train edm: 400/3200 (12%), 181.3 images/s, loss_main 0.0123, elapsed 0:01:10, ETA 0:08:10``."""

    def __init__(self, desc: str, every: int, interval_s: float = 30.0):
        self.desc, self.every, self.interval_s = desc, every, interval_s
        self.bar, self.last = None, -math.inf

    def __call__(self, p: Progress) -> None:
        losses = {k: v for k, v in p.stats.items() if k.startswith("loss")}
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=p.total, initial=p.step - 1, desc=self.desc, dynamic_ncols=True)
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
            return
        now = time.monotonic()
        if (p.step == p.start_step + 1 or p.step % self.every == 0 or p.step == p.total
                or now - self.last >= self.interval_s):
            details = [f"{p.images_per_s:.1f} images/s", *(f"{k} {v:.4g}" for k, v in losses.items())]
            # the rate (and so the ETA) counts from this session's start step: a resumed run starts past 0
            print(cli.eta_line(self.desc, p.step, p.total, p.elapsed_s, *details, eta_s=p.eta_s),
                  file=sys.stderr, flush=True)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_knobs:
        print(f"# knobs of {args.list_knobs}: name = library default  (type, bounds)  what it does\n"
              f"# (the workflow sets its own values in workflows/config/*.yaml, models.<model>.method)")
        print("\n".join(describe(methods.get_method(args.list_knobs).Config)))
        return 0
    if not args.out or not (args.config or args.config_json):
        build_parser().error("--out and one of --config / --config-json are required")
    config = load_run_config(args.config, args.config_json, args.set)
    if not config.get("latent") and "data" in config:  # the data's shape first: it decides the net's
        check_data_fits_net(config, peek_shape(config["data"]))
    run = methods.RunConfig.parse(config)  # the one parse of this process: the loop gets the object
    # Ctrl-C (SIGINT) stops at the next step boundary with latest.pt saved; a second one aborts
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("stopping after this step, with latest.pt saved (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None

    def should_stop() -> bool:
        return stop.is_set() or bool(args.watch_pid and cli.process_gone(args.watch_pid))

    report = None if args.no_progress else ProgressReport(f"train {run.cls.name}", run.train.log_every)
    try:
        final = train(run, args.out, on_step=report, on_mismatch="restart" if args.restart else "error",
                      should_stop=should_stop)
    except NonFiniteLossError as e:
        latest = Path(args.out) / "latest.pt"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written before it"
        raise cli.RunFailed(f"training diverged: {e}; {kept}. Lower train.lr or raise train.warmup") from e
    except Interrupted as e:
        raise cli.RunFailed(f"training interrupted: {e}") from e
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if report is not None:
            report.close()
        distributed.shutdown()
    if distributed.env_info().is_main:
        print(json.dumps({"checkpoint": str(final)}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
