"""``dilated_units``: the stride each unit runs at, and its atrous rate, for an output stride.

As the original's ``stack_blocks_dense`` (ResNet, Xception) and ``mobilenet_base``: the
units' strides accumulate until the network's stride reaches ``output_stride``; every later
unit runs at stride 1 with an atrous rate that grows by the stride it skips.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple


def dilated_units(strides: Sequence[int], output_stride: int, input_stride: int = 1,
                  check: bool = True) -> List[Tuple[int, int]]:
    """``[(stride, rate), ...]``: how each unit of nominal stride ``strides[i]`` runs.

    Args:
        strides: int per unit, its nominal stride.
        output_stride: int. The stride the features should end at.
        input_stride: int. Stride already applied before the first unit (the root block's).
        check: bool. Raise if ``output_stride`` is overshot or never reached (ResNet,
            Xception); MobileNetV2 does not check.

    Example:
        >>> dilated_units([1, 2, 1, 2, 1], output_stride=4)
        [(1, 1), (2, 1), (1, 1), (2, 1), (1, 1)]
        >>> dilated_units([1, 2, 1, 2, 1], output_stride=2)
        [(1, 1), (2, 1), (1, 1), (1, 1), (1, 2)]

    Raises:
        ValueError: with ``check``, when ``output_stride`` cannot be reached.
    """
    current, rate, units = input_stride, 1, []
    for stride in strides:
        if current == output_stride:
            units.append((1, rate))
            rate *= stride
        else:
            current *= stride
            if check and current > output_stride:
                break
            units.append((stride, 1))
    if check and current != output_stride:
        raise ValueError(f"The target output_stride cannot be reached. "
                         f"Received: output_stride={output_stride}")
    return units
