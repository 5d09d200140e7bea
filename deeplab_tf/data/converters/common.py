"""The converters' shared names in one import (kept for existing callers).

The machinery lives in small modules, one job each: ``errors`` (ConversionError), ``labels``
(label readers), ``encoding`` (validation, serialisation, fingerprints), ``shards`` (staged
shard writing), ``pool`` (worker processes), ``progress``, ``publish`` (final names and the
manifest) and ``conversion`` (``convert_dataset``).
"""

from deeplab_tf.data.converters.conversion import STAGING_DIR, convert_dataset  # noqa: F401
from deeplab_tf.data.converters.encoding import Source, encode_source  # noqa: F401
from deeplab_tf.data.converters.errors import ConversionError, one_line  # noqa: F401
from deeplab_tf.data.converters.labels import ColorLabels, LookupLabels, read_index_png  # noqa: F401
from deeplab_tf.data.converters.progress import Progress  # noqa: F401
from deeplab_tf.data.converters.shards import ShardJob, write_shard  # noqa: F401
