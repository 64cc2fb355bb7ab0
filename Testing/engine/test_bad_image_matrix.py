"""Image files whose headers cannot be trusted, and one whose header is fine though another program would say
otherwise: every case runs the real CLI and is refused in one sentence naming the file before its voxels are read
(exit 2, or 3 when the grid would not fit in memory), or works.

A PNG decompression bomb ended in Pillow's traceback, NRRD headers with 2 or 4 space dimensions in a numpy
broadcast error, a NIfTI header claiming a huge grid in "out of memory" without the file's name, and a label map
5 µm off its image was refused as "not on the grid", before this file's commit; the other cases are alike.
"""

from __future__ import annotations

import struct
import zlib

import nibabel as nib
import numpy as np
import nrrd

from bad_input_env import env  # noqa: F401  (the matrix's fixture)
from bad_input_env import matrix_test, nifti, with_option
from cli_contract import Invocation
from distillseg.common.bundle import load_bundle

IMAGES = "input files"


def _png(path, width: int, height: int, rows: bytes) -> None:
    """A PNG of ``width`` x ``height`` RGB pixels whose compressed data is ``rows`` (need not match the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _segment(env, tmp, scan, *fragments, code=2):
    return Invocation(env.segment(scan, tmp / "o.nii.gz"), exit_code=code, fragments=fragments, names=scan,
                      outputs=[tmp / "o.nii.gz"])


def png_decompression_bomb(env, tmp):
    frame = tmp / "frame.png"
    _png(frame, 20000, 20000, bytes(20000 * 3 + 1) * 64)  # 1.2 GB of pixels claimed by a 1 kB file
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("decompression bomb",), names=frame,
                      outputs=[tmp / "o.png"])


def png_claiming_a_hundred_million_pixels(env, tmp):
    frame = tmp / "frame.png"
    _png(frame, 10000, 10000, bytes(10000 * 3 + 1) * 16)  # below Pillow's own limit, far above a frame's
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("claims 10000x10000 pixels",), names=frame,
                      outputs=[tmp / "o.png"])


def nrrd_with_two_space_dimensions(env, tmp):
    scan = tmp / "scan.nrrd"
    nrrd.write(str(scan), env.atlas.array[:, :, 5].copy(),
               {"space dimension": 2, "space directions": [[1.5, 0], [0, 1.5]], "space origin": [0, 0]})
    return _segment(env, tmp, scan, "NRRD space has 2 dimensions")


def nrrd_with_four_space_dimensions(env, tmp):
    scan = tmp / "scan.nrrd"
    nrrd.write(str(scan), env.atlas.array, {"space dimension": 4, "space origin": [0, 0, 0, 0],
                                            "space directions": [[1.5, 0, 0, 0], [0, 1.5, 0, 0], [0, 0, 2, 0]]})
    return _segment(env, tmp, scan, "NRRD space has 4 dimensions")


def nrrd_origin_of_two_coordinates(env, tmp):
    scan = tmp / "scan.nrrd"
    nrrd.write(str(scan), env.atlas.array, {"space": "left-posterior-superior", "space origin": [0, 0],
                                            "space directions": np.diag([1.5, 1.5, 2.0])})
    return _segment(env, tmp, scan, "space origin has 2 coordinates")


def nifti_header_claiming_a_huge_grid(env, tmp):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.float32)
    scan = tmp / "scan.nii"
    scan.write_bytes(header.binaryblock + bytes(4) + bytes(4000))
    return _segment(env, tmp, scan, "header declares a 30000x30000x30000 grid", "more than the", code=3)


def nrrd_header_claiming_a_huge_grid(env, tmp):
    scan = tmp / "scan.nrrd"
    scan.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 30000 30000 30000\nencoding: gzip\n"
                     b"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\n"
                     + zlib.compress(bytes(4000)))
    return _segment(env, tmp, scan, "header declares a 30000x30000x30000 grid", code=3)


def seg_nrrd_layer_that_is_not_a_number(env, tmp):
    scan = tmp / "labels.seg.nrrd"
    nrrd.write(str(scan), env.labels.array.astype(np.uint8), {"space": "left-posterior-superior",
                                                              "space directions": np.diag([1.5, 1.5, 2.0]),
                                                              "Segment0_Name": "liver", "Segment0_Layer": "top"})
    argv = env.train(tmp / "m", None, scan)
    return Invocation(argv, fragments=("segment 0 has a colour, layer or label value that is not a number",),
                      names=scan, outputs=[tmp / "m"])


def seg_nrrd_layer_the_file_lacks(env, tmp):
    scan = tmp / "labels.seg.nrrd"
    nrrd.write(str(scan), env.labels.array.astype(np.uint8), {"space": "left-posterior-superior",
                                                              "space directions": np.diag([1.5, 1.5, 2.0]),
                                                              "Segment0_Name": "liver", "Segment0_Layer": "3",
                                                              "Segment0_LabelValue": "1"})
    argv = env.train(tmp / "m", None, scan)
    return Invocation(argv, fragments=("a segment lies in a layer the file does not have",), names=scan,
                      outputs=[tmp / "m"])


def labels_five_micrometres_off_the_image(env, tmp):
    moved = env.atlas.affine.copy()
    moved[:3, 3] += 0.005  # 5 µm: how an export that rounds positions leaves them
    labels = nifti(tmp / "labels.nii.gz", env.labels.array, moved)
    argv = env.train(tmp / "m", None, labels)
    for option, value in (("--iterations", "1"), ("--augmenter-iterations", "0"), ("--refine-iterations", "0")):
        argv = with_option(argv, option, value)
    return Invocation(argv, exit_code=0, check=lambda: load_bundle(tmp / "m", "oneshot"))


CASES = {IMAGES: [png_decompression_bomb, png_claiming_a_hundred_million_pixels, nrrd_with_two_space_dimensions,
                  nrrd_with_four_space_dimensions, nrrd_origin_of_two_coordinates, nifti_header_claiming_a_huge_grid,
                  nrrd_header_claiming_a_huge_grid, seg_nrrd_layer_that_is_not_a_number, seg_nrrd_layer_the_file_lacks,
                  labels_five_micrometres_off_the_image]}
test_bad_input = matrix_test(CASES)
