"""gpt2lib: GPT-2 built from scratch in PyTorch, the library of the book *GPT-2 from Scratch*.

Every other module is generated from a chapter notebook (its header says which): edit the notebooks,
then run ``make export``.
"""
__version__ = "0.1.0"


def check(name: str, value, low=None, high=None, *, kind=int, low_open: bool = False):
    """The one input check, used where inputs enter (configs, generate, load_*, the CLI): ``value`` if it
    is a ``kind`` (int, or float for any real number; never a bool) in [low, high] (low excluded if
    ``low_open``), else TypeError or ValueError naming the input, the value and the limit."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
        raise TypeError(f"{name} must be {'a number' if kind is float else 'an integer'}, got {value!r}")
    if value != value:                                    # NaN: every comparison below would let it through
        raise ValueError(f"{name} must be a number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def default_device() -> str:
    """The device every chapter uses: CUDA if present, then Apple's MPS, then the CPU."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"


def show_versions() -> None:
    """Print the versions this notebook runs with (the first cell of every chapter calls it)."""
    import platform
    from importlib import metadata

    print(f"python       {platform.python_version()}")
    for pkg in ("gpt2lib", "torch", "tiktoken", "transformers", "numpy", "matplotlib"):
        try:
            print(f"{pkg:<12} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            print(f"{pkg:<12} (not installed)")
    print(f"device       {default_device()}")


def glue(name: str, value) -> None:
    """Hand a computed value to the prose ({glue:text}`name`, myst-nb's glue); without myst-nb (on Colab,
    say) nothing is glued and the cell's own output shows the value."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


def add_to_class(cls):
    """Decorator: attach a function to `cls` as a method, so a chapter builds a class cell by cell (d2l's
    pattern); the exporter writes the methods into the class body of the generated module."""
    def register(method):
        setattr(cls, getattr(method, "__name__", None) or method.fget.__name__, method)   # a property: fget's
        return method
    return register
