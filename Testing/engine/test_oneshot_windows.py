"""The student's sliding windows give MONAI's ``SlidingWindowInferer`` result (same windows, same Gaussian blending),
in the channels-last layout, for grids the windows tile exactly, with overlap, and along an axis a window spans."""

from __future__ import annotations

import pytest
import torch

from distillseg.oneshot.windows import GaussianWindows


@pytest.mark.parametrize("grid, window", [((32, 48, 40), (16, 16, 16)), ((40, 32, 24), (32, 16, 24)),
                                          ((16, 16, 16), (16, 16, 16))])
def test_windows_blend_like_monai(grid, window):
    from monai.inferers import SlidingWindowInferer

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv3d(2, 5, 3, padding=1), torch.nn.PReLU(),
                                  torch.nn.Conv3d(5, 4, 3, padding=1)).eval()
    image = torch.rand(1, 2, *grid).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        expected = SlidingWindowInferer(roi_size=window, sw_batch_size=1, overlap=0.25, mode="gaussian")(
            image, network)[0]
        blended = GaussianWindows(grid, window)(image, network)
    assert blended.shape == (*grid, 4)
    torch.testing.assert_close(blended.permute(3, 0, 1, 2), expected, rtol=1e-5, atol=1e-6)


def test_a_window_larger_than_the_grid_is_refused():
    with pytest.raises(ValueError, match="larger than the grid"):
        GaussianWindows((16, 16, 16), (32, 16, 16))
