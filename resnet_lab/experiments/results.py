"""Where the book finds its committed results, and the one function that downloads them.

Reading results never touches the network: `results_dir()` looks in the places a reader's copy can be and says
what to do when there is none. A reader without a checkout (Colab installs only the package) calls
`download_results()` once, explicitly; later calls of `results_dir()` find that copy.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "RESNET_LAB_RESULTS"
# The repository's results/ on GitHub, for download_results().
RESULTS_URL = "https://raw.githubusercontent.com/resnet-lab/resnet-lab/main/results"
# The result files the notebooks read, relative to results/: every depth-sweep run the book may show, the
# exported checkpoints, and the lesion and loss-landscape results of chapters 6 and 7.
COMMITTED_FILES = tuple(
    f"depth_sweep/{family}{depth}.json" for depth in (20, 32, 44, 56, 110) for family in ("plain", "resnet")
) + (  # chapter 8
    "precise_bn/plain20.json", *(f"seed_spread/seed{seed}.json" for seed in range(8)),
    "benchmarks/train_throughput.json", "resnet20_10ep_bf16/results.json",
    *(f"ablations/{variant}-seed{seed}.json" for variant in ("no-augmentation", "constant-lr", "zero-init-residual",
                                                             "no-label-smoothing") for seed in (0, 1, 2)),
) + ("transfer/pretrain.json",) + tuple(  # chapter 9
    f"transfer/{method}-{n}-s{seed}.json" for method in ("linear", "partial", "full", "gradual", "scratch")
    for n in (10, 50, 250) for seed in (0, 1, 2)
) + tuple(f"gradient_flow/{point}.json" for point in (  # chapter 5
    "init", "trained", "shattered", *(f"train_{family}{depth}{bn}" for depth in (20, 56, 110)
                                      for family in ("plain", "resnet") for bn in ("", "-nobn")))
) + tuple(
    f"checkpoints/{name}.pt" for name in ("resnet20", "resnet56", "plain56", "plain20", "resnet20_source")
) + tuple(
    f"block_deletion/{point}.json" for point in ("resnet56-single", "resnet56-random", "resnet56-paths",
                                                 "plain56-layers", "resnet56-reorder", "plain56-random")
) + tuple(f"loss_landscape/{model}-{what}.json" for model in ("resnet56", "plain56", "resnet20", "plain20")
          for what in ("seed0", "seed1", "interpolation"))
# results/ of the checkout this package lives in: resnet_lab/experiments/results.py -> the repository root.
_CHECKOUT_RESULTS = Path(__file__).resolve().parents[2] / "results"


def _download_dir() -> Path:
    """Where download_results() puts its copy: the resnet_lab cache (RESNET_LAB_CACHE, else ~/.cache/resnet_lab)."""
    from resnet_lab.data import cache_dir  # the data module owns the cache location

    return cache_dir() / "results"


def repository_results_dir() -> Path:
    """results/ of the repository checkout the package is installed from (`pip install -e .`): where runs write."""
    if not _CHECKOUT_RESULTS.is_dir():
        raise FileNotFoundError(
            f"resnet_lab is not installed from a repository checkout ({_CHECKOUT_RESULTS} does not exist): pass "
            "--results DIR to choose where the result files go."
        )
    return _CHECKOUT_RESULTS


def results_dir() -> Path:
    """The committed results to read: $RESNET_LAB_RESULTS, the repository checkout, ./results, ../results (a
    notebook started from notebooks/), or an earlier download_results() copy. Never downloads anything."""
    if os.environ.get(RESULTS_ENV, "").strip():
        return Path(os.environ[RESULTS_ENV]).expanduser()
    candidates = (_CHECKOUT_RESULTS, Path.cwd() / "results", Path.cwd().parent / "results", _download_dir())
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "No results/ folder found (looked in the repository checkout, ./results, ../results and the download "
        f"cache). Run from a clone of the repository, set {RESULTS_ENV} to its results/ folder, or call "
        "resnet_lab.experiments.download_results() to fetch the committed result files from GitHub."
    )


def download_results(dest: str | os.PathLike | None = None, *, url: str = RESULTS_URL) -> Path:
    """Fetch the committed result files (COMMITTED_FILES) from the repository into `dest` (default: the cache).

    Files already there are kept; files the repository does not have (runs not committed) are skipped. Returns
    the folder, which results_dir() finds on later calls when `dest` is the default.
    """
    import urllib.error  # the only network code of resnet_lab's results: imported when asked for
    import urllib.request

    from resnet_lab.files import atomic_write

    dest = _download_dir() if dest is None else Path(dest).expanduser()
    for name in COMMITTED_FILES:
        target = dest / name
        if target.exists():
            continue
        try:
            with urllib.request.urlopen(f"{url}/{name}", timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError:
            continue  # a run that has not been committed
        except OSError as error:
            raise FileNotFoundError(
                f"Cannot download the result files from {url} ({error}). Check the internet connection, or run "
                f"from a clone of the repository (or set {RESULTS_ENV} to its results/ folder)."
            ) from None
        atomic_write(target, lambda f, payload=payload: f.write(payload))
    return dest


__all__ = ["COMMITTED_FILES", "RESULTS_ENV", "RESULTS_URL", "download_results", "repository_results_dir",
           "results_dir"]
