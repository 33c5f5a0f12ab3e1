from .trainer import AGReIDTrainer, pseudo_labels  # noqa: F401
