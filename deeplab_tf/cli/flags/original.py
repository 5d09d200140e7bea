"""The original's flags, as its final research/deeplab scripts define them (facts, for the
compatibility table): name, script, type and default. Several scripts defining one name each
have a row, since their defaults may differ (output_stride: 16 in train/eval/vis, 8 in
export_model)."""

from __future__ import annotations

from typing import List, NamedTuple


class OriginalFlag(NamedTuple):
    name: str
    script: str   # common, train, eval, vis, export_model
    type: str
    default: str  # as this package's canonical string (lists comma-joined)


_TABLE = """
min_resize_value common integer None
max_resize_value common integer None
resize_factor common integer None
keep_aspect_ratio common boolean True
logits_kernel_size common integer 1
model_variant common string mobilenet_v2
image_pyramid common multi_float None
add_image_level_feature common boolean True
image_pooling_crop_size common list None
image_pooling_stride common list 1,1
aspp_with_batch_norm common boolean True
aspp_with_separable_conv common boolean True
multi_grid common multi_integer None
depth_multiplier common float 1.0
divisible_by common integer None
decoder_output_stride common list None
decoder_use_separable_conv common boolean True
merge_method common enum max
prediction_with_upsampled_logits common boolean True
dense_prediction_cell_json common string ''
nas_stem_output_num_conv_filters common integer 20
nas_use_classification_head common boolean False
nas_remove_os32_stride common boolean False
use_bounded_activation common boolean False
aspp_with_concat_projection common boolean True
aspp_with_squeeze_and_excitation common boolean False
aspp_convs_filters common integer 256
decoder_use_sum_merge common boolean False
decoder_filters common integer 256
decoder_output_is_logits common boolean False
image_se_uses_qsigmoid common boolean False
label_weights common multi_float None
batch_norm_decay common float 0.9997
num_clones train integer 1
clone_on_cpu train boolean False
num_replicas train integer 1
startup_delay_steps train integer 15
num_ps_tasks train integer 0
master train string ''
task train integer 0
train_logdir train string None
log_steps train integer 10
save_interval_secs train integer 1200
save_summaries_secs train integer 600
save_summaries_images train boolean False
profile_logdir train string None
optimizer train enum momentum
learning_policy train enum poly
base_learning_rate train float 0.0001
decay_steps train float 0.0
end_learning_rate train float 0.0
learning_rate_decay_factor train float 0.1
learning_rate_decay_step train integer 2000
learning_power train float 0.9
training_number_of_steps train integer 30000
momentum train float 0.9
adam_learning_rate train float 0.001
adam_epsilon train float 1e-08
train_batch_size train integer 8
weight_decay train float 4e-05
train_crop_size train list 513,513
last_layer_gradient_multiplier train float 1.0
upsample_logits train boolean True
drop_path_keep_prob train float 1.0
tf_initial_checkpoint train string None
initialize_last_layer train boolean True
last_layers_contain_logits_only train boolean False
slow_start_step train integer 0
slow_start_learning_rate train float 0.0001
fine_tune_batch_norm train boolean True
min_scale_factor train float 0.5
max_scale_factor train float 2.0
scale_factor_step_size train float 0.25
atrous_rates train multi_integer None
output_stride train integer 16
hard_example_mining_step train integer 0
top_k_percent_pixels train float 1.0
quantize_delay_step train integer -1
dataset train string pascal_voc_seg
train_split train string train
dataset_dir train string None
master eval string ''
eval_logdir eval string None
checkpoint_dir eval string None
eval_batch_size eval integer 1
eval_crop_size eval list 513,513
eval_interval_secs eval integer 300
atrous_rates eval multi_integer None
output_stride eval integer 16
eval_scales eval multi_float 1.0
add_flipped_images eval boolean False
quantize_delay_step eval integer -1
dataset eval string pascal_voc_seg
eval_split eval string val
dataset_dir eval string None
max_number_of_evaluations eval integer 0
master vis string ''
vis_logdir vis string None
checkpoint_dir vis string None
vis_batch_size vis integer 1
vis_crop_size vis list 513,513
eval_interval_secs vis integer 300
atrous_rates vis multi_integer None
output_stride vis integer 16
eval_scales vis multi_float 1.0
add_flipped_images vis boolean False
quantize_delay_step vis integer -1
dataset vis string pascal_voc_seg
vis_split vis string val
dataset_dir vis string None
colormap_type vis enum pascal
also_save_raw_predictions vis boolean False
max_number_of_iterations vis integer 0
checkpoint_path export_model string None
export_path export_model string None
num_classes export_model integer 21
crop_size export_model multi_integer 513,513
atrous_rates export_model multi_integer None
output_stride export_model integer 8
inference_scales export_model multi_float 1.0
add_flipped_images export_model boolean False
quantize_delay_step export_model integer -1
save_inference_graph export_model boolean False
"""

ORIGINAL_FLAGS: List[OriginalFlag] = [
    OriginalFlag(*line.split()) for line in _TABLE.strip().splitlines()]
