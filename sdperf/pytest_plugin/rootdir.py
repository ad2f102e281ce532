"""Keep pytest's rootdir and config file when an sdperf option's value is a separate argument.

pytest chooses its rootdir and reads its config file before it loads entry-point plugins,
so at that moment `--sdperf-model /srv/models/sd15` is an unknown option followed by a
path: the folder counts as a test path, becomes the rootdir, and `pyproject.toml` (test
paths, `--strict-markers`) is never read. Once the plugin's options are known the same
arguments parse correctly, so the choice is made again from them and, where it differs,
replaced before pytest loads conftests or decides what to collect.

This uses pytest internals (its config-finding function and the fields it fills); pytest
is pinned, and tests/test_cli.py runs every path option in both spellings.
"""

from __future__ import annotations

import copy

import pytest
from _pytest.config.findpaths import determine_setup, parse_override_ini


def choose_root_again(config: pytest.Config, args: list[str]) -> None:
    """Redo pytest's rootdir/config-file choice now that sdperf's options parse; where it
    differs, take the right one and apply its `addopts` (prepended to `args` in place)."""
    known = config.known_args_namespace
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=known.inifilename,
        override_ini=known.override_ini,
        args=known.file_or_dir,
        rootdir_cmd_arg=known.rootdir or None,
        invocation_dir=config.invocation_params.dir,
    )
    if rootpath == config.rootpath and inipath == config.inipath:
        return
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    config._parser.extra_info["rootdir"] = str(rootpath)
    config._parser.extra_info["inifile"] = str(inipath)
    # The config file's addopts were never applied: they come first, as pytest puts them.
    args[:0] = config._validate_args(config.getini("addopts"), "via addopts config")
    config.known_args_namespace = config._parser.parse_known_args(args, namespace=copy.copy(config.option))
    overrides = parse_override_ini(config.known_args_namespace.override_ini)
    if overrides:
        config._inicfg.update(overrides)
        config._inicache.clear()
    if config.known_args_namespace.confcutdir is None:  # as pytest derives it, from the right choice now
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)
