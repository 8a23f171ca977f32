"""gpt2lib: GPT-2 from scratch in PyTorch. Every other module is generated from a chapter notebook: edit those."""
__version__ = "0.1.0"


def check(name: str, value, low=None, high=None, *, kind=int, low_open: bool = False):
    """The one input check where inputs enter: ``value`` if a ``kind`` (int, or float: any real; never a bool)
    in [low, high] (low excluded if ``low_open``), else TypeError or ValueError naming input, value and limit."""
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
    """Hand a computed value to the prose ({glue:text}`name`); without myst-nb (on Colab, say), do nothing."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


def add_to_class(cls):
    """Attach a function to `cls` as a method (d2l's pattern); the exporter writes it into the class body."""
    def register(method):
        setattr(cls, getattr(method, "__name__", None) or method.fget.__name__, method)   # a property: fget's
        return method
    return register
