from .adapter import load_adapter, save_adapter
from .base import BaseFingerprint, BaseModel, load_base
from .video_unet import GROUP_NORM_MODES, VideoUNet

__all__ = ["BaseFingerprint", "BaseModel", "GROUP_NORM_MODES", "VideoUNet", "load_adapter", "load_base",
           "save_adapter"]
