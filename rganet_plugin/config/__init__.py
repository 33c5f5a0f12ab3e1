from .defaults import add_rganet_config
from .setup import get_rganet_cfg, load_config, resolve_device

__all__ = ["add_rganet_config", "get_rganet_cfg", "load_config", "resolve_device"]
