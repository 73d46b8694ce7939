"""keras_lottery.controls: the random subnetworks a ticket is compared with."""

import keras
import numpy as np
import pytest

from keras_lottery import controls, pruning
from keras_lottery.config import ConfigError, RunConfig
from keras_lottery.ticket import Ticket
from tests.helpers import mlp, to_numpy

pytestmark = pytest.mark.backend_neutral

KINDS = ("random_reinit", "random_prune", "shuffle_masks", "permute_copies")


def _masks(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.random((6, 5)) < 0.3,
        "b": rng.random((4, 3, 2)) < 0.7,
        "c": np.ones(7, bool),
    }


def _ticket():
    model = mlp()
    pruning.prune_magnitude(model, 0.6)
    return Ticket.from_model(model)


def _kernels(model):
    return {lyr.name: to_numpy(lyr.kernel) for lyr in pruning.masked_layers(model)}


def test_the_controls_are_registered_in_order():
    assert controls.names() == KINDS
    assert [controls.get(k).name for k in KINDS] == list(KINDS)
    assert [controls.get(k).keeps_weights for k in KINDS] == [False, True, True, True]
    assert [controls.get(k).elastic_only for k in KINDS] == [False] * 3 + [True]


def test_unknown_control_names_the_registered_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown control 'shuffle'; allowed: "
        r"\['random_reinit', 'random_prune', 'shuffle_masks', 'permute_copies'\]",
    ):
        controls.get("shuffle")
    with pytest.raises(ValueError, match="Unknown control"):
        controls.control_masks("shuffle", _masks(), 0)


def test_random_reinit_keeps_the_masks():
    masks = _masks()
    out = controls.control_masks("random_reinit", masks, seed=3)
    for name, mask in masks.items():
        np.testing.assert_array_equal(out[name], mask)
        assert out[name] is not mask


def test_random_prune_keeps_each_layers_count_at_new_positions():
    masks = _masks()
    out = controls.control_masks("random_prune", masks, seed=3)
    assert list(out) == list(masks)
    for name, mask in masks.items():
        assert out[name].shape == mask.shape and out[name].dtype == bool
        assert out[name].sum() == mask.sum()
    assert not np.array_equal(out["a"], masks["a"])
    np.testing.assert_array_equal(out["c"], True)  # dense stays dense
    np.testing.assert_array_equal(  # a pure function of the seed
        controls.control_masks("random_prune", masks, seed=3)["a"], out["a"]
    )
    other = controls.control_masks("random_prune", masks, seed=4)
    assert not np.array_equal(other["a"], out["a"])


def test_shuffle_masks_permutes_each_layer_with_the_seed():
    masks = _masks()
    out = controls.control_masks("shuffle_masks", masks, seed=5)
    rng = np.random.default_rng(5)
    for name, mask in masks.items():  # one generator, layers in order
        expected = rng.permutation(mask.ravel()).reshape(mask.shape)
        np.testing.assert_array_equal(out[name], expected)
        assert out[name].sum() == mask.sum()
    assert not np.array_equal(out["b"], masks["b"])


def test_random_reinit_model_is_a_fresh_initialization_under_the_ticket_masks():
    ticket = _ticket()
    model = controls.control_model("random_reinit", ticket, mlp, seed=11)
    keras.utils.set_random_seed(11)
    fresh = _kernels(mlp())
    ticket_model = mlp()
    ticket.apply(ticket_model)
    rewound = _kernels(ticket_model)
    for name, kernel in _kernels(model).items():
        mask = ticket.masks[name]
        np.testing.assert_array_equal(pruning.get_masks(model)[name], mask)
        np.testing.assert_array_equal(kernel, fresh[name] * mask)
        assert not np.array_equal(kernel, rewound[name])


@pytest.mark.parametrize("kind", ["random_prune", "shuffle_masks"])
def test_weight_keeping_controls_take_the_ticket_weights_under_their_masks(kind):
    ticket = _ticket()
    model = controls.control_model(kind, ticket, mlp, seed=11, mask_seed=12)
    expected = controls.control_masks(kind, ticket.masks, seed=12)
    dense = Ticket(
        masks={n: np.ones_like(m) for n, m in ticket.masks.items()},
        weights=ticket.weights,
        layers=ticket.layers,
        variables=ticket.variables,
    )
    reference = mlp()
    dense.apply(reference)  # the ticket's (rewound) weights, unmasked
    reference_kernels = _kernels(reference)
    for name, kernel in _kernels(model).items():
        mask = pruning.get_masks(model)[name]
        np.testing.assert_array_equal(mask, expected[name])
        np.testing.assert_array_equal(kernel, reference_kernels[name] * mask)
    # Without mask_seed, the masks are drawn with the seed itself.
    default = controls.control_model(kind, ticket, mlp, seed=12)
    for name, mask in pruning.get_masks(default).items():
        np.testing.assert_array_equal(mask, expected[name])


def test_in_run_seeds_formula():
    # IMP: round 2, second control; its masks use the round.
    assert controls.in_run_seeds(3, 2, 1, mask_phase=2) == (
        3 + 1000 * 3 + 1,
        3 + 7919 * 2,
    )
    # CS (3 search rounds): the masks use the control's own seed.
    assert controls.in_run_seeds(0, 3, 0, mask_phase=None) == (4000, 4000)


@pytest.mark.parametrize("index,kind", list(enumerate(KINDS)))
def test_branch_seed_formula(index, kind):
    assert (
        controls.branch_seed(5, 2, kind, 1) == 5 + 100_003 * 3 + 1_009 * (index + 1) + 1
    )
    assert controls.branch_seed(0, 0, kind, 0) == 100_003 + 1_009 * (index + 1)


def test_a_registered_control_is_usable_by_name_everywhere(monkeypatch):
    monkeypatch.setattr(controls, "_REGISTRY", dict(controls._REGISTRY))

    class Invert(controls.Control):
        name = "invert"

        def masks(self, masks, seed):
            return {n: ~np.asarray(m, bool) for n, m in masks.items()}

    with pytest.raises(ConfigError, match="'baselines' must be names from"):
        RunConfig(baselines=["invert"])
    controls.register(Invert())
    assert controls.names() == (*KINDS, "invert")
    assert RunConfig(baselines=["invert"]).baselines == ["invert"]
    out = controls.control_masks("invert", _masks(), 0)
    np.testing.assert_array_equal(out["a"], ~_masks()["a"])
    seeds = {controls.branch_seed(0, 1, k, 0) for k in controls.names()}
    assert len(seeds) == 5  # no two controls share a branch seed
    with pytest.raises(ValueError, match="needs a new, non-empty name"):
        controls.register(Invert())
    with pytest.raises(ValueError, match="needs a new, non-empty name"):
        controls.register(controls.Control())
