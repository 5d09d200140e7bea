"""Names of every flag some deeplab binary defines (generated; see tests/test_cli_flags.py).

A binary ignores these when it does not define them itself, so one recipe flagfile serves
every binary; any other unknown flag is an error. Regenerate after adding a flag:

    python -m deeplab_tf.cli._flag_names
"""

BINARIES = {
    "deeplab-train": "deeplab_tf.cli.train",
    "deeplab-eval": "deeplab_tf.cli.eval",
    "deeplab-vis": "deeplab_tf.cli.vis",
    "deeplab-export": "deeplab_tf.cli.export",
    "deeplab-convert-checkpoint": "deeplab_tf.cli.convert_checkpoint",
    "deeplab-bench": "deeplab_tf.cli.bench",
    "deeplab-model-stats": "deeplab_tf.cli.model_stats",
    "deeplab-build-voc2012": "deeplab_tf.cli.build_voc2012",
    "deeplab-build-cityscapes": "deeplab_tf.cli.build_cityscapes",
    "deeplab-build-ade20k": "deeplab_tf.cli.build_ade20k",
    "deeplab-build-folder": "deeplab_tf.cli.build_folder",
}

DEEPLAB_FLAG_NAMES = frozenset({
    'adam_epsilon',
    'adam_learning_rate',
    'add_flipped_images',
    'add_image_level_feature',
    'ade20k_root',
    'agreement',
    'also_save_raw_predictions',
    'aspp_convs_filters',
    'aspp_with_separable_conv',
    'atrous_rates',
    'base_learning_rate',
    'batch_norm_decay',
    'batch_size',
    'bench_train_batch_size',
    'calibration_dataset_dir',
    'calibration_split',
    'calibration_steps',
    'checkpoint',
    'checkpoint_dir',
    'checkpoint_path',
    'cityscapes_root',
    'class_names',
    'colormap_type',
    'crop_size',
    'dataset',
    'dataset_dir',
    'dataset_name',
    'decoder_output_stride',
    'decoder_use_separable_conv',
    'depth_multiplier',
    'divisible_by',
    'eval_crop_size',
    'eval_interval_secs',
    'eval_logdir',
    'eval_scales',
    'eval_split',
    'export_dir',
    'export_probabilities',
    'export_version',
    'fine_tune_batch_norm',
    'fold_batch_norm',
    'format',
    'hard_example_mining_step',
    'ignore_label',
    'image_dir',
    'image_pooling_crop_size',
    'image_pooling_stride',
    'inference_scales',
    'initialize_last_layer',
    'jit_compile',
    'json',
    'label_dir',
    'label_weights',
    'last_layer_gradient_multiplier',
    'last_layers_contain_logits_only',
    'learning_policy',
    'learning_power',
    'learning_rate_decay_factor',
    'learning_rate_decay_step',
    'log_steps',
    'max_number_of_evaluations',
    'max_number_of_iterations',
    'max_resize_value',
    'max_scale_factor',
    'max_to_keep',
    'min_resize_value',
    'min_scale_factor',
    'mixed_precision',
    'model_name',
    'model_variant',
    'modes',
    'momentum',
    'multi_grid',
    'num_classes',
    'num_shards',
    'num_workers',
    'optimizer',
    'output',
    'output_dir',
    'output_json',
    'output_stride',
    'overwrite',
    'palette_file',
    'pipeline_dataset_dir',
    'progress',
    'repeats',
    'resize_factor',
    'save_interval_steps',
    'save_summaries_images',
    'saved_model_dir',
    'sbd_root',
    'scale_factor_step_size',
    'seed',
    'skip_invalid',
    'sliding_window_overlap',
    'sliding_window_size',
    'slow_start_learning_rate',
    'slow_start_step',
    'split_lists',
    'split_seed',
    'splits',
    'strategy',
    'sync_batch_norm',
    'tf1_checkpoint',
    'tf_initial_checkpoint',
    'tflite_mode',
    'tflite_model',
    'tflite_output',
    'throughput',
    'top_k_percent_pixels',
    'tpu',
    'train',
    'train_batch_size',
    'train_crop_size',
    'train_jit',
    'train_logdir',
    'train_split',
    'training_number_of_steps',
    'trimap_widths',
    'upsample_logits',
    'val_fraction',
    'vis_crop_size',
    'vis_logdir',
    'vis_split',
    'voc_root',
    'weight_decay',
})


def flags_of(module: str):
    """Sorted names of the flags that importing ``module`` defines (in a fresh process)."""
    import json
    import subprocess
    import sys

    code = ("import importlib, json; from absl import flags; importlib.import_module(%r); "
            "print(json.dumps(sorted({f.name for m, fl in flags.FLAGS.flags_by_module_dict()"
            ".items() if m.startswith('deeplab_tf') for f in fl})))" % module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def all_flag_names():
    names = set()
    for module in BINARIES.values():
        names.update(flags_of(module))
    return sorted(names)


if __name__ == "__main__":
    import os
    import re

    path = os.path.abspath(__file__)
    text = open(path).read()
    body = "frozenset({\n" + "".join(f"    {n!r},\n" for n in all_flag_names()) + "})"
    text = re.sub(r"DEEPLAB_FLAG_NAMES = frozenset\((?:\{.*?\})?\)", lambda m: "DEEPLAB_FLAG_NAMES = " + body,
                  text, count=1, flags=re.S)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"Wrote {path}")
