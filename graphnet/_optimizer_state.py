"""The state machinery every optimizer stands on: :class:`Optimizer`.

The update rules themselves are in :mod:`graphnet.optimizers`, a screen
each. What they share lives here:

* **Flat state that follows the layout.** An optimizer works on the plan's
  flat parameter and gradient buffers, so an update is a handful of
  whole-buffer passes. Its state (moments, velocities) is flat too, and
  :meth:`Optimizer.bind` carries the state of every parameter that still
  exists over to a new layout when the graph is edited; a parameter that
  joins later counts its own steps (as PyTorch's per-parameter step).
* **State follows parameters, not names.** A parameter is its owner's
  ``parameter_token`` (:mod:`graphnet._parameters`), which copies and pickles
  keep: a synapse or node removed and made again under the same key and
  size is a new parameter and starts from zero state, as PyTorch's and
  Keras's optimizers key their state by the variable itself. State handed
  to another graph (a copy of the optimizer, a loaded file) goes to that
  graph's parameters of the same key and size, when it is handed over
  (:meth:`Optimizer.claim`). A frozen parameter leaves the layout but its
  state is held until it is unfrozen (:mod:`graphnet._state_layout`).
* **Propose, check, commit.** :meth:`Optimizer.propose` computes the update
  ``u`` and the state that would follow into buffers of its own, touching
  neither the parameters nor the current state; the trainer checks ``u``
  (and, for huge gradients, the proposed state); :meth:`Optimizer.commit`
  makes the proposed state current (a swap of buffers) and counts the
  iteration. A refused step therefore leaves the weights, the state and the
  iteration count exactly as they were. A rule that can make its new state
  at commit (Adam with the compiled kernels) keeps no second copy of it.
* **Ownership.** One optimizer keeps the moments of one graph.
* **Devices, saving, learning rates.** The state moves with the graph
  (:meth:`Optimizer.to`), is saved and restored
  (:meth:`Optimizer.get_state`), and any ``lr`` may be a
  :mod:`graphnet.schedules` schedule (``learning_rate=`` is Keras's name for it).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ._hyperparameters import positive, resolve_lr
from ._parameters import Layout
from ._settings import Checked
from ._state_layout import HeldState, kept_keys, offsets, writable
from .backend import CPU
from .errors import GraphError

__all__ = ["Optimizer"]

logger = logging.getLogger("graphnet.optimizers")

# Moments of dead units decay geometrically into float32 subnormals, which make
# every later pass over them many times slower (numpy cannot flush to zero).
_FLUSH_EVERY = 64
_FLUSH_BELOW = 1e-30


class Optimizer(Checked):
    """The base every update rule stands on (see the module docs).

    A rule lists its state in :attr:`slot_names` and implements
    :meth:`update`; one that can make its new state at commit instead of
    into a second copy implements :meth:`step_in_place` and
    :meth:`commit_in_place` too.
    """

    #: The name users pass (``optimizer="adam"``).
    name: ClassVar[str] = ""
    #: The rule's state, one flat array each (momentum's velocity, Adam's m and v).
    slot_names: ClassVar[tuple[str, ...]] = ()
    #: Slots that are never negative (running means of squared gradients).
    nonnegative_slots: ClassVar[tuple[str, ...]] = ()
    #: Whether the rule depends on each parameter's own step count ``t``
    #: (Adam's bias correction): :meth:`update` is then called once per run
    #: of parameters that joined at the same iteration.
    counts_steps: ClassVar[bool] = False

    def __init__(self, lr=None, clipnorm: float | None = None, learning_rate=None, *, default: float):
        self.lr = resolve_lr(self, lr, learning_rate, default)
        self.clipnorm = None if clipnorm is None else positive("clipnorm", clipnorm, self)
        self.iterations = 0
        self.slots: dict[str, np.ndarray] = {}
        self._proposed: dict[str, np.ndarray] = {}  # the state a proposal writes (made when first needed)
        self._layout: Layout | None = None
        self._scratch: np.ndarray | None = None
        self._owner: weakref.ref | None = None
        self._backend = CPU  # where the state lives (bind() follows the plan's)
        #: The iteration count at which a parameter's state started, for the
        #: ones that joined after the first update (a graph edited mid-training).
        self._born: dict[str, int] = {}
        #: The ``parameter_token`` of each entry of the layout: which parameter
        #: the state belongs to (None: no parameter now, the state is dropped at
        #: the next bind); None as a whole while unknown (bound by key alone).
        self._tokens: tuple[int | None, ...] | None = None
        #: The ``lineage`` of the graph whose parameters the tokens name.
        self._lineage: int | None = None
        #: The state of parameters frozen since they trained, until they are unfrozen.
        self._held = HeldState()
        self._runs: tuple[tuple[int, int, int], ...] | None = None
        #: The gradient of a proposal whose new state is not stored but made
        #: at commit (:meth:`commit_in_place`); None for a stored proposal.
        self._in_place: np.ndarray | None = None
        self._finite_grads = False

    def check_setting(self, key: str, value) -> None:
        if key == "lr":  # None means the default when made; set, it is no rate
            resolve_lr(self, value, None, None)

    def adopt_setting(self, key: str, remade) -> None:
        """A checked setting (``opt.lr = 0.01``) changes that setting alone:
        the state this optimizer keeps stays, so a setting that would change
        which state it keeps (SGD's momentum to or from 0) is refused once
        it has trained."""
        if remade.slot_names != self.slot_names and self._layout is not None:
            raise GraphError(f"{self.name}: setting {key} to {getattr(remade, key)!r} would change the state it "
                             f"keeps ({list(self.slot_names)} to {list(remade.slot_names)}) after it has trained; "
                             f"give the graph a new {type(self).__name__}(...)")
        self.__dict__[key] = getattr(remade, key)
        if remade.slot_names != self.slot_names:
            self.__dict__["slot_names"] = remade.slot_names

    @property
    def learning_rate(self):
        """Keras's name for :attr:`lr` (a float or a schedule)."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.lr = resolve_lr(self, value, None, None)

    def current_lr(self) -> float:
        """The rate the next update uses (a schedule's value at :attr:`iterations`).

        Raises
        ------
        GraphError
            For a schedule (a custom one) whose value is no number >= 0.
        """
        lr = self.lr
        if isinstance(lr, float):
            return lr
        value = lr(self.iterations)
        number = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
        if isinstance(number, (int, float, np.integer, np.floating)) and not isinstance(number, bool) and number >= 0:
            return float(number)
        raise GraphError(f"{self.name}: its schedule {getattr(lr, 'name', type(lr).__name__)!r} gave the learning "
                         f"rate {value!r} at step {self.iterations}; a rate is a number >= 0")

    # -- state follows the parameter layout ---------------------------------
    def bind(self, layout: Layout, dtype: np.dtype, backend=CPU, tokens: tuple[int, ...] | None = None,
             frozen: Mapping[int, tuple[str, int]] | None = None) -> None:
        """Prepare state for a flat parameter vector with this ``layout``, on
        ``backend`` (:mod:`graphnet.backend`; the state moves there if it was
        elsewhere).

        ``tokens`` says which parameter each entry of ``layout`` is (the
        store's :attr:`~graphnet._parameters.ParameterStore.tokens`). State of
        parameters present in both the old and the new layout is kept: the
        same key and size and, where both layouts say, the same token.
        ``frozen`` (the store's
        :attr:`~graphnet._parameters.ParameterStore.frozen`) names the
        graph's parameters outside ``layout``: the state of one that leaves
        the layout is held, with its step count, until it joins again (see
        :mod:`graphnet._state_layout`). New parameters, resized ones, and ones
        made anew under an old key start from zero state with a step count of
        their own.
        """
        dtype = np.dtype(dtype)
        tokens = None if tokens is None else tuple(tokens)
        if backend is not self._backend:
            self.to(backend)
        if (layout == self._layout and (tokens is None or tokens == self._tokens)
                and self._scratch is not None and self._scratch.dtype == dtype):
            return
        xp = backend.xp
        size = sum(n for _, n in layout)
        old_offsets = offsets(self._layout) if self._layout is not None else {}
        kept = kept_keys(self._layout, self._tokens, layout, tokens)
        given = self._held.give(layout, tokens, {key for key, _ in layout} - kept)  # before hold() forgets them
        if frozen is not None and self._layout is not None:
            self._held.hold(self._layout, self._tokens, self.slots, self.steps,
                            {key for key, _ in self._layout} - kept, frozen, backend.host_copy)
        # A parameter that joins now starts its own count (as PyTorch's per-parameter step);
        # one unfrozen counts on from the steps its held state had seen.
        self._born = {key: self._born.get(key, 0) if key in kept
                      else self.iterations - (given[key].steps if key in given else 0) for key, _ in layout}
        self._born = {key: born for key, born in self._born.items() if born}
        moved = ([(key, start, n) for key, (start, n) in offsets(layout).items() if key in kept or key in given]
                 if kept or given else [])
        new_slots = {}
        for slot in self.slot_names:
            new = xp.zeros(size, dtype=dtype)
            old = self.slots.get(slot)
            for key, start, n in moved:
                if key in kept and old is not None:
                    o = old_offsets[key][0]
                    new[start : start + n] = old[o : o + n]
                elif key in given:
                    new[start : start + n] = backend.to_device(given[key].slots[slot].astype(dtype))
            new_slots[slot] = new
        if self._layout is not None:
            logger.debug("%s: state carried over to a new layout of %d parameters", self.name, size)
        self._tokens = tokens
        self._install(layout, new_slots, dtype)

    def _install(self, layout: Layout, slots: dict[str, np.ndarray], dtype: np.dtype) -> None:
        xp = self._backend.xp
        size = sum(n for _, n in layout)
        self.slots = slots
        self._proposed = {}  # made by _proposal() when first needed
        self._layout = layout
        self._scratch = xp.empty(size, dtype=dtype)
        self._runs = None
        if self._born:  # contiguous runs of parameters born at the same iteration
            runs: list[list[int]] = []
            for key, (start, n) in offsets(layout).items():
                born = self._born.get(key, 0)
                if runs and runs[-1][2] == born and runs[-1][1] == start:
                    runs[-1][1] = start + n
                else:
                    runs.append([start, start + n, born])
            self._runs = tuple(tuple(r) for r in runs)

    def steps(self, key: str) -> int:
        """How many updates the state of parameter ``key`` has seen."""
        return self.iterations - self._born.get(key, 0)

    def to(self, backend) -> None:
        """Move the state (moments, ...) to ``backend``'s device; the
        iteration count and layout stay."""
        old = self._backend
        if backend is old:
            return
        self._backend = backend
        if self._scratch is None:
            return
        slots = {name: backend.to_device(old.to_host(value)) for name, value in self.slots.items()}
        self._install(self._layout, slots, self._scratch.dtype)

    # -- one update ----------------------------------------------------------
    def propose(self, params: np.ndarray, grads: np.ndarray, sq_norm: float | None = None) -> np.ndarray:
        """The update ``u`` (new parameters are ``params - u``) and the state
        that follows it, without changing the current state.

        ``grads`` may be scaled in place (``clipnorm``); ``sq_norm`` is its
        squared norm when the caller knows it (``inf`` when it overflowed; on
        a device a 0-d array, which clipping then uses without reading it).
        The returned array belongs to the optimizer and is valid until the
        next call.
        """
        if self._scratch is None or self._scratch.shape != params.shape:
            raise GraphError(
                f"{self.name}: bind() the optimizer to a layout of {params.size} parameters first"
            )
        if self.clipnorm is not None:
            if self._backend.deferred:
                if sq_norm is None:
                    sq_norm = self._backend.xp.dot(grads, grads)
                self._backend.scale_to_norm(grads, sq_norm, self.clipnorm)
            else:
                norm = _norm(grads, sq_norm)
                if norm > self.clipnorm:
                    grads *= self.clipnorm / norm
        # A finite sum of squares proves every gradient finite (see Trainer.update).
        finite = isinstance(sq_norm, float) and math.isfinite(sq_norm)
        self._in_place = None
        lr, out, n, now = self.current_lr(), self._scratch, params.shape[0], self.iterations + 1
        runs = self._runs if self.counts_steps and self._runs else ((0, n, 0),)
        if finite and self.in_place_for(n) and all(
            self.step_in_place(params[a:b], grads[a:b], _views(self.slots, slice(a, b)), out[a:b], lr, now - born)
            for a, b, born in runs
        ):
            self._in_place = grads  # the new state is made at commit: no second copy of it
            return out
        proposed = self._proposal()
        if len(runs) == 1:
            return self.update(params, grads, self.slots, proposed, out, lr, now - runs[0][2])
        # Parameters that joined later count their own steps (a rule that counts
        # steps writes its update into ``out``).
        for a, b, born in runs:
            part = slice(a, b)
            self.update(params[part], grads[part], _views(self.slots, part), _views(proposed, part), out[part], lr,
                        now - born)
        return out

    def _proposal(self) -> dict[str, np.ndarray]:
        """The buffers a stored proposal writes its new state into (made once,
        when first needed: a rule whose proposals are all made at commit
        never needs them)."""
        if self.slot_names and not self._proposed:
            xp, size, dtype = self._backend.xp, self._scratch.size, self._scratch.dtype
            self._proposed = {name: xp.empty(size, dtype=dtype) for name in self.slot_names}
        return self._proposed

    def proposed_state_finite(self) -> bool:
        """Whether the state :meth:`propose` computed is free of NaN and inf
        (one made at commit is exactly when the step is, which is checked first)."""
        if self._in_place is not None:
            return True
        return all(bool(np.isfinite(v).all()) for v in self._proposed.values())

    def commit(self) -> None:
        """Make the proposed state current and count the iteration."""
        if self._in_place is not None:
            self.commit_in_place(self._in_place, self.slots)
            self._in_place = None
        elif self.slot_names:
            self.slots, self._proposed = self._proposed, self.slots
        self.iterations += 1
        if (self.iterations % _FLUSH_EVERY == 0 and self._backend.flush_subnormals
                and self._scratch is not None and self._scratch.dtype == np.float32):
            for slot in self.slots.values():
                slot[np.abs(slot) < _FLUSH_BELOW] = 0

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """:meth:`propose` then :meth:`commit`: advance the state and return the update."""
        update = self.propose(params, grads)
        self.commit()
        return update

    # -- what a rule implements ----------------------------------------------
    def update(self, params, grads, slots, new_slots, out, lr: float, t: int) -> np.ndarray:
        """The update ``u`` (new parameters are ``params - u``), written into
        ``out`` (or returned as one of ``new_slots``), and the new state
        written into ``new_slots``; ``slots`` is read, never written. ``t``
        counts this step for these parameters (1 for the first)."""
        raise NotImplementedError

    def in_place_for(self, size: int) -> bool:
        """Whether to make the new state at commit (:meth:`step_in_place`)
        for ``size`` trainable parameters, rather than into a second copy."""
        return False

    def step_in_place(self, params, grads, slots, out, lr: float, t: int) -> bool:
        """The update into ``out`` without the new state, which
        :meth:`commit_in_place` makes after the step was checked; False
        when this rule (or this backend) cannot."""
        return False

    def commit_in_place(self, grads, slots) -> None:
        """Make the new state of an accepted :meth:`step_in_place`, in place."""
        raise NotImplementedError

    # -- configuration and state ---------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Name and hyperparameters; ``get(config)`` rebuilds the optimizer."""
        lr = self.lr if isinstance(self.lr, float) else self.lr.get_config()
        return {"name": self.name, "lr": lr, "clipnorm": self.clipnorm}

    def get_state(self) -> dict[str, Any]:
        """Iteration count, layout, flat slot arrays (numpy, for saving),
        which parameters of which graph the state belongs to (``tokens``,
        ``lineage``; model files leave them out), and the state held for
        frozen parameters (``held``; model files add it to the layout)."""
        copy = self._backend.host_copy
        return {
            "iterations": self.iterations,
            "layout": [list(item) for item in (self._layout or ())],
            "slots": {k: copy(v) for k, v in self.slots.items()},
            "born": dict(self._born),
            "tokens": None if self._tokens is None else list(self._tokens),
            "lineage": self._lineage,
            "held": self._held.get_state(),
        }

    def held_for(self, graph) -> tuple[int | None, ...]:
        """Per entry of the layout the state follows, the ``parameter_token``
        of the parameter of ``graph`` it belongs to now, or None where
        ``graph`` no longer has that parameter (removed, resized, or made
        anew under the same key). For another graph's state, or state known
        by key alone, a parameter of the same key and size."""
        now = graph.parameter_tokens()
        known = self._tokens is not None and self._lineage == graph.lineage
        held = []
        for i, (key, n) in enumerate(self._layout or ()):
            token, size = now.get(key, (None, None))
            held.append(token if size == n and (not known or self._tokens[i] == token) else None)
        return tuple(held)

    def frozen_state(self, graph) -> list:
        """The state held for ``graph``'s frozen parameters
        (:class:`~graphnet._state_layout.Held`: key, size, steps, slots), for
        a model file."""
        return self._held.of(graph.parameter_tokens(), by_token=self._lineage == graph.lineage)

    def restore_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(current, previous)`` state after :meth:`commit`: what a refused
        update on a device puts back (see :meth:`graphnet.backend.DeviceBackend.apply`)."""
        return [(self.slots[name], self._proposed[name]) for name in self.slot_names]

    def set_state(self, state: dict[str, Any], dtype: np.dtype) -> None:
        """Restore what :meth:`get_state` returned.

        Raises
        ------
        GraphError
            When the slots do not match the layout or this optimizer's slot names.
        """
        layout: Layout = tuple((str(k), int(n)) for k, n in state["layout"])
        size = sum(n for _, n in layout)
        slots = state["slots"]
        if set(slots) != set(self.slot_names):
            raise GraphError(
                f"{self.name}: expected state slots {sorted(self.slot_names)}, got {sorted(slots)}"
            )
        for slot, value in slots.items():
            if np.shape(value) != (size,):
                raise GraphError(
                    f"{self.name}: state slot {slot!r} should have shape ({size},), "
                    f"got {np.shape(value)}"
                )
        tokens = state.get("tokens")
        if tokens is not None and len(tokens) != len(layout):
            raise GraphError(
                f"{self.name}: expected one parameter token per entry of the layout ({len(layout)}), "
                f"got {len(tokens)}"
            )
        self.iterations = int(state["iterations"])
        keys = {key for key, _ in layout}
        self._born = {str(k): int(v) for k, v in state.get("born", {}).items() if k in keys and int(v)}
        self._tokens = None if tokens is None else tuple(tokens)
        self._lineage = state.get("lineage")
        self._held = HeldState.from_state(state.get("held"))
        to_device = self._backend.to_device
        self._install(layout, {k: to_device(np.array(v, dtype=dtype)) for k, v in slots.items()}, np.dtype(dtype))

    # -- ownership: one optimizer trains one graph ---------------------------
    def claim(self, graph) -> None:
        """Become ``graph``'s optimizer; refused while another live graph has it.

        State that names another graph's parameters (a copy of another
        graph's optimizer, a loaded file) or none (bound by key alone) goes
        to ``graph``'s parameters of the same key and size now: an edit made
        after this starts a new parameter afresh, as it would have before.
        """
        owner = None if self._owner is None else self._owner()
        if owner is not None and owner is not graph:
            raise GraphError(
                f"{self.name}: this optimizer already trains graph {owner.name!r}; one optimizer "
                f"keeps one set of moments, so give graph {graph.name!r} its own "
                f"(gn.optimizers.get({self.get_config()!r}), or copy.deepcopy(optimizer) to "
                "start from the same state)"
            )
        if self._lineage != graph.lineage or self._tokens is None:
            self._tokens = self.held_for(graph) if self._layout is not None else None
            if self._lineage != graph.lineage and self._held.entries:
                self._held.retoken(graph.parameter_tokens())
            self._lineage = graph.lineage
        self._owner = weakref.ref(graph)

    def release(self) -> None:
        self._owner = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickling) belongs to no graph until one takes it."""
        state = self.__dict__.copy()
        state["_owner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An unpickled optimizer updates its state in place: arrays that came
        back read-only (joblib's memory maps, pickle's out-of-band buffers, as
        dask and Ray ship them) are copied."""
        self.__dict__.update(state)
        for name in ("slots", "_proposed"):  # dicts of arrays, when bound
            if isinstance(state.get(name), dict):
                setattr(self, name, {k: writable(v) for k, v in state[name].items()})
        self._scratch = writable(state.get("_scratch"))
        self._held.make_writable()

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except GraphError:  # a custom schedule without get_config: shown by its own repr below
            config = {"name": self.name}
        params = {k: v for k, v in config.items() if k != "name" and v is not None}
        if not isinstance(self.lr, float):
            params["lr"] = self.lr
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _norm(grads: np.ndarray, sq_norm: float | None) -> float:
    """The Euclidean norm, also when the sum of squares overflows."""
    if sq_norm is None:
        sq_norm = float(np.dot(grads, grads))
    if math.isfinite(sq_norm):
        return math.sqrt(sq_norm)
    scale = float(np.max(np.abs(grads)))
    scaled = grads / scale
    return scale * math.sqrt(float(np.dot(scaled, scaled)))


def _views(slots: dict[str, np.ndarray], part: slice) -> dict[str, np.ndarray]:
    return {name: array[part] for name, array in slots.items()}
