"""Config bases and the value rules: every documented switch works with every model it applies to,
is refused with a message where it does not, and each value rule is written once."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganforge.config import ConfigError, check_value, compose_config, precheck_overrides, validate_config
from ganforge.train import build_module, train
from ganforge.utils.checkpoint import load_checkpoint
from tests.conftest import conf_options

CONF = Path(__file__).resolve().parents[1] / "conf"

# Each model with data it trains on.
NATIVE = {
    "dcgan": [],
    "sngan": ["data.img_size=32"],
    "sngan_cond": ["data.img_size=32"],
    "acgan": ["data.img_size=32"],
    "mlp": ["data=ring8"],
    "cyclegan": [
        "data=digits2mnist",
        "loss=cyclegan",
        "optimizer=adam_linear_decay",
        "callbacks=image2image",
    ],
    "pix2pix": ["data=edges2photos", "loss=pix2pix", "optimizer=adam_linear_decay", "callbacks=image2image"],
    "cut": ["data=digits2mnist", "loss=cut", "optimizer=adam_linear_decay", "callbacks=image2image"],
    "fastcut": ["data=digits2mnist", "loss=fastcut", "optimizer=adam_linear_decay", "callbacks=image2image"],
    "stylegan2": ["loss=stylegan2"],
    "stylegan2_32": ["loss=stylegan2", "data.img_size=32"],
    "stylegan2_64": ["loss=stylegan2", "data.img_size=64"],
}
STYLEGAN2_MODELS = {"stylegan2", "stylegan2_32", "stylegan2_64"}  # their own D: no width, pack or SN switch
GAN_MODELS = {"dcgan", "sngan", "sngan_cond", "acgan", "mlp"} | STYLEGAN2_MODELS
TRANSLATION_MODELS = {"cyclegan", "pix2pix", "cut", "fastcut"}

# The switches the README documents, with the models that refuse each one (the key it must name).
SWITCHES: dict[str, set[str]] = {
    "model.compile=aot_eager": set(),
    "model.reuse_fake=true": TRANSLATION_MODELS,
    "model.channels_last=false": set(),
    "model.ema_decay=0.99": set(),
    "model.grad_clip=1.0": TRANSLATION_MODELS,
    "model.max_iters=7": set(),
    "model.latent_dim=16": TRANSLATION_MODELS,
    "model.discriminator.spectral_norm=true": {"mlp"} | TRANSLATION_MODELS | STYLEGAN2_MODELS,
    "model.discriminator.pack=2": {"sngan", "sngan_cond", "acgan"} | TRANSLATION_MODELS | STYLEGAN2_MODELS,
    "model.discriminator.width=8": STYLEGAN2_MODELS,
    "augment=ada": {"mlp"}
    | TRANSLATION_MODELS,  # translation: only at a fixed p (model.augment.adaptive=false)
    "augment=diffaugment": {"mlp", "pix2pix"},  # pix2pix's D judges aligned (A, B) pairs
    "data.batch_size=4": set(),
    "data.num_workers=1": set(),
    "data.pin_memory=true": set(),
    "data.val_fraction=0.2": {"pix2pix"},  # edges2photos holds out a fixed photo instead
    "data.in_memory=false": {"mlp"}
    | TRANSLATION_MODELS,  # 2-D points and two-domain data have no such switch
}


def _key(switch: str) -> str:
    name = switch.split("=", 1)[0]
    return "model.augment" if name == "augment" else name


def compose_checked(overrides: list[str]) -> tuple[DictConfig | None, str | None]:
    """The composed config, or the message that stops these overrides before training."""
    try:
        cfg = compose_config(overrides)
    except HydraException as err:  # a key the chosen config does not have; the CLI adds the valid ones
        return None, f"{err} {err.__cause__ or ''}"
    try:
        validate_config(cfg)
    except ConfigError as err:
        return cfg, str(err)
    return cfg, None


def refusal(overrides: list[str]) -> str | None:
    """The message that stops these overrides before training: from composing and validating the
    config, or from building the training scheme (the schemes' own checks of their arguments)."""
    cfg, message = compose_checked(overrides)
    if message is None:
        try:
            build_module(cfg, None)
        except ConfigError as err:
            return str(err)
    return message


@pytest.mark.parametrize("model", conf_options("model"))
def test_every_switch_applies_to_every_model_or_is_refused_by_name(model):
    assert model in NATIVE, f"conf/model/{model}.yaml is new: add it to NATIVE and to SWITCHES' refusals"
    base = [f"model={model}", *NATIVE[model]]
    applies = [s for s, refused_by in SWITCHES.items() if model not in refused_by]
    augments = [s for s in applies if s.startswith("augment=")]
    for augment in augments or [None]:  # the augment options exclude each other; the rest go together
        switches = [s for s in applies if not s.startswith("augment=")] + ([augment] if augment else [])
        cfg, message = compose_checked([*base, *switches])
        assert message is None, message
        for switch in switches:
            key, value = switch.split("=", 1)
            landed = OmegaConf.select(cfg, _key(switch))
            assert (landed is not None) if key == "augment" else str(landed).lower() == value, switch
    for switch in SWITCHES:
        if model in SWITCHES[switch]:
            message = refusal([*base, switch])
            assert message and _key(switch) in message, (switch, message)


def test_the_reported_cases_compose():
    """`model=sngan model.compile=true` failed with "Could not override 'model.compile'" before the bases."""
    for model in GAN_MODELS:
        cfg = compose_config([f"model={model}", "model.compile=true", "model.reuse_fake=true"])
        assert cfg.model.compile is True and cfg.model.reuse_fake is True


@pytest.mark.parametrize(
    "scheme, models", [("gan", GAN_MODELS), ("image2image", TRANSLATION_MODELS)], ids=["gan", "image2image"]
)
def test_every_model_inherits_its_scheme_base(scheme, models):
    base = yaml.safe_load((CONF / "model" / "scheme" / f"{scheme}.yaml").read_text())
    for model in models:
        cfg = compose_config([f"model={model}", *NATIVE[model]])
        assert set(base) <= set(cfg.model), model
        if "_target_" in base and base["_target_"] != "???":
            assert cfg.model._target_ == base["_target_"]


def test_the_gan_base_holds_every_argument_of_the_scheme():
    """So every switch of GANModule exists for every GAN model (loss and optimizer come from their groups)."""
    base = yaml.safe_load((CONF / "model" / "scheme" / "gan.yaml").read_text())
    parameters = set(inspect.signature(get_class(base["_target_"])).parameters) - {
        "self",
        "loss",
        "optimizer",
    }
    assert parameters == set(base) - {"_target_"}


def test_a_base_is_not_an_option_to_train_with():
    assert "scheme" not in conf_options("model") and "base" not in conf_options("data")
    _, message = compose_checked(["model=scheme/gan"])
    assert "model.generator must be set" in message and "bases" in message
    assert "data._target_ must be set" in compose_checked(["data=base/images"])[1]


@pytest.mark.parametrize("option", conf_options("data"))
def test_every_data_option_takes_the_loader_switches(option):
    cfg = compose_config(
        [f"data={option}", "data.batch_size=4", "data.num_workers=1", "data.pin_memory=true"]
    )
    assert (cfg.data.batch_size, cfg.data.num_workers, cfg.data.pin_memory) == (4, 1, True)


def test_switches_that_cannot_apply_are_named():
    assert "2-D points" in compose_checked(["model=mlp", "data=ring8", "augment=ada"])[1]
    message = refusal([*NATIVE["pix2pix"], "model=pix2pix", "augment=diffaugment"])
    assert "model.augment" in message and "judges (A, B) pairs" in message
    assert "model.discriminator.pack" in precheck_overrides(["model=sngan", "model.discriminator.pack=2"])


# Two iterations each (trainer.limit_train_batches=2): every switch above that changes training, spread
# over both schemes and every kind of network; compile on the MLP, where graph capture takes seconds.
TRAIN_CASES = {
    "mlp-compile-reuse-fake": ["model=mlp", "data=ring8", "model.compile=aot_eager", "model.reuse_fake=true"],
    "acgan-diffaugment-clip": "model=acgan data.img_size=16 augment=diffaugment model.channels_last=false model.grad_clip=1.0".split(),
    "sngan_cond-ada-reuse-fake-ema": [
        "model=sngan_cond",
        "data=digits",
        "data.img_size=16",
        "augment=ada",
        "model.reuse_fake=true",
        "model.ema_decay=0.9",
    ],
    "dcgan-pack-sn-max-iters": [
        "model.discriminator.pack=2",
        "model.discriminator.spectral_norm=true",
        "data.pin_memory=true",
        "data.val_fraction=0.2",
        "model.max_iters=1",
    ],
    "cyclegan-max-iters": [
        "model=cyclegan",
        *NATIVE["cyclegan"],
        "model.generator.n_blocks=1",
        "model.max_iters=1",
        "callbacks.panels=null",
        "++trainer.limit_val_batches=0",  # held-out scores load the digit classifier: seconds, not a switch
    ],
}


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
@pytest.mark.parametrize("overrides", list(TRAIN_CASES.values()), ids=list(TRAIN_CASES))
def test_switches_train(tiny_cfg, tmp_path, overrides):
    metrics = train(tiny_cfg(overrides))
    assert "train/d_loss" in metrics
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["ganforge"]
    assert state["iteration"] == (1 if "model.max_iters=1" in overrides else 2)
    for switch in overrides:
        key, _, value = switch.partition("=")
        if key.startswith("model.") and "." not in key[len("model.") :]:
            assert str(state["config"]["model"][key[len("model.") :]]).lower() == value


# ------------------------------------------------------------------ one place per rule
@pytest.mark.parametrize(
    "override, key, value",
    [
        ("loss.n_critic=0", "loss.n_critic", 0),
        ("data.batch_size=0", "data.batch_size", 0),
        ("model.ema_decay=1.0", "model.ema_decay", 1.0),
        ("model.augment.p=1.5", "model.augment.p", 1.5),
        ("optimizer.generator.betas=[0.5,1.5]", "optimizer.generator.betas", [0.5, 1.5]),
    ],
)
def test_check_value_and_validate_config_say_the_same(override, key, value):
    overrides = ["augment=ada", override] if key.startswith("model.augment") else [override]
    with pytest.raises(ConfigError) as by_config:
        validate_config(compose_config(overrides))
    with pytest.raises(ConfigError) as by_value:
        check_value(key, value)
    assert str(by_value.value) in str(by_config.value)


def test_constructors_refuse_with_the_rule_wording():
    from ganforge.augment.ada import AdaptiveAugment
    from ganforge.data.embedded import MNIST5kDataModule
    from ganforge.losses.adversarial import d_loss_bce, g_loss_nonsaturating
    from ganforge.losses.objective import GANObjective, Penalty
    from ganforge.losses.regularizers import r1_penalty
    from ganforge.modules.gan import GANModule

    objective = GANObjective(d_loss_bce, g_loss_nonsaturating)
    cases = [
        (lambda: GANObjective(d_loss_bce, g_loss_nonsaturating, n_critic=0), "loss.n_critic", 0),
        (lambda: MNIST5kDataModule(batch_size=0), "data.batch_size", 0),
        (lambda: AdaptiveAugment(p=2.0), "model.augment.p", 2.0),
        (lambda: Penalty(r1_penalty, weight=-1.0), "loss.penalties.*.weight", -1.0),
        (
            lambda: GANModule(nn.Linear(1, 1), nn.Linear(1, 1), objective, {}, ema_decay=1.0),
            "model.ema_decay",
            1.0,
        ),
    ]
    for build, key, value in cases:
        with pytest.raises(ConfigError) as info:
            build()
        with pytest.raises(ConfigError) as rule:
            check_value(key, value)
        assert str(info.value) == str(rule.value)


def test_check_value_nulls_patterns_and_unknown_keys():
    check_value("model.max_iters", None)  # null allowed: no limit
    check_value("model.grad_clip", None)
    with pytest.raises(ConfigError, match="loss.n_critic must be an integer; got None"):
        check_value("loss.n_critic", None)
    with pytest.raises(ConfigError, match="loss.penalties.r1.every must be an integer >= 1; got 0"):
        check_value("loss.penalties.r1.every", 0)
    with pytest.raises(KeyError):
        check_value("model.no_such_key", 1)


def test_names_come_from_the_modules_that_own_them(monkeypatch):
    import ganforge.augment.diffaugment as diffaugment
    import ganforge.networks.sngan as sngan

    with pytest.raises(ConfigError, match="one of projection, aux"):
        check_value("model.discriminator.conditioning", "concat")
    monkeypatch.setattr(sngan, "CONDITIONINGS", (*sngan.CONDITIONINGS, "concat"))
    check_value("model.discriminator.conditioning", "concat")
    monkeypatch.setattr(diffaugment, "POLICIES", (*diffaugment.POLICIES, "zoom"))
    check_value("model.augment.policy", "color,zoom")


def test_a_penalty_declares_that_it_needs_per_sample_gradients(monkeypatch):
    import tests.helpers
    from ganforge.losses.regularizers import per_sample_gradients

    def plain_penalty(discriminator, real, fake, labels=None, fake_labels=None):
        return real.sum() * 0

    monkeypatch.setattr(tests.helpers, "plain_penalty", plain_penalty, raising=False)
    overrides = [
        "+loss/penalty@loss.penalties.p=r1",
        "loss.penalties.p.fn._target_=tests.helpers.plain_penalty",
    ]
    validate_config(compose_config(overrides))  # not marked: batch norm in D is fine
    monkeypatch.setattr(tests.helpers, "plain_penalty", per_sample_gradients(plain_penalty))
    with pytest.raises(ConfigError, match="loss.penalties.p takes per-sample gradients"):
        validate_config(compose_config(overrides))
