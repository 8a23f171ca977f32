"""gpt2lib: GPT-2 built from scratch in PyTorch, the companion library of the book *GPT-2 from Scratch*.

Every module except this one is generated from a chapter notebook (see the header of each file):
``tokenizer`` (ch. 1), ``data`` (2), ``attention`` (3), ``model`` (4), ``generate`` (5), ``train`` (6),
``checkpoint`` (6), ``pretrained`` (7), ``cli`` (8), ``finetune`` (9), ``fast`` (10), ``purepy`` (appendix A).
Edit the notebooks, then run ``make export``.
"""
__version__ = "0.1.0"


def check(name: str, value, low=None, high=None, *, kind=int, low_open: bool = False):
    """The one input check of gpt2lib, used where inputs enter (configs, generate, load_*, the CLI).

    Return ``value`` if it is a ``kind`` (``int``, or ``float`` for any real number; never a bool) in
    [low, high] (low excluded if ``low_open``). Otherwise raise TypeError (wrong type) or ValueError
    (out of range), naming the input, the value and the limit.
    """
    types = (int, float) if kind is float else kind
    if isinstance(value, bool) or not isinstance(value, types):
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

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


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
    """Hand a computed value to the prose, where the book writes {glue:text}`name` (myst-nb's glue).

    Numbers in the text then come from the code and cannot go stale. Outside the book's build (on
    Colab, say) myst-nb may be missing: nothing is glued, and the cell's own output shows the value.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


def add_to_class(cls):
    """Decorator that attaches a function to `cls` as a method, so a chapter can build a class cell by
    cell, explaining each method before the next (d2l's pattern). The book's exporter writes such
    methods into the class body of the generated module, so the library reads as one class."""

    def register(method):
        name = getattr(method, "__name__", None) or method.fget.__name__   # a property has no __name__ < 3.13
        setattr(cls, name, method)
        return method

    return register
