"""pytest settings for `pytest --nbval notebooks/`.

nbval waits 5 s for a cell's outputs after the kernel says the cell is done. On a loaded machine (CI's two
cores running two notebooks, or more threads than cores) the kernel can take longer than that to flush a
long cell's outputs, and nbval then fails a correct cell. A minute is ample and still catches a dead kernel.
"""
OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
