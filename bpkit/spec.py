"""The experiment spec: every config field declared once, with its type, default, check and roles.

A run is a frozen :class:`Run` of four tables, :class:`Data`, :class:`Network`,
:class:`Optimizer` and :class:`Training`, read by attribute
(``run.training.max_epochs``).  Each field is declared with :func:`field`: its
default, the types a TOML file may give, its check and its :class:`Role`.  Every
table the rest of bpkit needs about fields is derived from those declarations:

* :data:`FIELDS`: every config key (dotted, as in a TOML file) and its :class:`Info`;
* :data:`VMAPPED`: the keys a sweep passes to its compiled program as data, seed first
  (:attr:`Role.DATA`, then the :attr:`Role.DISCRETE` ones as int32 codes);
* :data:`TUNED`: the settings a comparison tunes over (:mod:`bpkit.compare`);
* :data:`INIT_KEYS`: what fixes a seed's initial weights;
* :data:`LATER_KEYS`: keys added after runs were stored, with the default that trains as
  before the key existed (left out of a run's id at that default: :mod:`bpkit.store`);
* :data:`OPTIMIZER_DATA`: the optimizer hyperparameters that are data of a compiled program.

"Off" is ``None`` in a spec.  TOML has no null, so an optional rule is switched off in a
file by its *off spelling* (``training.goal = -1``, ``training.patience = 0``), which is also
how a stored run writes it (:meth:`Run.as_dict`), so run ids do not change.

Example:
    >>> run = Run(network=Network(hidden=(2,)), training=Training(goal=0.001))
    >>> run.training.goal, run.training.patience
    (0.001, None)
    >>> run.as_dict()["training.patience"], run.as_dict()["network.hidden"]
    (0, [2])
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from bpkit import activations as acts
from bpkit import losses as losses_
from bpkit.gradients import SOURCES
from bpkit.network import INIT_SCHEMES
from bpkit.optim import BETA_NAMES, OPTIMIZERS, RPROP_VARIANTS
from bpkit.stopping import STOP_ON

INT_MAX = 2**31 - 1  # counts, sizes and epochs are int32 inside the compiled loop
SEED_MAX = 2**32 - 1  # a seed is one uint32 word of the key: a larger one would alias a smaller
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
TABLES = ("data", "network", "optimizer", "training")  # a run's; [compare] is the sweep's


class Role(enum.Flag):
    """What a field is to the rest of bpkit (a field without a role shapes the compiled program)."""

    NONE = 0
    DATA = enum.auto()  # an argument of the compiled program, vmapped: another value compiles nothing
    DISCRETE = enum.auto()  # data as well, passed as an int32 code (CG's beta: one program for every beta)
    TUNED = enum.auto()  # a setting that comparisons tune over
    INIT = enum.auto()  # fixes a seed's initial weights (same values and seed: same weights)
    LATER = enum.auto()  # added after runs were stored: at its default it stays out of the run id
    SWEEP = enum.auto()  # a property of the sweep, not of a run: in no run's config or id


class Off(NamedTuple):
    """How a config file switches an optional field off: ``spelling`` (also how a stored run
    writes it), and every value that ``means`` off."""

    spelling: Any
    means: Callable[[Any], bool]


class Info(NamedTuple):
    """Everything bpkit knows about one config field."""

    doc: str
    types: tuple[type, ...]
    check: Callable[[str, Any], str | None] | None = None  # the error text, None when fine
    roles: Role = Role.NONE
    off: Off | None = None
    code: Callable[[Any], int] | None = None  # Role.DISCRETE: the value's int32 code


class Range(NamedTuple):
    """A check by a predicate; a value outside it is "out of range" and the error quotes the field's doc."""

    holds: Callable[[Any], bool]


Check = Callable[[str, Any], "str | None"]


def field(default: Any, types: tuple[type, ...], doc: str, check: Check | Range | None = None,
          roles: Role = Role.NONE, off: Off | None = None, code: Callable[[Any], int] | None = None) -> Any:
    """A dataclass field declared with its :class:`Info` (types, check, roles, off spelling, code)."""
    if isinstance(check, Range):
        holds = check.holds
        check = lambda key, v: None if holds(v) else f"{key} = {short(v)} is out of range: {doc}"
    return dataclasses.field(default=default, metadata={"info": Info(doc, types, check, roles, off, code)})


# --- checks: each returns the error text for a bad value, None for a good one -------------------------

def short(v: Any, limit: int = 60) -> str:
    """``repr(v)``, cut to ``limit`` characters: an error message stays one short line."""
    return cut(repr(v), limit)


def cut(text: str, limit: int = 60) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def choices(*names: Any) -> Callable[[str, Any], str | None]:
    valid = tuple(names)

    def check(key: str, v: Any) -> str | None:
        return None if v in valid else f"{key} = {short(v)} is not valid; valid: {', '.join(map(str, valid))}"

    return check


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _filename(key: str, v: str) -> str | None:
    if NAME_PATTERN.fullmatch(v):
        return None
    return f"{key} = {short(v)} cannot name a file; use 1-100 letters, digits, '-', '_' or '.', not starting with a dot"


def _computed(key: str, v: str) -> str | None:
    return f"{key} is computed by bpkit from the data file; leave it out of the config" if v else None


def _seed(key: str, v: int) -> str | None:
    if _int(v) and 0 <= v <= SEED_MAX:
        return None
    return f"{key} = {short(v)} is out of range: an integer in 0..{SEED_MAX}"


def _seed_list(key: str, v: list) -> str | None:
    if not all(_int(s) and 0 <= s <= SEED_MAX for s in v):
        return f"{key} must be a list of integers in 0..{SEED_MAX}, got {short(v)}"
    return None if len(set(v)) == len(v) else f"{key} lists a seed twice, got {short(v)}"


def _seeds(key: str, v: list) -> str | None:
    if not v or not all(_int(s) and 0 <= s <= SEED_MAX for s in v):
        return (f"seeds must be a non-empty list of integers in 0..{SEED_MAX} "
                f"(a seed is one 32-bit word of the key), got {short(v)}")
    if len(set(v)) != len(v):
        return f"seeds lists a seed twice; each seed names one run, got {short(v)}"
    return None


def _sizes(key: str, v: list) -> str | None:
    ok = all(_int(s) and 1 <= s <= INT_MAX for s in v)
    return None if ok else f"network.hidden must be a list of positive integers, got {short(v)}"


def _target_range(key: str, v: list) -> str | None:
    ok = not v or (len(v) == 2 and all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)
                                       for s in v) and v[0] < v[1])
    return None if ok else f"data.target_range must be [lo, hi] with finite lo < hi, got {short(v)}"


def _batch(key: str, v: Any) -> str | None:
    ok = v == "full" or (_int(v) and v >= 1)
    return None if ok else f"training.batch_size must be a positive integer or 'full', got {short(v)}"


_positive = Range(lambda v: v > 0)
_nonnegative = Range(lambda v: v >= 0)
_open_unit = Range(lambda v: 0 < v < 1)
_NEGATIVE_OFF = Off(-1.0, lambda v: v < 0)
_ZERO_OFF = Off(0, lambda v: v == 0)
_NUMBER = (float, int)
_ACTIVATIONS = choices(*acts.REGISTRY, *acts.ALIASES)


# --- the tables ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Data:
    """``[data]``: what is learnt."""

    name: str = field("xor", (str,), "data set name (see bpkit datasets), or a file's name", roles=Role.INIT)
    path: str = field("", (str,), "a CSV or FANN file instead of a named set", roles=Role.INIT)
    sha256: str = field("", (str,), "the data file's SHA-256, which bpkit sets from data.path: a run is identified "
                        "by its data's content, not by the file's name", _computed, Role.INIT | Role.LATER)
    test_path: str = field("", (str,), "a file of test examples in data.path's format (FANN's or CSV): data.path "
                           "is then all training data", roles=Role.INIT | Role.LATER)
    test_sha256: str = field("", (str,), "data.test_path's SHA-256, which bpkit sets", _computed,
                             Role.INIT | Role.LATER)
    targets: int = field(1, (int,), "CSV: how many trailing columns are targets", _positive)
    split_seed: int = field(0, (int,), "seed of the train/validation/test split", _seed, Role.INIT)
    target_range: tuple[float, ...] = field((), (list,), "map 0/1 targets to [lo, hi], e.g. [-1, 1]", _target_range)


@dataclasses.dataclass(frozen=True)
class Network:
    """``[network]``: the MLP and its initial weights."""

    hidden: tuple[int, ...] = field((), (list,), "hidden layer sizes", _sizes, Role.INIT)
    activation: str = field("sigmoid", (str,), "hidden activation", _ACTIVATIONS, Role.INIT)
    output: str = field("sigmoid", (str,), "output activation", _ACTIVATIONS, Role.INIT)
    shortcuts: bool = field(False, (bool,), "every layer feeds every later layer (Lang & Witbrock's two spirals net)",
                            roles=Role.INIT | Role.LATER)
    sum_limit: float | None = field(None, _NUMBER, "clip every pre-activation to +-this, as FANN clips a neuron's "
                                    "sum (600 for FANN's sigmoids at steepness 0.5; 0: off)", _positive, Role.LATER,
                                    off=_ZERO_OFF)
    steepness: float = field(1.0, _NUMBER, "hidden layers: a = f(steepness * (W u + b)) (FANN's steepness s on a "
                             "sigmoid is 2 s here, on tanh s)", _positive, Role.LATER)
    output_steepness: float = field(1.0, _NUMBER, "the output layer's steepness", _positive, Role.LATER)
    init: str = field("lecun_normal", (str,), "init scheme", choices(*INIT_SCHEMES), Role.INIT)
    init_scale: float = field(1.0, _NUMBER, "init scale (vmapped)", _positive, Role.DATA | Role.TUNED | Role.INIT)
    bias_init: float = field(0.0, _NUMBER, "added to every initial bias, e.g. 0.1 to start ReLU units alive",
                             roles=Role.INIT | Role.LATER)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """``[optimizer]``: how the gradient is followed (an optimizer reads the keys it takes:
    :data:`bpkit.optim.HYPERPARAMETERS`)."""

    name: str = field("sgd", (str,), "optimizer", choices(*OPTIMIZERS))
    learning_rate: float = field(0.1, _NUMBER, "learning rate (vmapped)", _positive, Role.DATA | Role.TUNED)
    momentum: float = field(0.0, _NUMBER, "momentum in [0, 1) (vmapped)", Range(lambda v: 0 <= v < 1),
                            Role.DATA | Role.TUNED)
    mu: float = field(1.75, _NUMBER, "quickprop maximum growth factor", _positive, Role.DATA | Role.TUNED)
    c1: float = field(1e-4, _NUMBER, "CG: Wolfe sufficient-decrease constant, 0 < c1 < c2 (vmapped)",
                      _open_unit,
                      Role.DATA | Role.TUNED | Role.LATER)
    c2: float = field(0.4, _NUMBER, "CG: Wolfe curvature constant, c1 < c2 < 1 (vmapped)",
                      _open_unit,
                      Role.DATA | Role.TUNED | Role.LATER)
    lambda_init: float = field(5e-7, _NUMBER, "SCG: initial lambda, Moeller's lambda_1 (vmapped)", _positive,
                               Role.DATA | Role.TUNED | Role.LATER)
    sigma: float = field(5e-5, _NUMBER, "SCG: finite-difference step for hvp = 'finite_difference' (vmapped)",
                         _positive, Role.DATA | Role.TUNED | Role.LATER)
    eta_minus: float = field(0.5, _NUMBER, "RPROP: step factor after a sign change, 0 < eta_minus < 1 (vmapped)",
                             _open_unit, Role.DATA | Role.TUNED | Role.LATER)
    eta_plus: float = field(1.2, _NUMBER, "RPROP: step factor while the sign holds, eta_plus > 1 (vmapped)",
                            Range(lambda v: v > 1), Role.DATA | Role.TUNED | Role.LATER)
    decay: float = field(0.0, _NUMBER, "quickprop: weight decay, the slope -(g + decay w) (FANN's quickprop_decay d "
                         "on summed slopes is -d / examples; part of the program)", _nonnegative, Role.LATER)
    min_step: float = field(1e-6, _NUMBER, "RPROP: smallest step (FANN's delta_min; 0 for variant 'fann'; part of "
                            "the program)", _nonnegative, Role.LATER)
    max_step: float = field(50.0, _NUMBER, "RPROP: largest step (FANN's delta_max; part of the program)", _positive,
                            Role.LATER)
    weight_limit: float | None = field(None, _NUMBER, "RPROP and quickprop: keep every weight within +-this "
                                       "(FANN's 1500; 0: off; part of the program)", _positive, Role.LATER,
                                       off=_ZERO_OFF)
    step_threshold: float = field(0.001, _NUMBER, "quickprop: a last step within +-this counts as none, so the next "
                                  "is a gradient step (FANN's 0.001; quickprop1.c's ModeSwitchThreshold is 0; part "
                                  "of the program)", _nonnegative, Role.LATER)
    split_epsilon: bool = field(False, (bool,), "quickprop: divide each unit's learning rate by its fan-in, bias "
                                "included (quickprop1.c's SplitEpsilon; part of the program)", roles=Role.LATER)
    beta: str = field("pr+", (str,), "CG beta", choices(*BETA_NAMES), Role.DISCRETE, code=BETA_NAMES.index)
    powell_beale: bool = field(False, (bool,), "CG: Powell-Beale restarts", roles=Role.DISCRETE, code=int)
    hvp: str = field("exact", (str,), "SCG Hessian-vector product", choices("exact", "finite_difference"))
    variant: str = field("irprop-", (str,), "RPROP variant (irprop- is optax.rprop's)", choices(*RPROP_VARIANTS))

    def __post_init__(self) -> None:
        if self.name == "rprop" and not self.min_step < self.max_step:
            raise ValueError(f"optimizer.min_step = {self.min_step} must be below optimizer.max_step = "
                             f"{self.max_step}")
        if self.name == "cg" and not self.c1 < self.c2:
            raise ValueError(f"optimizer.c1 = {self.c1} must be below optimizer.c2 = {self.c2} "
                             f"(a Wolfe line search needs 0 < c1 < c2 < 1)")


@dataclasses.dataclass(frozen=True)
class Training:
    """``[training]``: how the data are cut into updates, how a run is measured and when it stops."""

    batch_size: int | str = field("full", (int, str), "examples per update: 1 online, 'full' batch", _batch)
    shuffle: bool = field(True, (bool,), "draw each epoch's order from the key")
    max_epochs: int = field(1000, (int,), "epoch budget", _positive)
    goal: float | None = field(None, _NUMBER, "stop at this training loss (negative: off)", off=_NEGATIVE_OFF)
    min_grad_norm: float | None = field(None, _NUMBER, "stop at this gradient norm (negative: off)", off=_NEGATIVE_OFF)
    criterion_40_20_40: bool = field(False, (bool,), "stop when every output is right by 40-20-40")
    measure_bit_fails: float | None = field(None, _NUMBER, "store each run's final bit fails on its training, "
                                            "validation and test sets at this limit, a fraction of the targets' "
                                            "span (FANN's 0.35; 0: off)", Range(lambda v: 0 < v <= 1),
                                            Role.LATER, off=_ZERO_OFF)
    measure_dead_units: bool = field(False, (bool,), "store each run's dead hidden units (f'(z) = 0 on every "
                                     "training example) at its start and at its end", roles=Role.LATER)
    bit_fail: float | None = field(None, _NUMBER, "stop when no output is a bit fail, off its target by this times "
                                   "the targets' span or more (FANN's bit_fail_limit, 0.35 by default); the "
                                   "run's count of wrong outputs is then its bit fails (0: off)",
                                   Range(lambda v: 0 < v <= 1), Role.LATER, off=_ZERO_OFF)
    patience: int | None = field(None, (int,), "validation patience in epochs (0: off)", _nonnegative, off=_ZERO_OFF)
    stall_epochs: int | None = field(10, (int,), "stop after this many epochs without change (0: off)", _nonnegative,
                                     off=_ZERO_OFF)
    measure_every: int = field(1, (int,), "online and mini-batch: measure the full-data loss every k epochs and at "
                               "the last (NaN between; the stop rules are judged when measured)", _positive, Role.LATER)
    measures_per_epoch: int = field(1, (int,), "online and mini-batch: m measurements per epoch, stored as "
                                    "curves['within'] (m x epochs; the stop rules are judged at epoch ends; "
                                    "grad_norm only at epoch ends)",
                                    _positive, Role.LATER)
    grad_norm: bool = field(True, (bool,), "record the gradient norm at each measurement; false: online and "
                            "mini-batch measure the loss alone, a forward pass, and batch mode with a hand-written "
                            "source the rule's gradient alone (batch mode with autodiff keeps it: its measurement is "
                            "its next step's gradient)", roles=Role.LATER)
    stop_on: str = field("first", (str,), "'first': the first success criterion met ends the run; 'all': run until "
                         "goal and 40-20-40 both held", choices(*STOP_ON), Role.LATER)
    max_cu: float | None = field(None, _NUMBER, "compute budget: stop once a run has spent this many cu (loss "
                                 "evaluations + 3 gradients, full-data equivalents; negative: off)", _positive,
                                 Role.LATER, off=_NEGATIVE_OFF)

    def __post_init__(self) -> None:
        if self.bit_fail is not None and self.criterion_40_20_40:
            raise ValueError(f"training.bit_fail = {self.bit_fail} and training.criterion_40_20_40 = true: give one "
                             f"criterion on the outputs, not both")
        every, m = self.measure_every, self.measures_per_epoch
        if every > 1 and m > 1:
            raise ValueError(f"training.measure_every = {every} and training.measures_per_epoch = {m}: give one "
                             f"of them (measurements every k epochs, or m per epoch), not both")
        if not self.grad_norm and self.min_grad_norm is not None:
            raise ValueError(f"training.grad_norm = false and training.min_grad_norm = {self.min_grad_norm}: the rule "
                             f"needs the gradient norm measured (drop one of them)")
        if m > 1 and self.batch_size == "full":
            raise ValueError(f"training.measures_per_epoch = {m} needs online or mini-batch training; with "
                             f"training.batch_size = 'full' an epoch is one step, measured at its end (use 1)")


@dataclasses.dataclass(frozen=True)
class Compare:
    """``[compare]``: how a comparison of the sweep's runs chooses and reports (a property of the
    sweep: in no run's config or id)."""

    tune_seeds: tuple[int, ...] = field((), (list,), "seeds whose runs choose each method's setting; every "
                                        "number is then reported on the other seeds (empty: chosen and "
                                        "reported on the same seeds, which favours lucky settings)",
                                        _seed_list, Role.SWEEP)
    tune_first: bool = field(False, (bool,), "run every setting on compare.tune_seeds first, then on the other "
                             "seeds only the setting each method chose there (the same choice, far fewer runs)",
                             roles=Role.SWEEP)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run: the four tables, the top-level keys, its seed and its axes' label."""

    name: str = field("experiment", (str,), "experiment name (names results/<name>.sqlite)", _filename)
    dtype: str = field("float32", (str,), "float32 or float64", choices("float32", "float64"), Role.INIT)
    loss: str = field("mse", (str,), "loss", choices(*losses_.REGISTRY))
    source: str = field("autodiff", (str,), "gradient source", choices(*SOURCES))
    data: Data = dataclasses.field(default_factory=Data)
    network: Network = dataclasses.field(default_factory=Network)
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    training: Training = dataclasses.field(default_factory=Training)
    seed: int = 0  # one of the config's seeds (vmapped: the program's first column)
    label: str = ""  # the labels of its axes' entries, joined by "/"

    def get(self, key: str) -> Any:
        """The value of a dotted key as a spec holds it (off: None), e.g. ``run.get("training.goal")``."""
        table, _, name = key.rpartition(".")
        return getattr(getattr(self, table) if table else self, name)

    def items(self) -> tuple[tuple[str, Any], ...]:
        """Every field as ``(dotted key, value)``, off spelled as in a config file; lists as tuples."""
        out = [(k, _spelled(self.get(k), info)) for k, info in FIELDS.items() if Role.SWEEP not in info.roles]
        return (*out, ("label", self.label), ("seed", self.seed))

    def as_dict(self) -> dict[str, Any]:
        """The run as the flat dict a store keeps (and hashes into its run id): lists as lists."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.items()}

    def static_key(self) -> tuple:
        """What shapes the compiled program: everything but the vmapped fields and the label."""
        return tuple((k, v) for k, v in self.items() if k not in VMAPPED and k != "label")

    def replace(self, **changes: Any) -> Run:
        """This run with dotted keys changed, e.g. ``run.replace(**{"optimizer.momentum": 0.0})``."""
        return from_flat({**self.as_dict(), **changes})


def _spelled(v: Any, info: Info) -> Any:
    return info.off.spelling if (v is None and info.off is not None) else v


def _walk() -> dict[str, Info]:
    tables: dict[str, type] = {"data": Data, "network": Network, "optimizer": Optimizer, "training": Training}
    out = {}
    for f in dataclasses.fields(Run):
        if f.name in tables:
            out.update({f"{f.name}.{g.name}": g.metadata["info"] for g in dataclasses.fields(tables[f.name])})
        elif "info" in f.metadata:
            out[f.name] = f.metadata["info"]
            if f.name == "name":  # a sweep's seeds: one run each
                out["seeds"] = Info("seeds, one run each (vmapped)", (list,), _seeds, Role.SWEEP)
    out.update({f"compare.{g.name}": g.metadata["info"] for g in dataclasses.fields(Compare)})
    return out


FIELDS: dict[str, Info] = _walk()
DEFAULTS: dict[str, Any] = {k: [0] if k == "seeds" else [] if k == "compare.tune_seeds"
                            else getattr(Compare(), k[len("compare."):]) if k.startswith("compare.")
                            else Run().as_dict()[k] for k in FIELDS}
LIST_FIELDS = frozenset(k for k, i in FIELDS.items() if i.types == (list,))
VMAPPED: tuple[str, ...] = ("seed",) + tuple(k for k, i in FIELDS.items() if Role.DATA in i.roles) + tuple(
    k for k, i in FIELDS.items() if Role.DISCRETE in i.roles)
DISCRETE: dict[str, Callable[[Any], int]] = {k: i.code for k, i in FIELDS.items() if i.code is not None}
TUNED: tuple[str, ...] = tuple(k for k, i in FIELDS.items() if Role.TUNED in i.roles)
INIT_KEYS: tuple[str, ...] = tuple(k for k, i in FIELDS.items() if Role.INIT in i.roles)
LATER_KEYS: dict[str, Any] = {k: DEFAULTS[k] for k, i in FIELDS.items() if Role.LATER in i.roles}
OPTIMIZER_DATA: frozenset[str] = frozenset(k.split(".")[1] for k, i in FIELDS.items()
                                           if Role.DATA in i.roles and k.startswith("optimizer."))


def check_value(key: str, v: Any) -> None:
    """Raise a one-line ValueError unless ``v`` is a valid value of config key ``key``."""
    info = FIELDS[key]
    if isinstance(v, bool) and bool not in info.types or not isinstance(v, info.types):
        raise ValueError(f"{key} must be {_type_name(info.types)}, got {short(v)}")
    _check_number(key, v)
    if info.off is not None and info.off.means(v):
        return
    error = info.check(key, v) if info.check else None
    if error:
        raise ValueError(error)


def check_in_dtype(run: Run) -> None:
    """Raise a one-line ValueError where a number valid in float64 is not in the run's dtype: it
    overflows (a learning rate of 1e39 is inf in float32) or rounds out of range (a momentum of
    0.99999999 is 1.0 in float32)."""
    for key, info in FIELDS.items():
        v = run.get(key) if Role.SWEEP not in info.roles else None
        if float not in info.types or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        with np.errstate(over="ignore", under="ignore"):
            cast = float(np.asarray(v, run.dtype))
        if cast == v:
            continue
        try:
            check_value(key, cast)
        except ValueError as e:
            raise ValueError(f"{key} = {v!r} is {cast!r} in {run.dtype}, the run's dtype, so {e}; use dtype = "
                             f"'float64' or a value {run.dtype} holds") from None


def stored_problem(config: Any) -> str | None:
    """Why a stored run's config (the flat dict of :meth:`Run.as_dict`) is not one this bpkit can read,
    or None.  Only types are checked: a store keeps what was valid when its run was made.

    Example:
        >>> stored_problem({"seed": 0, "name": "xor"})
        'its config lacks dtype'
    """
    if not isinstance(config, dict):
        return "its config is not a JSON object"
    if not isinstance(config.get("seed"), int) or not isinstance(config.get("label", ""), str):
        return "its config's seed or label is not as stored"
    for key, info in FIELDS.items():
        if Role.SWEEP in info.roles or (key not in config and key in LATER_KEYS):
            continue
        if key not in config:
            return f"its config lacks {key}"
        v = config[key]
        if isinstance(v, bool) and bool not in info.types or not isinstance(v, info.types):
            return f"its config's {key} is not {_type_name(info.types)}"
    return None


def _type_name(types: tuple[type, ...]) -> str:
    words = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true/false", "list": "a list"}
    if float in types:  # an int is a number too
        types = tuple(t for t in types if t is not int)
    return " or ".join(words[t.__name__] for t in types)


def _check_number(key: str, v: Any) -> None:
    """Integers within int32 (uint32 for seeds), floats finite: bounds the compiled loop can hold."""
    if isinstance(v, bool):
        return
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{key} = {v!r} is not a finite number")
    if isinstance(v, int) and abs(v) > INT_MAX and key != "data.split_seed":
        raise ValueError(f"{key} = {v} is too large; the limit is {INT_MAX} (2^31 - 1)")


def from_flat(flat: dict[str, Any]) -> Run:
    """The :class:`Run` of a flat dict of checked values (dotted keys, plus ``seed`` and ``label``;
    missing keys take their defaults; an off spelling becomes None).

    Raises:
        ValueError: fields of one table that contradict each other (one line).
    """
    tables: dict[str, dict[str, Any]] = {t: {} for t in TABLES}
    top: dict[str, Any] = {}
    for key, v in flat.items():
        if key in FIELDS and Role.SWEEP in FIELDS[key].roles:
            continue
        info = FIELDS.get(key)
        if info is not None:
            if isinstance(v, list):
                v = tuple(v)
            elif info.off is not None and info.off.means(v):
                v = None
        table, _, name = key.rpartition(".")
        (tables[table] if table else top)[name] = v
    return Run(**top, data=Data(**tables["data"]), network=Network(**tables["network"]),
               optimizer=Optimizer(**tables["optimizer"]), training=Training(**tables["training"]))
