from .rganet import RGANet  # noqa: F401  (registers)
