"""Video data: annotation lists, decoding, clip sampling, transforms, datasets and synthetic data."""

from deepnotes.video.data.dataset import Batch, RGBLoader, VideoDataset, collate, make_loader, set_epoch
from deepnotes.video.data.decode import (
    VideoReadError,
    count_frame_files,
    count_frames,
    read_frame_folder,
    read_video,
)
from deepnotes.video.data.lists import ListError, VideoRecord, read_classes, read_list
from deepnotes.video.data.sampling import ClipSampler, dense_indices, segment_indices
from deepnotes.video.data.synth import synth_dataset
from deepnotes.video.data.transforms import eval_transform, train_transform

__all__ = [
    "Batch", "ClipSampler", "ListError", "RGBLoader", "VideoDataset", "VideoReadError", "VideoRecord",
    "collate", "count_frame_files", "count_frames", "dense_indices", "make_loader", "read_classes",
    "read_frame_folder", "read_list", "read_video", "segment_indices", "set_epoch", "synth_dataset",
    "eval_transform", "train_transform",
]
