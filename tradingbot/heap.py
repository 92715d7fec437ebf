"""Keep the start-up heap out of the garbage collector's full passes in long-running processes."""
from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def heap_freeze() -> bool:
    """Move every object alive now into the permanent generation, once per process; False if done before.

    A full (generation 2) collection walks every tracked object while the process waits. After
    start-up most of them are imported code (Django, DRF, pandas, numpy: ~150,000-200,000
    objects), and one such walk took 200-330 ms on the benchmark machine. CPython runs one each
    time enough objects have reached the old generation (every ~16 s while events stream to 200
    pages), so in the engine a candle-close cycle now and then took that much longer, and in the
    web process a round of websocket events reached every page that late (bench/README.md).
    Frozen objects are never walked again (a full collection then took 3-5 ms); objects made
    later are collected as before. A collection first keeps the start-up's garbage out of the
    frozen set, where it would never be freed.
    """
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    logger.debug("froze %d start-up objects out of the garbage collector's passes", gc.get_freeze_count())
    return True
