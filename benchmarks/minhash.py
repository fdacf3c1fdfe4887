"""MinHash signatures and LSH band keys per article: the compiled kernel, numpy, and another
checkout (the code before a change), in one run.

    .venv/bin/python benchmarks/minhash.py                         # kernel and numpy
    git worktree add /tmp/minhash-before HEAD
    .venv/bin/python benchmarks/minhash.py --before /tmp/minhash-before --rounds 7
    .venv/bin/python benchmarks/minhash.py --kernel-variants       # what each C trick gains

Articles: the farm's items as benchmarks/fetch.py serves them (tests/farm.py, 25 paragraphs,
half Chinese and half English, about 4,700 characters of text each) and, when the corpus is
there, every entry of the real-world corpus's real/ feeds (../shared/realworld, or
$AGGREGATOR_REALWORLD; most are summaries of a few hundred characters), each cleaned by the
clean stage.

Each implementation runs in a process of its own, taking turns round after round, so a busy
spell of the machine (2 cores shared) falls on all of them; --before DIR runs DIR's aggregator.
Microseconds per article, the best of --passes passes in each round, then the min and median
over the rounds:
- fingerprint: MinHash, lead and band keys of the normalised text (what identify adds to
  normalise and the exact hash);
- identify: the whole of dedupe.identify, articles back to back;
- identify after clean: identify alone, each right after the clean stage has cleaned the same
  article (as a worker does now, so clean's memory traffic sits between two identify calls).

--kernel-variants compiles this tree's _kernel.c once per variant (the C compiler Python was
built with) and times the fingerprint of each: as shipped, without the vector clones
(x86-64's baseline), with the SSE4.1 clone only, and with all permutations in one block.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2024, 1, 1, tzinfo=UTC)
METRICS = ("fingerprint", "identify", "identify after clean")
# name: extra compiler flags for _kernel.c
VARIANTS = {
    "kernel as shipped": [],
    "no vector clones": ['-DVECTOR_CLONE_TARGETS="default"', "-Wno-attributes"],
    "SSE4.1 clone only": ['-DVECTOR_CLONE_TARGETS="default","arch=x86-64-v2"'],
    "one block of 128": ["-DPERMUTATION_BLOCK=128"],
}

Articles = dict[str, list[tuple[str, str | None]]]  # set name: (html, link) of each article


def farm_articles(feeds: int = 20, items: int = 10) -> list[tuple[str, str | None]]:
    from tests.farm import FeedMeta, _item  # noqa: PLC0415

    articles: list[tuple[str, str | None]] = []
    for number in range(feeds):
        meta = FeedMeta(number, atom=False, encoding="UTF-8", gzip=False, chinese=number % 2 == 0)
        for index in range(items):
            item = _item(meta, index, 25)
            articles.append((item.html, item.link))
    return articles


def realworld_articles() -> list[tuple[str, str | None]]:
    from aggregator.errors import AggregatorError  # noqa: PLC0415
    from aggregator.models import Document  # noqa: PLC0415
    from aggregator.parse import parse_feed  # noqa: PLC0415
    from tests.realworld import CORPUS, corpus_files  # noqa: PLC0415

    articles: list[tuple[str, str | None]] = []
    for file in corpus_files(("real",)):
        try:
            parsed = parse_feed(
                Document("bench", str(file.path), (CORPUS / file.path).read_bytes())
            )
        except AggregatorError:  # a file that is no feed holds no article
            continue
        articles.extend((entry.content_html, entry.link) for entry in parsed.entries)
    return articles


# --- one implementation, in its own process ---


def _fingerprint_function(implementation: str) -> Callable[[str], object]:
    from aggregator.dedupe import minhash  # noqa: PLC0415

    if implementation == "numpy":
        # As where no C compiler built the kernel: identify takes the numpy path too.
        setattr(minhash, "_compiled", lambda: None)  # noqa: B010 - typed as the cached function
    if hasattr(minhash, "near_values"):
        if implementation != "numpy" and minhash._compiled() is None:
            raise SystemExit("the kernel is not built: make install")
        return minhash.near_values
    # A checkout from before the kernel: what its identify computed after normalise.
    import numpy as np  # noqa: PLC0415

    from aggregator.dedupe.lsh import band_keys_of  # noqa: PLC0415

    def before(normalised: str) -> object:
        near = minhash.signatures(normalised)
        if near is None:
            return None
        values = np.concatenate((near.minhash, near.lead))
        return tuple(near.minhash.tolist()), tuple(near.lead.tolist()), band_keys_of(values)

    return before


def _best_pass(passes: int, one_pass: Callable[[], float]) -> float:
    return min(one_pass() for _ in range(passes))


def measure(implementation: str, articles: Articles, passes: int) -> dict[str, dict[str, float]]:
    from aggregator.clean import clean_html  # noqa: PLC0415
    from aggregator.dedupe import identify  # noqa: PLC0415
    from aggregator.dedupe.minhash import normalise  # noqa: PLC0415
    from aggregator.models import Entry  # noqa: PLC0415

    fingerprint = _fingerprint_function(implementation)
    figures: dict[str, dict[str, float]] = {}
    for name, pairs in articles.items():
        entries = [
            Entry(
                source="bench",
                origin=f"bench {number}",
                key=link or f"bench-{number}",
                title="t",
                link=link,
                published=WHEN,
                updated=WHEN,
                author=None,
                tags=(),
                content_html=html,
            )
            for number, (html, link) in enumerate(pairs)
        ]
        cleaned = [clean_html(entry.content_html, entry.link) for entry in entries]
        normalised = [normalise(one.text) for one in cleaned]

        def fingerprints() -> float:
            started = time.perf_counter()
            for text in normalised:  # noqa: B023 - called within this iteration
                fingerprint(text)
            return time.perf_counter() - started

        def identifies() -> float:
            started = time.perf_counter()
            for entry, clean in zip(entries, cleaned, strict=True):  # noqa: B023
                identify(entry, clean, ())
            return time.perf_counter() - started

        def identifies_after_clean() -> float:
            spent = 0.0
            for entry in entries:  # noqa: B023
                clean = clean_html(entry.content_html, entry.link)
                started = time.perf_counter()
                identify(entry, clean, ())
                spent += time.perf_counter() - started
            return spent

        for warm_up in (fingerprints, identifies):
            warm_up()
        scale = 1e6 / len(entries)
        figures[name] = {
            "fingerprint": _best_pass(passes, fingerprints) * scale,
            "identify": _best_pass(passes, identifies) * scale,
            "identify after clean": _best_pass(passes, identifies_after_clean) * scale,
        }
    return figures


def measure_kernel(articles: Articles, passes: int) -> dict[str, float]:
    """The fingerprint alone, with whichever _kernel module was put in sys.modules."""
    from aggregator.clean import clean_html  # noqa: PLC0415
    from aggregator.dedupe.minhash import near_values, normalise  # noqa: PLC0415

    figures: dict[str, float] = {}
    for name, pairs in articles.items():
        normalised = [normalise(clean_html(html, link).text) for html, link in pairs]

        def one_pass() -> float:
            started = time.perf_counter()
            for text in normalised:  # noqa: B023 - called within this iteration
                near_values(text)
            return time.perf_counter() - started

        one_pass()
        figures[name] = _best_pass(passes, one_pass) * 1e6 / len(normalised)
    return figures


def _child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.root)
    import aggregator  # noqa: PLC0415

    if not Path(aggregator.__file__).resolve().is_relative_to(Path(args.root).resolve()):
        raise SystemExit(f"{args.root}: its aggregator is not the one imported")
    articles: Articles = json.loads(Path(args.articles).read_text(encoding="utf-8"))
    if args.kernel_file:
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.spec_from_file_location("aggregator.dedupe._kernel", args.kernel_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["aggregator.dedupe._kernel"] = module
        print(json.dumps(measure_kernel(articles, args.passes)))
    else:
        print(json.dumps(measure(args.implementation, articles, args.passes)))


# --- the parent: articles once, then the implementations in turns ---


def _run_child(extra: Sequence[str], articles: Path, passes: int) -> Any:
    command = [sys.executable, __file__, "--child", "--articles", str(articles)]
    command += ["--passes", str(passes), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(extra)}: {done.stderr.strip()}")
    return json.loads(done.stdout.splitlines()[-1])


def _compile_variants(folder: Path) -> dict[str, Path]:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    flags = (sysconfig.get_config_var("CFLAGS") or "").split()
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    built: dict[str, Path] = {}
    for number, (name, extra) in enumerate(VARIANTS.items()):
        target = folder / str(number) / f"_kernel{suffix}"
        target.parent.mkdir()
        source = ROOT / "aggregator" / "dedupe" / "_kernel.c"
        command = [*compiler, *flags, "-O3", "-fPIC", "-shared", f"-I{include}", *extra]
        subprocess.run([*command, str(source), "-o", str(target)], check=True)
        built[name] = target
    return built


def _summary(title: str, rounds: list[float]) -> str:
    return f"{title:52s} min {min(rounds):7.1f}  median {statistics.median(rounds):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout, e.g. a worktree of HEAD")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3, help="per round; the best one counts")
    parser.add_argument("--kernel-variants", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--articles", help=argparse.SUPPRESS)
    parser.add_argument("--implementation", default="kernel", help=argparse.SUPPRESS)
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--kernel-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    sys.path.insert(0, str(ROOT))
    articles: Articles = {"farm": farm_articles()}
    from tests.realworld import CORPUS  # noqa: PLC0415

    if (CORPUS / "real").is_dir():
        articles["real-world"] = realworld_articles()
    print("articles: " + ", ".join(f"{name} {len(pairs)}" for name, pairs in articles.items()))
    with tempfile.TemporaryDirectory() as folder:
        articles_file = Path(folder) / "articles.json"
        articles_file.write_text(json.dumps(articles), encoding="utf-8")
        if args.kernel_variants:
            runs = {
                name: ["--kernel-file", str(path)]
                for name, path in _compile_variants(Path(folder)).items()
            }
        else:
            runs = {"kernel": ["--implementation", "kernel"]}
            runs["numpy"] = ["--implementation", "numpy"]
            if args.before:
                runs[f"before ({args.before})"] = ["--implementation", "before"]
                runs[f"before ({args.before})"] += ["--root", str(args.before.resolve())]
        results: dict[str, list[Any]] = {name: [] for name in runs}
        for round_number in range(1, args.rounds + 1):
            for name, extra in runs.items():
                results[name].append(_run_child(extra, articles_file, args.passes))
            print(f"round {round_number} of {args.rounds} done", file=sys.stderr)
    print(f"us per article; min and median of {args.rounds} rounds, best of {args.passes} passes")
    for set_name in articles:
        print(f"\n{set_name}:")
        for name, rounds in results.items():
            if args.kernel_variants:
                print(_summary(f"  fingerprint, {name}", [one[set_name] for one in rounds]))
                continue
            for metric in METRICS:
                figures = [one[set_name][metric] for one in rounds]
                print(_summary(f"  {metric}, {name}", figures))


if __name__ == "__main__":
    main()
