import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# benchmarks/peers (the original's graphs rebuilt TF1 style) is not part of the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                "benchmarks"))

import pytest

# Tests moved out of the default run to keep `make test` within its ~10 minute budget on two
# cores: each is a second, heavier check of something a default test already covers (named
# after the id). They still run in `make test-slow`. An id with an unclosed "[" matches every
# parametrisation that starts with it.
SLOW_IN_DEFAULT = (
    # XLA compile and bfloat16 on the CPU; float16's first-step check stays in the default run.
    "test_train_loop.py::test_mixed_precision_and_xla[float32-True]",
    "test_train_loop.py::test_mixed_precision_and_xla[bfloat16-False]",
    # The old ckpt-N layout; resume itself: test_trains_saves_and_resumes.
    "test_train_loop.py::test_runs_saved_as_ckpt_n_still_resume",
    # SIGKILL losses; SIGTERM's save: test_sigterm_saves_a_checkpoint_and_exits.
    "test_train_cli.py::test_sigkill_then_restart_loses_at_most_the_save_interval",
    # Bad labels / an empty split through the CLI; the library's errors:
    # test_train_loop.py::test_labels_out_of_range_are_an_error_naming_the_step, and the
    # CLI's one-line form: the other test_bad_input_is_a_one_line_error cases.
    "test_train_cli.py::test_bad_input_is_a_one_line_error[bad_labels",
    "test_train_cli.py::test_bad_input_is_a_one_line_error[empty_split",
    # Trains a model on scenes first; the TFLite conversions: the other test_export_tflite tests.
    "test_export_tflite.py::test_model_segments_scenes_well",
    # MultiWorker with two processes; the distributed step: test_mirrored_matches_one_device.
    "test_train_distributed.py::test_two_workers_end_with_identical_weights",
    # xception_41 with ASPP; the same rule: test_decoder_checkpoint_without_decoder_flag_names_the_flag.
    "test_checkpoints_paths.py::test_image_pooling_and_aspp_mismatches_name_the_flags",
    # Sliding window through the predict fn; the numbers: test_sliding_window_matches_numpy_window_average.
    "test_inference.py::test_make_predict_fn_sliding_window",
    # TFLite from a converted original checkpoint; TFLite export: test_int8_tflite_from_training_run.
    "test_export_cli.py::test_tflite_from_original_checkpoint",
    # Two more bad converter flags; the one-line error and nothing left: the Shape mismatch case.
    "test_checkpoints.py::test_convert_cli_bad_input_leaves_nothing[bad_flags0",
    "test_checkpoints.py::test_convert_cli_bad_input_leaves_nothing[bad_flags1",
    # An interrupted fit resumed by BackupAndRestore; the callback itself (with checkpoint,
    # TensorBoard and early stopping): test_callbacks_checkpoint_early_stopping_tensorboard_backup.
    "test_keras_workflow.py::test_backup_and_restore_resumes_an_interrupted_fit",
)


def _slow_in_default(nodeid: str) -> bool:
    name = nodeid.split("tests/")[-1]
    return any(name == key or ("[" in key and not key.endswith("]") and name.startswith(key))
               for key in SLOW_IN_DEFAULT)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _slow_in_default(item.nodeid):
            item.add_marker(pytest.mark.slow)
