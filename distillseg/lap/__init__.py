"""IncrementalLap: class-incremental segmentation of laparoscopic RGB frames with diffusion replay."""
