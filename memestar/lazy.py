"""A package whose public names are imported on first use (PEP 562), so that its light modules import without torch."""

import importlib


def lazy_exports(package: str, where: dict[str, str]):
    """The module `__getattr__` of `package`: each name of `where` (name -> module relative to `package`) imported
    from its module when first asked for."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name], package), name)

    return __getattr__
