# amaranth: UnusedElaboratable=no
# (some tests build components only to read properties or check constructor errors)
"""Every parameter error message, pinned (GeneratorConfig validates for all blocks)."""

import json

import pytest

from pezo.config import ConfigError, GeneratorConfig as G, load_config, parse_assignments
from pezo.fixed import Q, parse_q
from pezo.hw.generator import PerturbationGenerator
from pezo.hw.lfsr import UniformBank
from pezo.hw.reuse import PoolBuffer
from pezo.hw.scaler import Scaler


VALUE_ERRORS = [
    (dict(lanes=0), r"^Lane count \(lanes\) must be an integer in 1\.\.64, not 0$"),
    (dict(lanes=65), r"^Lane count \(lanes\) must be an integer in 1\.\.64, not 65$"),
    (dict(width=1), r"^Number width \(width\) must be an integer in 2\.\.32, not 1$"),
    (dict(width=33), r"^Number width \(width\) must be an integer in 2\.\.32, not 33$"),
    (dict(state_bits=2), r"^LFSR state bits \(state_bits\) must be an integer in 3\.\.64, not 2$"),
    (dict(state_bits=65), r"^LFSR state bits \(state_bits\) must be an integer in 3\.\.64 or one of 71, 79, 81, "
                           r"93, 95, 97, 127 \(the wide trinomials of the table\), not 65$"),
    (dict(step="jump"), r"^Stepping mode \(step\) must be one of 'leap', not 'jump'$"),
    (dict(step="shift"), r"^Stepping mode \(step\) 'shift' was removed: its consecutive numbers "
                         r"share w-1 bits, so perturbation coordinates are tied \(docs/streams\.md\); "
                         r"use 'leap'$"),
    (dict(reuse="onthefly", lanes=1, width=4, out_lanes=4), r"^onthefly reuse with 4-bit numbers supports at "
                                                         r"most 2 lane groups \(out_lanes / lanes\), not 4$"),
    (dict(reuse="pregen", lanes=1, width=4, out_lanes=8), r"^Reuse 'pregen' draws a fresh sign bit per output "
                                                       r"number from the bank's lanes\*width = 4 bits per "
                                                       r"cycle, so out_lanes must be at most that, not 8$"),
    (dict(seed_width=48), r"^Seed width \(seed_width\) must be 32 or 64, not 48$"),
    (dict(reuse="pool"), r"^Reuse strategy \(reuse\) must be one of 'none', 'pregen', "
                         r"'onthefly', not 'pool'$"),
    (dict(out_lanes=0), r"^Output lane count \(out_lanes\) must be an integer in 1\.\.256, not 0$"),
    (dict(out_lanes=8), r"^Reuse 'none' needs out_lanes equal to lanes \(4\), not 8$"),
    (dict(reuse="onthefly", out_lanes=6), r"^Output lane count \(out_lanes\) must be a multiple "
                                          r"of lanes \(4\), not 6$"),
    (dict(reuse="onthefly", shared=True, state_bits=64),
     r"^Reuse 'onthefly' rotates the generators' states and needs independent lanes "
     r"\(shared=False\)$"),
    (dict(reuse="pregen", pool_size=0), r"^Pool size \(pool_size\) must be an integer in "
                                        r"1\.\.1048576, not 0$"),
    (dict(reuse="pregen", pool_size=1 << 21), r"^Pool size \(pool_size\) must be an integer in "
                                              r"1\.\.1048576, not 2097152$"),
    (dict(reuse="pregen", pool_size=10), r"^Pool size \(pool_size\) must be a multiple of "
                                         r"out_lanes \(4\), not 10$"),
    (dict(pool_size=64), r"^pool_size applies only to reuse 'pregen', not to reuse 'none'$"),
    (dict(scale="float"), r"^Scale mode \(scale\) must be one of 'runtime', 'fixed', not 'float'$"),
    (dict(scale_digits=0), r"^Scale digit count \(scale_digits\) must be an integer in 1\.\.8, "
                           r"not 0$"),
    (dict(scale_shift_bits=5), r"^Scale shift bits \(scale_shift_bits\) must be an integer in "
                               r"1\.\.4, not 5$"),
    (dict(z_int=1), r"^Integer bits of z \(z_int\) must be an integer in 2\.\.16, not 1$"),
    (dict(z_frac=31), r"^Fraction bits of z \(z_frac\) must be an integer in 0\.\.30, not 31$"),
    (dict(z_int=16, z_frac=20), r"^z format Q16\.20 is wider than 32 bits$"),
    (dict(shared=True, lanes=64, width=32), r"^A shared bank gives lanes\*width bits per cycle, "
                                            r"at most 1024$"),
    (dict(state_bits=3, lanes=8), r"^3 LFSR state bits give only 7 distinct start states, fewer than "
                                  r"the 8 lanes; use more state_bits or fewer lanes$"),
]


@pytest.mark.parametrize("kwargs,msg", VALUE_ERRORS)
def test_value_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        G(**kwargs)


TYPE_ERRORS = [
    (dict(lanes=2.0), r"^Lane count \(lanes\) must be an integer, not 2\.0$"),
    (dict(lanes=True), r"^Lane count \(lanes\) must be an integer, not True$"),
    (dict(width="16"), r"^Number width \(width\) must be an integer, not '16'$"),
    (dict(step=1), r"^Stepping mode \(step\) must be a string, not 1$"),
    (dict(shared=1), r"^shared must be a bool, not 1$"),
    (dict(seed_width="32"), r"^Seed width \(seed_width\) must be an integer, not '32'$"),
    (dict(reuse=None), r"^Reuse strategy \(reuse\) must be a string, not None$"),
]


@pytest.mark.parametrize("kwargs,msg", TYPE_ERRORS)
def test_type_errors(kwargs, msg):
    with pytest.raises(TypeError, match=msg):
        G(**kwargs)


@pytest.mark.parametrize("cls", [UniformBank, Scaler, PoolBuffer, PerturbationGenerator])
def test_components_want_a_config(cls):
    with pytest.raises(TypeError, match=r"^Configuration must be a GeneratorConfig, not \{'lanes': 4\}$"):
        cls({"lanes": 4})


def test_component_specific_errors():
    with pytest.raises(ValueError, match=r"^PoolBuffer needs reuse 'pregen', not 'none'$"):
        PoolBuffer(G())
    with pytest.raises(TypeError, match=r"^rotate must be a bool, not 1$"):
        UniformBank(G(), rotate=1)
    with pytest.raises(ValueError, match=r"^A shared bank cannot rotate its lanes \(they share "
                                         r"one state\)$"):
        UniformBank(G(shared=True, state_bits=64), rotate=True)
    with pytest.raises(ValueError, match=r"^Constant digits apply only to a 'fixed' scale$"):
        Scaler(G(), digits=[(1, 14)])


def test_defaults_and_properties():
    cfg = G(reuse="pregen")
    assert cfg.out_lanes == cfg.lanes == 4 and cfg.pool_size == 1024 and cfg.pool_words == 256
    gen = PerturbationGenerator(cfg)
    # seed mixing: J = 4*32/32 SIMON32 blocks of 32 rounds, one round per cycle, + zero check + 1
    assert gen.config is cfg and gen.fill_cycles == 256 + 3 and gen.latency == 130 + 2
    assert UniformBank(cfg).latency == 4 * 32 + 2 and Scaler(cfg).latency == 2 and Scaler(G(scale="fixed")).latency == 3
    assert cfg.replace(reuse="none").pool_size is None


def test_load_toml_json_and_overrides(tmp_path):
    t = tmp_path / "a.toml"
    t.write_text('[generator]\nlanes = 8\nreuse = "pregen"\npool_size = 256\n')
    assert load_config(t) == G(lanes=8, reuse="pregen", pool_size=256)
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"lanes": 2, "width": 12}))
    assert load_config(j, parse_assignments(["step=leap", "shared=false"])) == \
        G(lanes=2, width=12)


@pytest.mark.parametrize("name,text,msg", [
    ("c.toml", "lanes = [", r"^Configuration file '.*c\.toml' is malformed: "),
    ("c.json", "{", r"^Configuration file '.*c\.json' is malformed: "),
    ("c.yaml", "lanes: 4", r"^Configuration file '.*c\.yaml' must end in \.toml or \.json$"),
    ("c.json", "[1, 2]", r"^Configuration file '.*c\.json' must hold a table of parameters$"),
    ("c.toml", "lanez = 4", r"^Unknown parameter\(s\) lanez in configuration file '.*c\.toml'; "
                            r"accepted: the generator's lanes, out_lanes, pool_size, reuse, "
                            r"scale, scale_digits, scale_shift_bits, seed_width, shared, "
                            r"state_bits, step, width, z_frac, z_int; the engine's coef_bits, "
                            r"coef_frac, coord, depth, mask, stochastic, w_frac, w_int, weights; "
                            r"each at the top level or in a \[generator\] / \[engine\] table$"),
    ("c.toml", "[generator]\nlanez = 4", r"^Unknown generator parameter\(s\) lanez; accepted: "),
    ("c.toml", "lanes = 2\n[generator]\nlanes = 4", r"^lanes is given both at the top level and "
                                                    r"in \[generator\] of configuration file "
                                                    r"'.*c\.toml'; give it once$"),
    ("c.json", '{"depth": 64, "w_int": 2, "engine": {"depth": 32, "w_int": 3}}',
     r"^depth, w_int are given both at the top level and in \[engine\] of configuration file "
     r"'.*c\.json'; give each once$"),
])
def test_bad_files(tmp_path, name, text, msg):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        load_config(p)


def test_missing_file_and_bad_assignment(tmp_path):
    with pytest.raises(ConfigError, match=r"^Configuration file '.*nope\.toml' does not exist$"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"^Setting 'lanes' is not of the form key=value$"):
        parse_assignments(["lanes"])


def test_q_format_errors():
    assert parse_q("Q4.12") == Q(4, 12) and Q(4, 12).bits == 16 and str(Q(3, 13)) == "Q3.13"
    with pytest.raises(ValueError, match=r"^Fixed-point format must look like 'Q4\.12', not 'Q4'$"):
        parse_q("Q4")
    with pytest.raises(ValueError, match=r"^Q format int_bits must be at least 1 \(the sign\), "
                                         r"not 0$"):
        Q(0, 8)
    with pytest.raises(TypeError, match=r"^Q format frac_bits must be an integer, not 1\.5$"):
        Q(1, 1.5)
    with pytest.raises(ValueError, match=r"^Q format frac_bits must be >= 0, not -1$"):
        Q(1, -1)


def test_assignment_values():
    """--set values: integers in any base, booleans, none/null as "default", except that
    reuse=none names the 'none' strategy."""
    got = parse_assignments(["lanes=0x8", "shared=yes", "pool_size=none", "reuse=None"])
    assert got == {"lanes": 8, "shared": True, "pool_size": None, "reuse": "none"}
    assert load_config(None, {"reuse": got["reuse"]}).reuse == "none"


def test_scale_digit_default_follows_the_scale_mode():
    assert G().scale_digits == 4 and G(scale="fixed").scale_digits == 3
    assert G(scale="fixed").replace(scale="runtime").scale_digits == 4
    assert G().replace(scale="fixed").scale_digits == 3
    # an explicit count is kept
    assert G(scale="fixed", scale_digits=5).replace(scale="runtime").scale_digits == 5
    assert G.from_dict(G(scale="fixed").to_dict()) == G(scale="fixed")


def test_load_over_default_merges_a_board_default(tmp_path):
    """`pezo synth --set/--config` on top of a board's default: engine keys replace the
    default's, a [generator] table replaces the default generator, --set generator keys apply
    last, and default keys that only fit the default's choices are dropped."""
    from pezo.config import load_over_default
    from pezo.config import EngineConfig as E
    default = E(generator=G(lanes=4, reuse="pregen", pool_size=1024, scale="fixed"), depth=4096)
    c = load_over_default(default, None, {"depth": 512}, {"reuse": "none"})
    assert c.depth == 512 and c.generator.reuse == "none" and c.generator.pool_size is None
    assert c.generator.scale == "fixed" and c.w_frac == default.w_frac
    c = load_over_default(default, None, {}, {"lanes": 8})
    assert c.generator.lanes == 8 and c.generator.out_lanes == 8 and c.generator.pool_size == 1024
    f = tmp_path / "c.toml"
    f.write_text("[engine]\ndepth = 64\n[generator]\nlanes = 2\n")
    c = load_over_default(default, f, {}, {"width": 12})
    assert c.depth == 64 and c.generator == G(lanes=2, width=12)


def test_one_loader_reads_flat_keys_for_every_kind_of_configuration(tmp_path):
    """issue 23: a flat file configures a generator, an engine and an engine over a board's
    default alike (the engine loaders ignored flat keys: a file holding `lanes = 2` gave the
    default 4-lane engine). Generator keys go to the generator, engine keys to the engine."""
    from pezo.config import EngineConfig as E, load_engine_config, load_over_default
    f = tmp_path / "flat.toml"
    f.write_text("lanes = 2\nreuse = \"pregen\"\npool_size = 64\ndepth = 32\nw_frac = 10\n")
    gen = G(lanes=2, reuse="pregen", pool_size=64)
    assert load_config(f) == gen
    assert load_engine_config(f) == E(generator=gen, depth=32, w_frac=10)
    default = E(generator=G(lanes=4, scale="fixed"), depth=4096, coef_bits=12)
    assert load_over_default(default, f) == E(generator=gen, depth=32, w_frac=10, coef_bits=12)
    # flat keys and tables mix; overrides apply last
    f.write_text("depth = 32\n[generator]\nlanes = 2\n")
    assert load_engine_config(f, {"w_int": 2}, {"width": 12}) == \
        E(generator=G(lanes=2, width=12), depth=32, w_int=2)
    # a file of engine keys alone keeps the default's generator
    f.write_text("depth = 64\n")
    assert load_over_default(default, f) == default.replace(depth=64)


@pytest.mark.parametrize("text,exc,msg", [
    ('depth = 99999999999999\n', ValueError,
     r"^Weight count \(depth\) must be an integer in 1\.\.1048576, not 99999999999999$"),
    ('[engine]\ndepth = 0\n', ValueError,
     r"^Weight count \(depth\) must be an integer in 1\.\.1048576, not 0$"),
    ('lanes = 3\n', ValueError,          # the default depth 1024 is no multiple of 3
     r"^Weight count \(depth\) must be a multiple of the lane count out_lanes \(3\), not 1024$"),
    ('coord = "yes"\n', TypeError, r"^coord must be a bool, not 'yes'$"),
])
def test_load_config_checks_the_engine_part_of_a_file(tmp_path, text, exc, msg):
    """A generator command (info, stream, quality) uses a file's generator part and checks its
    engine part as the engine commands would read the file: a file is refused alike by all."""
    from pezo.config import load_engine_config
    f = tmp_path / "e.toml"
    f.write_text(text)
    with pytest.raises(exc, match=msg):
        load_engine_config(f)
    if "lanes" in text:             # a generator file: a generator command takes it
        assert load_config(f) == G(lanes=3)
    else:
        with pytest.raises(exc, match=msg):
            load_config(f)
