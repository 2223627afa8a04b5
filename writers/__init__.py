"""Dataset writers: turn image folders, list files and COCO boxes into FFCV .beton files."""
