"""Experiment configs: loading ``experiments/*.py`` files and applying overrides."""

from jaxdl.configs.loading import apply_overrides, config_to_dict, load_config, load_sweep

__all__ = ["apply_overrides", "config_to_dict", "load_config", "load_sweep"]
