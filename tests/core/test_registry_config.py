"""The registry, config files onto dataclasses, the size syntax, and the CLI helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from deepnotes.core.cli import CONFIG_OPTION_HELP, resolve_config, size_option, user_errors
from deepnotes.core.config import ConfigError, build_config, parse_hw, read_config_file
from deepnotes.core.registry import Registry, choice_value


def test_registry_names_filters_and_refuses_duplicates():
    reg = Registry("widget")

    @reg.register("a", family="x")
    def a():
        return 1

    reg.register("b", lambda: 2, family="y")
    assert list(reg) == ["a", "b"] and reg["a"] is a and "b" in reg and len(reg) == 2
    assert reg.names(family="y") == ["b"] and reg.info("a") == {"family": "x"}
    with pytest.raises(ValueError, match="unknown widget 'c'; valid: a, b"):
        reg["c"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", lambda: 3)
    reg.register("a", a, family="x")  # the same function again (a re-imported module) is fine
    assert [m.value for m in reg.choices()] == ["a", "b"] and choice_value(reg.choices()("b")) == "b"


@pytest.mark.parametrize(("text", "hw"), [("64,48", (64, 48)), ("112", (112, 112)), (32, (32, 32)),
                                          ([5, 7], (5, 7)), ("64x48", (64, 48))])
def test_sizes_are_h_comma_w_or_one_number(text, hw):
    assert parse_hw(text) == hw


@pytest.mark.parametrize("bad", ["64,48,3", "a,b", "0,4", "-1", 1.5, True, ""])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ConfigError, match="--input-size"):
        parse_hw(bad, "--input-size")


@dataclass
class Cfg:
    model: str
    size: tuple[int, int] = (112, 112)
    lr: float = 1e-3
    epochs: int = 10
    val: str | None = None
    flip: bool = True


def test_config_layers_types_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tsm\nsize: 64,48\nlr: 1\nval: v.txt\n")
    layers = ("defaults", {"epochs": 3}), (str(path), read_config_file(path)), ("flags", {"epochs": 5})
    cfg = build_config(Cfg, *layers)
    assert cfg == Cfg(model="tsm", size=(64, 48), lr=1.0, epochs=5, val="v.txt")
    for bad, match in (({"epochs": 1.5}, "epochs: expected an integer"),
                       ({"flip": "yes"}, "flip: expected true"),
                       ({"modle": "x"}, "unknown key 'modle'; valid keys: model, size"),
                       ({"learning-rate": 1}, "unknown key")):
        with pytest.raises(ConfigError, match=match):
            build_config(Cfg, (str(path), {"model": "x", **bad}))
    with pytest.raises(ConfigError, match="missing model: give --model"):
        build_config(Cfg, ("f", {}))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_config_file(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_config_file(tmp_path / "broken.yaml")


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def train(ctx: typer.Context, config: Path = typer.Option(None, "--config", help=CONFIG_OPTION_HELP),
              model: str = typer.Option(None, "--model"), epochs: int = typer.Option(10, "--epochs"),
              size: str = typer.Option("112", "--size"), out: Path = typer.Option(None, "--out"),
              resume: bool = typer.Option(False, "--resume")) -> None:
        flags = {"model": model, "epochs": epochs, "size": size_option(size, "--size")}
        cfg = resolve_config(Cfg, ctx, config, flags, resume_from=out if resume else None)
        typer.echo(f"{cfg.model} {cfg.epochs} {cfg.size} {cfg.lr}")

    @app.command()
    def other() -> None:
        pass

    return app


def test_flags_typed_override_the_file_defaults_do_not(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tsm\nepochs: 3\nlr: 0.5\n")
    runner, app = CliRunner(), _app()
    res = runner.invoke(app, ["train", "--config", str(path)])
    assert res.exit_code == 0 and res.output.strip() == "tsm 3 (112, 112) 0.5", res.output
    res = runner.invoke(app, ["train", "--config", str(path), "--epochs", "7", "--size", "64,48"])
    assert res.output.strip() == "tsm 7 (64, 48) 0.5"
    res = runner.invoke(app, ["train"])
    assert res.exit_code == 2 and "missing model" in res.output
    res = runner.invoke(app, ["train", "--model", "x", "--size", "3,4,5"])
    assert res.exit_code == 2 and "--size" in res.output
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "tdn", "epochs": 4, "lr": 0.2, "world_size": 2}')
    res = runner.invoke(app, ["train", "--out", str(run), "--resume", "--epochs", "6"])
    assert res.output.strip() == "tdn 6 (112, 112) 0.2", res.output  # the run's config, then the flags


def test_user_errors_exit_2_with_the_message_and_bugs_keep_their_traceback(tmp_path):
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(typer.Exit) as exc:
        with user_errors():
            binary.read_text(encoding="utf-8")
    assert exc.value.exit_code == 2
    with pytest.raises(typer.Exit):
        with user_errors():
            open(tmp_path / "missing.txt")  # noqa: SIM115
    with pytest.raises(ZeroDivisionError):
        with user_errors():
            _ = 1 / 0
