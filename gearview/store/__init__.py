"""The local cache: Part-10 files written atomically plus a SQLite index."""

from gearview.store.cache import Cache
from gearview.store.header import read_instance_info
from gearview.store.intake import StoredInstance
from gearview.store.records import InstanceInfo

__all__ = ["Cache", "InstanceInfo", "StoredInstance", "read_instance_info"]
