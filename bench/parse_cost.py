"""Parse cost: importing the provider's operator and sensor modules versus the http provider's operator module.

What a DAG file pays to use the operators: each measurement is a fresh interpreter (private
AIRFLOW_HOME) that imports ``airflow.sdk`` first, then the measured modules, timing both with
``time.perf_counter()``:

* ``raw``: ``import airflow.sdk`` plus the modules (the time a DAG file's imports take from a cold
  interpreter);
* ``net``: the modules alone, after ``airflow.sdk`` (the common baseline every DAG file pays,
  subtracted consistently: measured in the same interpreter just before);
* ``airflow.sdk`` alone is reported too.

Compared: ours = ``airflow_provider_rewards.operators.thanx`` + ``.operators.hpgames`` +
``.sensors.thanx`` in one interpreter (everything a DAG using the provider imports) versus
``airflow.providers.http.operators.http``. Each of our modules alone and the http operator + sensor
modules are shown for context. Runs are interleaved (A, B, A, B, ...) and the medians compared; at
full scale one ``python -X importtime`` run per side lists the heaviest imports after ``airflow.sdk``.

Usage: ``python bench/parse_cost.py [--runs 7]``
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

OURS = (
    "airflow_provider_rewards.operators.thanx",
    "airflow_provider_rewards.operators.hpgames",
    "airflow_provider_rewards.sensors.thanx",
)
HTTP = ("airflow.providers.http.operators.http",)
TARGET_RATIO = 1.0
SNIPPET = """
import importlib, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
for name in sys.argv[1:]:
    importlib.import_module(name)
t2 = time.perf_counter()
print(json.dumps({"sdk": t1 - t0, "net": t2 - t1, "raw": t2 - t0, "modules": len(sys.modules)}))
"""


def measure(modules: tuple[str, ...], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [c.PYTHON, "-c", SNIPPET, *modules], env=env, capture_output=True, text=True, cwd=c.ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {modules} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_profile(modules: tuple[str, ...], env: dict[str, str], top: int = 8) -> list[tuple[str, float, int]]:
    """``(top-level package, self ms, modules)`` of what is imported after ``airflow.sdk`` (``-X importtime``)."""
    statements = "import airflow.sdk\n" + "".join(f"import {name}\n" for name in modules)
    done = subprocess.run(
        [c.PYTHON, "-X", "importtime", "-c", statements], env=env, capture_output=True, text=True, cwd=c.ROOT
    )
    rows = []  # (depth, module, self ms), in the order imports complete (children first)
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].rstrip()
        rows.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip(), int(parts[0]) / 1000))
    # airflow.sdk's own import ends with its last top-level line; everything after is the measured modules'
    end = max(index for index, row in enumerate(rows) if row[0] == 0 and row[1] in ("airflow", "airflow.sdk"))
    packages: dict[str, list[float]] = {}
    for _, name, self_ms in rows[end + 1 :]:
        package = ".".join(name.split(".")[:3]) if name.startswith("airflow.") else name.split(".")[0]
        packages.setdefault(package, []).append(self_ms)
    ranked = sorted(((name, sum(times), len(times)) for name, times in packages.items()), key=lambda row: -row[1])
    return ranked[:top]


def main() -> int:
    parser = c.child_parser(__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3 if c.quick() else 7, help="fresh interpreters per side")
    args = parser.parse_args()
    sides: dict[str, tuple[str, ...]] = {"ours (3 modules)": OURS, "http operator": HTTP}
    if not c.quick():
        sides.update({f"ours: {name.removeprefix('airflow_provider_rewards.')}": (name,) for name in OURS})
        sides["http operator + sensor"] = (*HTTP, "airflow.providers.http.sensors.http")
    c.say(f"== parse cost ({c.scale_label()}): median of {args.runs} fresh interpreters per side, interleaved")
    with tempfile.TemporaryDirectory(prefix="rewards-bench-parse-") as home:
        env = c.airflow_env(Path(home))
        measure(OURS + HTTP, env)  # warm the file system cache and the bytecode caches once, not counted
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, modules in sides.items():
                samples[name].append(measure(modules, env))
        profiles = {} if c.quick() else {name: import_profile(sides[name], env) for name in list(sides)[:2]}

    def median(name: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[name])

    rows = []
    for name in sides:
        spread = [sample["net"] * 1000 for sample in samples[name]]
        rows.append(
            [
                name,
                f"{median(name, 'sdk') * 1000:,.0f}",
                f"{median(name, 'raw') * 1000:,.0f}",
                f"{median(name, 'net') * 1000:,.1f}",
                f"{min(spread):,.1f}-{max(spread):,.1f}",
                f"{median(name, 'modules'):,.0f}",
            ]
        )
    c.say("")
    c.table(rows, ["imports", "airflow.sdk ms", "raw ms", "net ms", "net min-max", "modules loaded"])
    for name, top in profiles.items():
        c.say(f"\n  imported after airflow.sdk, {name} (python -X importtime, self time by package):")
        for package, self_ms, count in top:
            c.say(f"    {package:<45} {self_ms:7.1f} ms  {count:4d} modules")
    ours, theirs = "ours (3 modules)", "http operator"
    net_ratio = median(ours, "net") / median(theirs, "net")
    raw_ratio = median(ours, "raw") / median(theirs, "raw")
    c.say(
        f"\n  net: {median(ours, 'net') * 1000:.0f} ms vs {median(theirs, 'net') * 1000:.0f} ms ({net_ratio:.2f}); "
        f"raw (airflow.sdk included): {median(ours, 'raw') * 1000:,.0f} ms vs {median(theirs, 'raw') * 1000:,.0f} ms "
        f"({raw_ratio:.2f})"
    )
    c.say("")
    c.target(
        "parse-cost ratio",
        f"{net_ratio:.2f} net of airflow.sdk (raw {raw_ratio:.2f})",
        f"<= {TARGET_RATIO:.1f}",
        net_ratio <= TARGET_RATIO and raw_ratio <= TARGET_RATIO,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
