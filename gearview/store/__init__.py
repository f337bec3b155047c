"""The local cache: Part-10 files written atomically plus a SQLite index."""

from gearview.store.cache import Cache, StoredInstance
from gearview.store.inspect import InstanceInfo, read_instance_info

__all__ = ["Cache", "InstanceInfo", "StoredInstance", "read_instance_info"]
