"""Dataset writers: images, video frames and frame pairs to FFCV .beton files, and rendered
invariance sets to image folders."""
