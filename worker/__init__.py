"""imunban: reliable, rate-limited batch delivery of Tencent Cloud Chat audio-video group unbans.

The producer API (see :mod:`worker.producer`)::

    import worker
    worker.enqueue("@TGS#aJRGC4MH6", ["alice"])                  # now
    worker.enqueue("@TGS#aJRGC4MH6", ["bob"], at=1796083200)     # when the ban expires
    worker.cancel("@TGS#aJRGC4MH6", ["bob"])
    worker.bulk({"group_id": g, "member": m} for g, m in pairs)
"""

from worker.producer import Producer, bulk, cancel, enqueue
from worker.store import EnqueueResult
from worker.validation import UnbanRequest

__version__ = "0.1.0"
__all__ = ["EnqueueResult", "Producer", "UnbanRequest", "bulk", "cancel", "enqueue"]
