"""tf.data input pipelines for training and evaluation.

``train_dataset`` reads a split's TFRecord shards (or a prepared TFDS dataset), shards the files
per input pipeline, reads files in parallel, shuffles, repeats, decodes and augments in
parallel exactly as the original (``data.preprocess``), batches with ``drop_remainder`` and
prefetches. Distributed training calls it through
``strategy.distribute_datasets_from_function(lambda ctx: train_dataset(..., input_context=ctx))``.

``eval_dataset`` yields one image at a time, in file order, padded for the output stride.

Both check each record before decoding it (``record_checks``: the schema, the image and
label formats and sizes read from their headers, and what the record will allocate against
``DataConfig.max_image_pixels``, ``--max_image_pixels``) and name the shard and record of a
corrupt, forged or over-limit one (``records.error_message`` extracts that line from the
error).

Determinism: every element gets its own stateless seed ``(seed, element index)`` for its
augmentation, so with ``DataConfig.seed`` set (and element order kept, which a seed implies)
the same seed yields the same batches however the parallel stages are scheduled.

Example:
    >>> config = DataConfig(dataset="pascal_voc_seg", dataset_dir="/data/voc_tfrecord",
    ...                     train_split="train_aug", train_crop_size=(513, 513))
    >>> ds = train_dataset(config, batch_size=8, mean_pixel=127.5)
    >>> images, labels = next(iter(ds))  # [8, 513, 513, 3] float32, [8, 513, 513, 1] int32
"""

from __future__ import annotations

import random
from typing import Callable, Optional

import tensorflow as tf

from deeplab_tf.config import DataConfig
from deeplab_tf.data import preprocess, record_checks
from deeplab_tf.data import records as records_lib
from deeplab_tf.data import registry, schema
from deeplab_tf.data.errors import DataError

# Serialised records held for shuffling (the original shuffled 100 decoded examples).
SHUFFLE_BUFFER_SIZE = 1000
_AUTOTUNE = tf.data.AUTOTUNE


def _decode_record(ignore_label: int):
    def decode(record):
        serialized, shard, index = record
        fields = schema.parse_example(serialized)
        image = schema.decode_image(fields[schema.IMAGE_ENCODED])
        label = schema.decode_label(fields[schema.LABEL_ENCODED], image, ignore_label)
        source = {"shard": shard, "record": index, "filename": fields[schema.IMAGE_FILENAME]}
        return image, label, source

    return decode


def _tfds_decode(name: str, decode_fn):
    def decode(record):
        image, label, filename = decode_fn(record)
        source = {"shard": tf.constant(registry.TFDS_PREFIX + name),
                  "record": tf.constant(-1, tf.int64), "filename": filename}
        return image, label, source

    return decode


def _records(data_config: DataConfig, split: str, *, ignore_label: int, training: bool,
             deterministic: bool, input_context=None, cost_fn=None, require_label=True,
             cost_description=None):
    """(dataset of undecoded records, decode_fn) for a split, sharded per input pipeline,
    every record checked before it is decoded (``record_checks``)."""
    if data_config.dataset.startswith(registry.TFDS_PREFIX):
        from deeplab_tf.data import tfds_source

        name = data_config.dataset[len(registry.TFDS_PREFIX):]
        dataset, decode_fn = tfds_source.load_records(
            name, split, data_dir=data_config.dataset_dir or None, shuffle_files=training,
            seed=data_config.seed, num_readers=data_config.num_readers,
            input_context=input_context)
        return dataset, _tfds_decode(name, decode_fn)

    if not data_config.dataset_dir:
        raise DataError(f"dataset_dir is empty: where are the TFRecord shards of split {split!r}?")
    files = schema.list_shards(data_config.dataset_dir, split)
    scans = [records_lib.scan_shard(f) for f in files]  # headers only: cheap
    record_checks.check_first_records(files, scans, require_label)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    decode = _decode_record(ignore_label)
    skip = data_config.skip_corrupt_records
    if not training:
        records = records_lib.read_shards(files, skip, scans=scans)
    elif num_pipelines > 1 and len(files) < num_pipelines:
        # Too few files to give each pipeline its own: every pipeline reads all files in a
        # fixed order and keeps every num_pipelines-th record.
        records = records_lib.read_shards(files, skip, scans=scans).shard(num_pipelines,
                                                                          pipeline_id)
    else:
        files, scans = files[pipeline_id::num_pipelines], scans[pipeline_id::num_pipelines]
        records = records_lib.read_shards(
            files, skip, cycle_length=min(data_config.num_readers, len(files)),
            deterministic=deterministic, shuffle=True, shuffle_seed=data_config.seed,
            scans=scans)
    records = record_checks.checked(
        records, cost_fn=cost_fn, max_pixels=data_config.max_image_pixels, skip=skip,
        require_label=require_label, description=cost_description,
        deterministic=deterministic)
    return records, decode


def train_dataset(data_config: DataConfig, *, batch_size: int, mean_pixel,
                  ignore_label: Optional[int] = None, input_context=None,
                  with_source: bool = False) -> tf.data.Dataset:
    """Endless, shuffled, augmented training batches of ``data_config.train_split``.

    Args:
        data_config: DataConfig. Dataset, split, crop size and augmentation ranges.
        batch_size: int. Global batch size; with ``input_context`` each input pipeline
            yields the per-replica size ``input_context.get_per_replica_batch_size(batch_size)``.
        mean_pixel: float or 3 floats. Value the image is padded with (the model's mean pixel).
        ignore_label: int or None. Label padding value; None: the dataset's ignore label.
        input_context: tf.distribute.InputContext or None. Shards the files per input
            pipeline (as ``distribute_datasets_from_function`` passes it).
        with_source: bool. Also yield where each example came from (to name the batch's
            records when a step fails, e.g. on a NaN loss).

    Returns:
        tf.data.Dataset of ``(images float32 [B, crop_h, crop_w, 3] in [0, 255],
        labels int32 [B, crop_h, crop_w, 1])``; with ``with_source`` a third element
        ``{"shard": string [B], "record": int64 [B] (index in the shard; -1 for TFDS),
        "filename": string [B]}``. A corrupt or truncated shard stops the input with
        ``<shard>: record N is corrupt (<why>)`` (``records.error_message`` extracts the
        line from the error), or is skipped and counted with
        ``data_config.skip_corrupt_records`` (one stderr line per shard with the count skipped).
        A record that fails a ``record_checks`` check stops the input likewise with
        ``<shard>: record N (<name>): ...``; one that would allocate more than
        ``data_config.max_image_pixels`` pixels (``record_checks.training_pixels``: resized,
        at the largest scale, padded to the crop) or whose format is not read is skipped
        instead with ``skip_corrupt_records`` (one stderr line, the first epoch only).
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    info = registry.get_dataset_info(data_config.dataset, data_config.dataset_dir or None)
    ignore_label = info.ignore_label if ignore_label is None else int(ignore_label)
    per_replica_batch = batch_size
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
    deterministic = data_config.seed is not None or data_config.deterministic
    base_seed = data_config.seed if data_config.seed is not None else random.randrange(2**31)

    records, decode = _records(data_config, data_config.train_split, ignore_label=ignore_label,
                               training=True, deterministic=deterministic,
                               input_context=input_context,
                               cost_fn=record_checks.training_pixels(data_config),
                               cost_description="resized, at the largest scale, padded to "
                                                "the crop")
    records = records.shuffle(SHUFFLE_BUFFER_SIZE, seed=data_config.seed,
                              reshuffle_each_iteration=True).repeat()

    def preprocess_one(index, record):
        image, label, source = decode(record)
        seed = tf.stack([tf.constant(base_seed, tf.int64),
                         index * num_pipelines + pipeline_id])
        image, label = preprocess.preprocess_for_train(
            image, label,
            crop_size=data_config.train_crop_size,
            mean_pixel=mean_pixel,
            ignore_label=ignore_label,
            min_resize_value=data_config.min_resize_value,
            max_resize_value=data_config.max_resize_value,
            resize_factor=data_config.resize_factor,
            min_scale_factor=data_config.min_scale_factor,
            max_scale_factor=data_config.max_scale_factor,
            scale_factor_step_size=data_config.scale_factor_step_size,
            seed=seed)
        if with_source:
            return image, label, source
        return image, label

    dataset = records.enumerate().map(
        preprocess_one, num_parallel_calls=_AUTOTUNE, deterministic=deterministic)
    dataset = dataset.batch(per_replica_batch, drop_remainder=True).prefetch(_AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    if input_context is not None:
        # Files are already sharded per input pipeline above.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def eval_dataset(data_config: DataConfig, split: str, *, mean_pixel,
                 ignore_label: Optional[int] = None, output_stride: Optional[int] = None,
                 pixels: Optional[Callable] = None,
                 require_label: bool = True) -> tf.data.Dataset:
    """Every example of ``split`` once, in order, batch size 1.

    The image keeps its size (after the optional resize to range of ``data_config``), padded
    at the bottom/right to the next ``k * output_stride + 1`` when ``output_stride`` is given:
    the image with ``mean_pixel``, the label with the ignore label.

    Args:
        pixels: callable(height, width) -> float64 tensor, or None. What predicting a record
            will allocate (``InferenceSpec.pixels``), checked against
            ``data_config.max_image_pixels`` before decoding; None: the padded size above.
        require_label: bool. A record without a label stops the input (deeplab-eval); False
            (deeplab-vis) gives it a label of the ignore label.

    Returns:
        tf.data.Dataset of dicts: ``image`` float32 [1, H', W', 3] in [0, 255], ``label``
        int32 [1, H', W', 1], ``height`` and ``width`` int32 [1] (the size before padding),
        ``filename`` string [1], ``shard`` string [1] and ``record`` int64 [1] (where it
        came from; see ``train_dataset`` for corrupt shards and over-limit images).
    """
    info = registry.get_dataset_info(data_config.dataset, data_config.dataset_dir or None)
    ignore_label = info.ignore_label if ignore_label is None else int(ignore_label)
    if pixels is None:
        def pixels(height, width):
            return tf.maximum(tf.cast(height, tf.float64) * tf.cast(width, tf.float64),
                              preprocess.padded_pixels(
                                  height, width, output_stride=output_stride or 1,
                                  min_resize_value=data_config.min_resize_value,
                                  max_resize_value=data_config.max_resize_value,
                                  resize_factor=data_config.resize_factor))
    records, decode = _records(data_config, split, ignore_label=ignore_label, training=False,
                               deterministic=True, cost_fn=pixels, require_label=require_label,
                               cost_description="as inference pads, scales and flips it")

    def preprocess_one(*record):
        image, label, source = decode(record[0] if len(record) == 1 else record)
        image, label, height, width = preprocess.preprocess_for_eval(
            image, label,
            mean_pixel=mean_pixel,
            ignore_label=ignore_label,
            output_stride=output_stride,
            min_resize_value=data_config.min_resize_value,
            max_resize_value=data_config.max_resize_value,
            resize_factor=data_config.resize_factor)
        return {"image": image, "label": label, "height": height, "width": width,
                "filename": source["filename"], "shard": source["shard"],
                "record": source["record"]}

    dataset = records.map(preprocess_one, num_parallel_calls=_AUTOTUNE, deterministic=True)
    return dataset.batch(1).prefetch(_AUTOTUNE)
