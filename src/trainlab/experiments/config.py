"""Experiment files: TOML → validated grid of :class:`~trainlab.experiments.spec.RunSpec` runs.

An experiment file has these sections (see ``docs/experiments.md`` for the full reference)::

    [experiment]            # name, master seed, seeds (count or list of indices), device, engine, eval_every
    [defaults]              # task, model, trainer, loss, budget, diagnostics and *_options tables shared by every run
    [trainers.<label>]      # named trainer variants: algorithm = "adam", then its options (and a diagnostics table)
    [grid]                  # axes: lists of values; keys task/model/trainer/loss/budget or "<section>.<option>"
    [[exclude]]             # drop the cells that match every key given
    [[override]]            # match = {...}, set = {...}: change options of matching cells

``[[grid]]`` may also be an array of tables: the experiment is then the union of those sub-grids.
Runs of one cell differ only in their seed: run ``i`` gets ``derive_seed(master seed, i)``, the same for
every cell, so runs with the same seed index are paired across trainers. A sub-grid may set its own
``seeds`` (a count or a list of indices, as in ``[experiment]``), and so may an ``[[override]]``'s ``set``:
cells may then have different numbers of seeds (e.g. 3 for tabular tasks, 2 for images).

Every error is a :class:`~trainlab.core.config.ConfigError` whose field names the file and the TOML key path
(for example ``exp.toml: trainers.fast.lr`` or ``exp.toml: grid.trainer[1]``), raised before anything runs.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.seeding import derive_seed
from trainlab.data import task_config
from trainlab.diagnostics import diagnostics_config
from trainlab.experiments.spec import RunSpec, resolved_id
from trainlab.losses import get_loss
from trainlab.models import model_config
from trainlab.trainers import make_trainer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAMES = ("task", "model", "trainer", "loss")
SECTIONS = ("task_options", "model_options", "trainer_options", "loss_options", "budget", "diagnostics")
TOP_LEVEL = ("experiment", "defaults", "trainers", "grid", "exclude", "override")
EXPERIMENT_KEYS = ("name", "description", "seed", "seeds", "device", "engine", "eval_every", "weights")
ENGINES = ("default", "sweep")
MAX_SEEDS = 10_000
"""Most seed indices an experiment may ask for (``seeds = N`` or a list)."""
MAX_RUNS = 100_000
"""Most runs an expanded experiment may have (cells × seeds); larger grids are refused before expansion."""
DEFAULT_TRIALS = 64
"""Cells in which an overridden ``[defaults]`` value is tried before it is refused."""
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = 3.4028234663852886e38
"""Every number of an experiment must be usable by a run: integers within int64 (the store's integers),
floats finite and within float32's range (the precision most runs compute in)."""

Flat = dict[str, tuple[Any, str]]
"""A cell under construction: dotted key → (value, TOML key path it came from)."""


@dataclass(frozen=True)
class PlannedRun:
    """One run of an expanded experiment."""

    run_id: str
    label: str
    seed_index: int
    spec: RunSpec
    resolved: dict[str, Any]
    """``spec.resolved().to_dict()``: every default filled in; this is what the store saves."""


@dataclass(frozen=True)
class Experiment:
    """An expanded, validated experiment."""

    name: str
    runs: tuple[PlannedRun, ...]
    seed: int = 0
    seeds: tuple[int, ...] = (0,)
    engine: str = "default"
    weights: bool = True
    description: str = ""
    source: str = "<experiment>"
    text: str = ""
    """The experiment file's text, saved in the store for provenance."""

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.runs))


def load_experiment(path: str | Path) -> Experiment:
    """Read, validate and expand the TOML experiment file at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), None, f"a readable TOML file ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(path), f"byte {raw[err.start]:#04x} at offset {err.start}", "a UTF-8 text file (TOML is UTF-8)"
        ) from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as err:
        lines = text.splitlines() or [""]
        where = re.search(r"at line (\d+)", str(err))
        lineno = int(where.group(1)) if where else len(lines)
        bad = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        raise ConfigError(f"{path}, line {lineno}", bad, f"valid TOML ({err})") from None
    return parse_experiment(data, source=path.name, default_name=path.stem, text=text)


def parse_experiment(
    data: Mapping[str, Any], source: str = "<experiment>", default_name: str = "experiment", text: str = ""
) -> Experiment:
    """Validate and expand an experiment given as a mapping (the parsed TOML)."""
    return _Parser(source).parse(data, default_name, text)


def _matches(view: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    """A cell matches if every key equals the given value, or is one of the values when a list is given."""
    for key, want in match.items():
        have = view.get(key)
        if have == want:
            continue
        if isinstance(want, list) and have in want:
            continue
        return False
    return True


class _Hits:
    """Which of a match table's values some cell had, and whether the whole table matched a cell."""

    def __init__(self, match: Mapping[str, Any]):
        self.match = match
        self.seen: dict[str, list[Any]] = {key: [] for key in match}
        self.values: dict[str, list[Any]] = {key: [] for key in match}
        self.matched = False

    def test(self, view: Mapping[str, Any]) -> bool:
        for key, want in self.match.items():
            have = view.get(key)
            if have not in self.values[key]:
                self.values[key].append(have)
            for value in ([want] + (want if isinstance(want, list) else [])):
                if have == value and value not in self.seen[key]:
                    self.seen[key].append(value)
        hit = _matches(view, self.match)
        self.matched = self.matched or hit
        return hit


def _view(flat: Flat, label: str) -> dict[str, Any]:
    """What ``[[exclude]]`` and ``[[override]]`` match against: ``trainer`` is the label."""
    return {k: v for k, (v, _) in flat.items()} | {"trainer": label, "algorithm": flat["trainer"][0]}


def _split_options(flat: Flat) -> dict[str, dict[str, Any]]:
    """The cell's options per section; a dotted diagnostics key (``diagnostics.curvature.every``) sets one option
    inside its table, after the tables set by earlier keys."""
    options: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, (value, _) in flat.items():
        if "." in key:
            section, option = key.split(".", 1)
            if section == "diagnostics" and "." in option:
                _set_nested(options[section], option.split("."), value)
            else:
                options[section][option] = value
    return options


def _set_nested(table: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        inner = table.get(part)
        table[part] = dict(inner) if isinstance(inner, Mapping) else {}
        table = table[part]
    table[path[-1]] = value


def _overlay(flat: Flat, layer: Flat) -> None:
    """``flat.update(layer)``, where a diagnostics key also drops the deeper keys it replaces (a later layer's
    ``diagnostics.curvature`` table replaces an earlier ``diagnostics.curvature.every``)."""
    for key, item in layer.items():
        if key.startswith("diagnostics."):
            for old in [k for k in flat if k.startswith(key + ".")]:
                del flat[old]
        flat[key] = item


def auto_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is available, else ``cpu``; other values pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}", value, allowed)

    def relabel(self, err: ConfigError, where: str) -> ConfigError:
        last = where.rsplit(".", 1)[-1].split("[")[0]
        field = where if err.field.split(".")[-1] == last else f"{where} ({err.field})"
        return self.error(field, err.value, err.allowed)

    # ------------------------------------------------------------------ sections
    def parse(self, data: Mapping[str, Any], default_name: str, text: str) -> Experiment:
        for key in data:
            if key not in TOP_LEVEL:
                raise self.error(key, data[key], "a section among " + ", ".join(TOP_LEVEL))
        settings = self.settings(self.table(data, "experiment"), default_name)
        defaults: Flat = {}
        for key, value in self.table(data, "defaults").items():
            self.check_key(key, f"defaults.{key}", whole_sections=True)
            self.put(defaults, key, value, f"defaults.{key}")
        variants = self.variants(self.table(data, "trainers"))
        excludes = [self.match(m, f"exclude[{i}]") for i, m in enumerate(self.array(data, "exclude"))]
        overrides = [self.override(o, f"override[{i}]") for i, o in enumerate(self.array(data, "override"))]
        fixed: Flat = {"device": (auto_device(settings["device"]), "experiment.device")}
        if settings["eval_every"] is not None:
            fixed["@eval_every"] = (settings["eval_every"], "experiment.eval_every")

        grids = self.grids(data.get("grid"))
        size = sum(math.prod(len(values) for _, values in axes) for axes in grids) * len(settings["seeds"])
        if size > MAX_RUNS:
            raise self.error("grid", f"{size:,} runs (cells × seeds)", f"at most {MAX_RUNS:,} runs per experiment")
        exclude_hits = [_Hits(m) for m in excludes]
        override_hits = [_Hits(m) for m, _ in overrides]
        used: set[str] = set()
        composed: list[tuple[str, Flat]] = []
        cells: list[tuple[str, Flat]] = []
        for axes in grids:
            keys = [key for key, _ in axes]
            for combo in itertools.product(*(values for _, values in axes)):
                label, flat = self.compose(defaults, variants, list(zip(keys, combo)))
                used.add(label)
                composed.append((label, dict(flat)))
                if any([hits.test(_view(flat, label)) for hits in exclude_hits]):
                    continue
                for (_, changes), hits in zip(overrides, override_hits):
                    if hits.test(_view(flat, label)):
                        for key, (value, where) in changes.items():
                            self.put(flat, key, value, where)
                cells.append((label, flat | fixed))
        runs = self.expand(cells, settings["seed"], settings["seeds"])
        for kind, all_hits in (("exclude", exclude_hits), ("override", override_hits)):
            for i, hits in enumerate(all_hits):
                self.check_hits(hits, f"{kind}[{i}]" + (".match" if kind == "override" else ""))
        for label in variants:
            if label not in used:
                raise self.error(
                    f"trainers.{label}", label,
                    "a label the grid uses (in [grid] trainer or defaults.trainer); used: " + ", ".join(sorted(used)),
                )
        self.check_defaults(defaults, composed, fixed)
        return Experiment(
            runs=tuple(runs), text=text, source=self.source,
            **{k: settings[k] for k in ("name", "seed", "seeds", "engine", "weights", "description")},
        )

    def check_hits(self, hits: _Hits, where: str) -> None:
        """Every value of a match table must be one some cell has; and the table must match a cell."""
        for key, want in hits.match.items():
            wanted = [want] if want in hits.seen[key] else (want if isinstance(want, list) else [want])
            for value in wanted:
                if value not in hits.seen[key]:
                    have = [v for v in hits.values[key] if v is not None]
                    shown = ", ".join(map(repr, have[:12])) + (", ..." if len(have) > 12 else "")
                    allowed = f"a value of {key} in the grid: {shown}" if have else f"a key the grid sets (no cell has {key})"
                    raise self.error(f"{where}.{key}", value, allowed)
        if not hits.matched:
            raise self.error(where, dict(hits.match), "conditions that some cell of the grid meets together")

    def check_defaults(self, defaults: Flat, composed: list[tuple[str, Flat]], fixed: Flat) -> None:
        """A ``[defaults]`` value every cell replaces is still checked: it must be valid in some cell."""
        for key, (value, where) in defaults.items():
            if any(flat.get(key) == (value, where) for _, flat in composed):
                continue
            first: ConfigError | None = None
            for _, flat in composed[:DEFAULT_TRIALS]:
                trial = dict(flat) | fixed
                trial[key] = (value, where)
                try:
                    self.validate(trial)
                    break
                except ConfigError as err:
                    first = first or err
            else:
                if first is not None:
                    raise first

    def settings(self, exp: Mapping[str, Any], default_name: str) -> dict[str, Any]:
        """The ``[experiment]`` table, validated, with defaults filled in."""
        for key in exp:
            if key not in EXPERIMENT_KEYS:
                raise self.error(f"experiment.{key}", exp[key], "a key among " + ", ".join(EXPERIMENT_KEYS))
        name = exp.get("name", default_name)
        if not isinstance(name, str) or not name or "/" in name:
            raise self.error("experiment.name", name, "a non-empty string without '/'")
        device = exp.get("device", "auto")
        if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise self.error("experiment.device", device, "auto, cpu, cuda or cuda:N")
        engine = exp.get("engine", "default")
        try:
            check_choice("engine", engine, ENGINES)
        except ConfigError as err:
            raise self.relabel(err, "experiment.engine") from None
        eval_every = exp.get("eval_every")
        if eval_every is not None:
            self.number("experiment.eval_every", eval_every, low=1)
        weights = exp.get("weights", True)
        if not isinstance(weights, bool):
            raise self.error("experiment.weights", weights, "true or false")
        description = exp.get("description", "")
        if not isinstance(description, str):
            raise self.error("experiment.description", description, "a string")
        return {
            "name": name, "device": device, "engine": engine, "eval_every": eval_every, "weights": weights,
            "seed": self.number("experiment.seed", exp.get("seed", 0), low=0, high=INT64[1]),
            "seeds": self.seeds(exp.get("seeds", 1)), "description": description,
        }

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, value, "a table")
        return value

    def array(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(key, value, f"an array of tables ([[{key}]])")
        return value

    def number(self, where: str, value: Any, low: int, high: int | None = None) -> int:
        try:
            return check_number(where, value, low=low, high=high, integer=True)
        except ConfigError as err:
            raise self.relabel(err, where) from None

    def seeds(self, value: Any, where: str = "experiment.seeds") -> tuple[int, ...]:
        if isinstance(value, list):
            if len(value) > MAX_SEEDS:
                raise self.error(where, f"a list of {len(value)}", f"at most {MAX_SEEDS:,} seed indices")
            for i, v in enumerate(value):
                self.number(f"{where}[{i}]", v, low=0, high=INT64[1])
            if not value or len(set(value)) != len(value):
                raise self.error(where, value, "a non-empty list of distinct seed indices")
            return tuple(value)
        return tuple(range(self.number(where, value, low=1, high=MAX_SEEDS)))

    def check_key(self, key: str, where: str, whole_sections: bool = False) -> None:
        section = key.split(".", 1)[0]
        if key in NAMES or (whole_sections and key in SECTIONS) or (section in SECTIONS and "." in key):
            return
        allowed = list(NAMES) + [f"{s}.<option>" for s in SECTIONS]
        if whole_sections:
            allowed += list(SECTIONS)
        raise self.error(where, key, "a key among " + ", ".join(allowed))

    def put(self, flat: Flat, key: str, value: Any, where: str) -> None:
        """Set ``key``; a whole section (a table) replaces that section's options."""
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise self.error(where, value, "a table of options")
            for old in [k for k in flat if k.startswith(key + ".")]:
                del flat[old]
            for option, v in value.items():
                self.check_value(f"{where}.{option}", v)
                flat[f"{key}.{option}"] = (v, f"{where}.{option}")
        else:
            self.check_value(where, value)
            _overlay(flat, {key: (value, where)})

    def check_value(self, where: str, value: Any) -> None:
        """Numbers a run can use: integers within int64, floats finite and within float32's range."""
        if isinstance(value, bool):
            return
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise self.error(where, value, "an integer within int64 (|n| < 2**63)")
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            raise self.error(where, value, f"a finite number within float32's range (|x| <= {FLOAT32_MAX:.4g})")
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.check_value(f"{where}[{i}]", v)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                self.check_value(f"{where}.{k}", v)

    def variants(self, trainers: Mapping[str, Any]) -> dict[str, Flat]:
        out: dict[str, Flat] = {}
        for label, table in trainers.items():
            where = f"trainers.{label}"
            if not isinstance(table, Mapping):
                raise self.error(where, table, "a table with algorithm = <trainer name> and its options")
            algorithm = table.get("algorithm", label)
            if not isinstance(algorithm, str):
                raise self.error(f"{where}.algorithm", algorithm, "a trainer name")
            flat: Flat = {"trainer": (algorithm, f"{where}.algorithm" if "algorithm" in table else where)}
            for option, value in table.items():
                if option == "diagnostics":
                    self.put(flat, option, value, f"{where}.{option}")
                elif option != "algorithm":
                    self.check_value(f"{where}.{option}", value)
                    flat[f"trainer_options.{option}"] = (value, f"{where}.{option}")
            out[label] = flat
        return out

    def match(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        for key in table:
            if key != "algorithm":
                self.check_key(key, f"{where}.{key}")
        return dict(table)

    def override(self, table: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Flat]:
        for key in table:
            if key not in ("match", "set"):
                raise self.error(f"{where}.{key}", table[key], "match = {...} and set = {...}")
        match = table.get("match", {})
        changes = table.get("set")
        if not isinstance(match, Mapping):
            raise self.error(f"{where}.match", match, "a table of key = value conditions")
        if not isinstance(changes, Mapping) or not changes:
            raise self.error(f"{where}.set", changes, "a non-empty table of key = value settings")
        flat: Flat = {}
        for key, value in changes.items():
            sub = f"{where}.set.{key}"
            if key == "trainer":
                raise self.error(sub, value, "options only; select trainers with [grid] and [[exclude]]")
            if key == "seeds":
                flat["@seeds"] = (self.seeds(value, sub), sub)
                continue
            self.check_key(key, sub, whole_sections=True)
            flat[key] = (value, sub)
        return self.match(match, f"{where}.match"), flat

    def grids(self, grid: Any) -> list[list[tuple[str, list[tuple[Any, str]]]]]:
        """The axes of each sub-grid; an axis is (key, [(value, key path), ...])."""
        if grid is None:
            return [[]]
        if isinstance(grid, Mapping):
            tables = [("grid", grid)]
        elif isinstance(grid, list) and grid and all(isinstance(g, Mapping) for g in grid):
            tables = [(f"grid[{i}]", g) for i, g in enumerate(grid)]
        else:
            raise self.error("grid", grid, "a table ([grid]) or an array of tables ([[grid]])")
        out = []
        for base, table in tables:
            axes = []
            for key, values in table.items():
                if key == "seeds":
                    axes.append(("@seeds", [(self.seeds(values, f"{base}.seeds"), f"{base}.seeds")]))
                    continue
                if key in SECTIONS and isinstance(values, Mapping):
                    for option, sub in values.items():
                        axes.append(self.axis(f"{key}.{option}", sub, f"{base}.{key}.{option}"))
                    continue
                self.check_key(key, f"{base}.{key}", whole_sections=True)
                axes.append(self.axis(key, values, f"{base}.{key}"))
            out.append(axes)
        return out

    def axis(self, key: str, values: Any, where: str) -> tuple[str, list[tuple[Any, str]]]:
        if not isinstance(values, list) or not values:
            raise self.error(where, values, "a non-empty list of values")
        return key, [(v, f"{where}[{i}]") for i, v in enumerate(values)]

    # ------------------------------------------------------------------ cells
    def compose(
        self, defaults: Flat, variants: dict[str, Flat], combo: Sequence[tuple[str, tuple[Any, str]]]
    ) -> tuple[str, Flat]:
        """(trainer label, cell): defaults < trainer variant < grid values."""
        grid: Flat = {}
        for key, (value, where) in combo:
            self.put(grid, key, value, where)
        label, label_where = grid.get("trainer", defaults.get("trainer", (None, "defaults.trainer")))
        if not isinstance(label, str):
            raise self.error(label_where, label, "a trainer name or a label from [trainers]")
        flat = dict(defaults)
        _overlay(flat, variants.get(label, {"trainer": (label, label_where)}))
        _overlay(flat, {k: v for k, v in grid.items() if k != "trainer"})
        return label, flat

    def expand(self, cells: list[tuple[str, Flat]], seed: int, seeds: tuple[int, ...]) -> list[PlannedRun]:
        """Validate each cell once, then make one run per seed index (the cell's own ``seeds`` when a sub-grid
        or an override set them); identical runs are merged."""
        runs: dict[str, PlannedRun] = {}
        for label, flat in cells:
            base = self.validate(flat)
            resolved = base.resolved().to_dict()
            for index in flat["@seeds"][0] if "@seeds" in flat else seeds:
                spec = dataclasses.replace(base, seed=derive_seed(seed, index))
                resolved = resolved | {"seed": spec.seed}
                run_id = resolved_id(resolved)
                known = runs.get(run_id)
                if known is not None and known.label != label:
                    raise self.error(
                        flat["trainer"][1], label,
                        f"a configuration distinct from label {known.label!r} (both resolve to run {run_id})",
                    )
                if known is None:
                    runs[run_id] = PlannedRun(run_id, label, index, spec, resolved)
        return list(runs.values())

    def validate(self, flat: Flat) -> RunSpec:
        """Build the cell's :class:`RunSpec` (seed 0), checking each part against its registry; errors point
        at the TOML key that set the offending value."""
        for key in ("task", "model"):
            if key not in flat:
                raise self.error(f"defaults.{key}", None, f"a {key} name in [defaults] or a [grid] axis")
        for key in NAMES:
            if key in flat and not isinstance(flat[key][0], str) and not (key == "loss" and flat[key][0] is None):
                raise self.error(flat[key][1], flat[key][0], f"a {key} name (a string)")
        options = _split_options(flat)
        name: dict[str, Any] = {key: flat[key][0] if key in flat else None for key in NAMES}
        where = {key: flat[key][1] if key in flat else f"defaults.{key}" for key in NAMES}
        eval_every = flat.get("@eval_every")
        checks = (
            ("task", lambda: task_config(name["task"], **options["task_options"])),
            ("model", lambda: model_config(name["model"], **options["model_options"])),
            ("trainer", lambda: make_trainer(name["trainer"], **options["trainer_options"])),
        )
        made: Any = None
        for key, check in checks:
            try:
                made = check()
            except ConfigError as err:
                raise self.relabel(err, self.locate(err, key, flat, where[key])) from None
            except TypeError as err:
                raise self.error(where[key], name[key], f"valid options ({err})") from None
        if eval_every is not None and "eval_every" not in options["trainer_options"]:
            if any(f.name == "eval_every" for f in dataclasses.fields(made.config)):
                options["trainer_options"]["eval_every"] = eval_every[0]
        if name["loss"] is not None:
            try:
                get_loss(name["loss"], **options["loss_options"])
            except ConfigError as err:
                raise self.relabel(err, self.locate(err, "loss", flat, where["loss"])) from None
        elif options["loss_options"]:
            first = next(k for k in flat if k.startswith("loss_options."))
            raise self.error(flat[first][1], options["loss_options"], "loss options only with a named loss")
        if not options["budget"]:
            raise self.error("defaults.budget", None, "a budget table, e.g. budget = { epochs = 20 }")
        try:
            budget = Budget(**options["budget"])
        except ConfigError as err:
            raise self.relabel(err, self.locate(err, "budget", flat, "defaults.budget")) from None
        except TypeError:
            bad = next(k for k in options["budget"] if k not in {f.name for f in dataclasses.fields(Budget)})
            raise self.error(
                flat[f"budget.{bad}"][1], bad, "a limit among " + ", ".join(f.name for f in dataclasses.fields(Budget))
            ) from None
        try:
            make_trainer(str(name["trainer"]), **options["trainer_options"]).check_budget(budget)
        except ConfigError as err:
            raise self.relabel(err, self.locate(err, "budget", flat, "defaults.budget")) from None
        try:
            diagnostics_config(options["diagnostics"])
        except ConfigError as err:
            raise self.relabel(err, self.locate_diagnostics(err, flat)) from None
        spec = RunSpec(
            task=name["task"], model=name["model"], trainer=name["trainer"], budget=budget, seed=0,
            loss=name["loss"], task_options=options["task_options"], model_options=options["model_options"],
            trainer_options=options["trainer_options"], loss_options=options["loss_options"],
            device=flat["device"][0], diagnostics=options["diagnostics"],
        )
        try:
            spec.resolved()
        except ConfigError as err:
            if err.field.startswith("budget."):  # a limit the trainer does not spend
                raise self.relabel(err, self.locate(err, "budget", flat, "defaults.budget")) from None
            raise self.relabel(err, where["trainer"]) from None
        return spec

    @staticmethod
    def locate_diagnostics(err: ConfigError, flat: Flat) -> str:
        """The TOML key path of the diagnostics option ``err`` is about: the deepest key that set it, extended by
        the rest of the option's path."""
        parts = err.field.split(".")
        for j in range(len(parts), 1, -1):
            key = ".".join(parts[:j])
            if key in flat:
                return ".".join([flat[key][1], *parts[j:]])
        first = next((where for k, (_, where) in flat.items() if k.startswith("diagnostics.")), "defaults.diagnostics")
        return f"{first.rsplit('.', 1)[0]}.{'.'.join(parts[1:])}"

    @staticmethod
    def locate(err: ConfigError, key: str, flat: Flat, fallback: str) -> str:
        """The TOML key path that set the option ``err`` is about, or ``fallback`` (the name's key path)."""
        section = "budget" if key == "budget" else f"{key}_options"
        parts = err.field.split(".")
        for i in range(len(parts)):
            option = f"{section}." + ".".join(parts[i:])
            if option in flat:
                return flat[option][1]
        return fallback
